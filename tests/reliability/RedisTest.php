<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\AmoTestCase;
use AmoCRM\Tests\Emulator;
use AmoCRM\Tests\PhpProcess;

/**
 * Issue 9, the Redis store: several simulated hosts (groups of PHP
 * processes, each group with a token folder of its own) share one pair, one
 * refresh lock and one rate limit through a real redis-server started here
 * on a loopback port. Redis killed and restarted under them, ten accounts at
 * once, a Sentinel failover, and a fork.
 */
final class RedisTest extends AmoTestCase
{
    private const KEY = '90-redis';

    /** @var list<RedisServer> */
    private array $servers = [];

    public static function setUpBeforeClass(): void
    {
        Results::section(self::KEY, 'Redis: several hosts',
            'Debian\'s redis-server started by the tests on a loopback port (`appendonly yes`, `appendfsync always`), '
            . 'every PHP process with `store=redis://…`. A simulated host is a group of PHP processes with a token '
            . 'folder and environment of its own; the folders stay empty. Figures are what the emulator counted.',
            ['scenario', 'processes', 'calls', 'refreshes at amoCRM', 'max requests per second at amoCRM', 'errors', 'result']);
    }

    protected function tearDown(): void
    {
        foreach ($this->servers as $s) {
            $s->kill();
        }
        if (is_dir($this->dir)) {
            exec('rm -rf ' . escapeshellarg($this->dir));
            clearstatcache();
        }
        parent::tearDown();
    }

    private function redis(array $args = [], ?string $password = null, string $name = 'redis'): RedisServer
    {
        return $this->servers[] = RedisServer::start("{$this->dir}/$name", $args, $password);
    }

    /** Stores a pair as the extension does (the generation counted up). */
    private function putPair(RedisServer $r, string $account, array $pair): void
    {
        $key = "amocrm:$account:pair";
        $r->command('HSET', $key, 'json', json_encode($pair), 'at', sprintf('%d', microtime(true) * 1e6));
        $r->command('HINCRBY', $key, 'gen', '1');
    }

    private function pairIn(RedisServer $r, string $account = 'default'): array
    {
        $json = $r->command('HGET', "amocrm:$account:pair", 'json');
        $this->assertIsString($json, "a pair is stored for $account");
        return json_decode($json, true);
    }

    private function mintPair(int $expiresIn): array
    {
        $t = $this->emu->mintTokens();
        return ['access_token' => $t['access_token'], 'refresh_token' => $t['refresh_token'],
            'expires_at' => time() + $expiresIn, 'base_domain' => $this->emu->referer(), 'updated_at' => time()];
    }

    /** The environment of simulated host $host: its own token folder, the shared store. */
    private function hostEnv(int $host, string $store, array $extra = []): array
    {
        return $this->env($extra + ['AMOCRM_STORE' => $store, 'AMOCRM_TOKEN_PATH' => "{$this->dir}/host$host/tokens.json"]);
    }

    private function waitFor(callable $check, string $what, float $timeout = 30.0): mixed
    {
        $deadline = microtime(true) + $timeout;
        do {
            $v = $check();
            if ($v !== null && $v !== false) {
                return $v;
            }
            usleep(20000);
        } while (microtime(true) < $deadline);
        $this->fail("timed out after {$timeout} s waiting for $what");
    }

    /** @return list<array{0:int|string, 1:string, 2:float}> [round or process, outcome, when] per line */
    private function lines(string $file): array
    {
        return array_map(fn ($l) => json_decode($l, true), @file($file, FILE_IGNORE_NEW_LINES) ?: []);
    }

    public function testThreeHostsShareOnePairAndOneRateLimitUnderLoad(): void
    {
        $redis = $this->redis();
        $this->putPair($redis, 'default', $this->mintPair(86400));
        $perHost = Results::count(3, 6);
        $rounds = Results::count(4, 12);
        $calls = 2;
        $round = "{$this->dir}/round";
        $results = "{$this->dir}/results";
        file_put_contents($round, '0');
        $code = <<<PHP
            \$amo = AmoClient::getInstance();
            for (\$seen = 0;;) {
                \$r = (int) @file_get_contents('$round');
                if (\$r < 0) {
                    return 'stopped';
                }
                if (\$r === \$seen) {
                    usleep(500);
                    continue;
                }
                \$seen = \$r;
                for (\$i = 0; \$i < $calls; \$i++) {
                    try {
                        \$outcome = (string) \$amo->request('GET', '/api/v4/account')['id'];
                    } catch (AmoException \$e) {
                        \$outcome = get_class(\$e) . ': ' . \$e->getMessage();
                    }
                    file_put_contents('$results', json_encode([\$r, \$outcome, microtime(true)]) . "\\n", FILE_APPEND | LOCK_EX);
                }
            }
            PHP;
        $procs = [];
        for ($i = 0; $i < 3 * $perHost; $i++) {
            $procs[] = new PhpProcess($code, $this->hostEnv($i % 3, $redis->url()));
        }
        $n = count($procs);
        $answers = fn (int $r): int => count(array_filter($this->lines($results), fn ($l) => $l[0] === $r));
        try {
            file_put_contents($round, '1');
            $this->waitFor(fn () => $answers(1) >= $n * $calls, 'the first round');
            $this->emu->control('POST', 'reset-stats');
            for ($r = 2; $r <= $rounds + 1; $r++) {
                $pair = $this->pairIn($redis);
                $pair['expires_at'] = time() - 60;
                $this->putPair($redis, 'default', $pair);
                file_put_contents($round, (string) $r);
                $this->waitFor(fn () => $answers($r) >= $n * $calls, "round $r");
            }
        } finally {
            file_put_contents($round, '-1');
            foreach ($procs as $p) {
                $p->wait();
            }
        }
        $failed = array_values(array_filter($this->lines($results), fn ($l) => $l[1] !== '31000001'));
        $stats = $this->emu->stats();
        $refreshes = (int) ($stats['token_calls']['refresh_token/ok'] ?? 0);
        $revoked = (int) ($stats['token_calls']['refresh_token/Token has been revoked'] ?? 0);
        Results::row(self::KEY, ["3 hosts × $perHost processes, the pair expired $rounds times under load; both rate limits on (7/s)",
            $n, $n * $calls * $rounds, "$refreshes for $rounds expiries", $stats['max_api_rps'],
            count($failed) . ' failed calls, ' . $stats['rate_limited'] . ' × 429, ' . $revoked . ' revoked',
            $refreshes === $rounds && !$failed && $stats['max_api_rps'] <= 7 ? 'pass' : 'FAIL']);
        $this->assertSame([], array_slice($failed, 0, 5), 'every call succeeds');
        $this->assertSame($rounds, $refreshes, 'one refresh per expiry across all hosts');
        $this->assertSame(0, $revoked);
        $this->assertLessThanOrEqual(7, $stats['max_api_rps'], 'the three hosts together stay within 7 per second');
        $this->assertSame(0, $stats['rate_limited'], 'no 429');
        for ($h = 0; $h < 3; $h++) {
            $this->assertFileDoesNotExist("{$this->dir}/host$h/tokens.json", 'nothing falls back to a token file');
        }
    }

    /**
     * Issue 9's "done when": three simulated hosts and ten accounts together
     * on one Redis, each account its own amoCRM (an emulator each), every
     * pair made to expire round after round under load: exactly one refresh
     * per expiry per account, and each account within 7 requests per second.
     */
    public function testThreeHostsAndTenAccountsTogether(): void
    {
        $redis = $this->redis();
        $accounts = 10;
        $emus = [];
        for ($a = 0; $a < $accounts; $a++) {
            $emus[$a] = $a === 0 ? $this->emu : Emulator::start();
        }
        try {
            $pairs = [];
            foreach ($emus as $a => $emu) {
                $t = $emu->mintTokens();
                $pairs[$a] = ['access_token' => $t['access_token'], 'refresh_token' => $t['refresh_token'],
                    'expires_at' => time() + 86400, 'base_domain' => $emu->referer(), 'updated_at' => time()];
                $this->putPair($redis, "acc-$a", $pairs[$a]);
            }
            $perHost = Results::count(2, 4);
            $rounds = Results::count(3, 10);
            $round = "{$this->dir}/round";
            $results = "{$this->dir}/results";
            file_put_contents($round, '0');
            // Each process calls every account once a round, each through its own client.
            $code = <<<PHP
                for (\$seen = 0;;) {
                    \$r = (int) @file_get_contents('$round');
                    if (\$r < 0) {
                        return 'stopped';
                    }
                    if (\$r === \$seen) {
                        usleep(500);
                        continue;
                    }
                    \$seen = \$r;
                    for (\$a = 0; \$a < $accounts; \$a++) {
                        try {
                            \$outcome = (string) AmoClient::getInstance("acc-\$a")->request('GET', '/api/v4/account')['id'];
                        } catch (AmoException \$e) {
                            \$outcome = get_class(\$e) . ': ' . \$e->getMessage();
                        }
                        file_put_contents('$results', json_encode([\$r, \$outcome, \$a]) . "\\n", FILE_APPEND | LOCK_EX);
                    }
                }
                PHP;
            $procs = [];
            for ($i = 0; $i < 3 * $perHost; $i++) {
                $procs[] = new PhpProcess($code, $this->hostEnv($i % 3, $redis->url()));
            }
            $n = count($procs) * $accounts;
            $answers = fn (int $r): int => count(array_filter($this->lines($results), fn ($l) => $l[0] === $r));
            try {
                file_put_contents($round, '1');
                $this->waitFor(fn () => $answers(1) >= $n, 'the first round', 60);
                foreach ($emus as $emu) {
                    $emu->control('POST', 'reset-stats');
                }
                for ($r = 2; $r <= $rounds + 1; $r++) {
                    for ($a = 0; $a < $accounts; $a++) {
                        $pair = $this->pairIn($redis, "acc-$a");
                        $pair['expires_at'] = time() - 60;
                        $this->putPair($redis, "acc-$a", $pair);
                    }
                    file_put_contents($round, (string) $r);
                    $this->waitFor(fn () => $answers($r) >= $n, "round $r", 60);
                }
            } finally {
                file_put_contents($round, '-1');
                foreach ($procs as $p) {
                    $p->wait();
                }
            }
            $failed = array_values(array_filter($this->lines($results), fn ($l) => $l[1] !== '31000001'));
            $refreshes = $maxRps = $revoked = [];
            foreach ($emus as $a => $emu) {
                $stats = $emu->stats();
                $refreshes[$a] = (int) ($stats['token_calls']['refresh_token/ok'] ?? 0);
                $revoked[$a] = (int) ($stats['token_calls']['refresh_token/Token has been revoked'] ?? 0);
                $maxRps[$a] = (int) $stats['max_api_rps'];
                $this->assertSame('valid', $emu->check(['refresh_token' => $this->pairIn($redis, "acc-$a")['refresh_token']])['refresh_token'],
                    "acc-$a keeps a pair of its own amoCRM");
            }
            Results::row(self::KEY, ["3 hosts × $perHost processes × $accounts accounts (an amoCRM each), every pair expired $rounds times under load",
                count($procs), $n * $rounds, implode(' ', $refreshes) . " (per account, for $rounds expiries)", max($maxRps) . ' (the busiest account)',
                count($failed) . ' failed calls, ' . array_sum($revoked) . ' revoked',
                !$failed && array_unique($refreshes) === [$rounds] && max($maxRps) <= 7 ? 'pass' : 'FAIL']);
            $this->assertSame([], array_slice($failed, 0, 5), 'every call succeeds');
            $this->assertSame(array_fill(0, $accounts, $rounds), $refreshes, 'one refresh per expiry per account');
            $this->assertSame(array_fill(0, $accounts, 0), $revoked);
            $this->assertLessThanOrEqual(7, max($maxRps), 'each account within 7 requests per second');
        } finally {
            foreach ($emus as $a => $emu) {
                if ($a > 0) {
                    $emu->stop();
                }
            }
        }
    }

    /** A loop of calls until $stop exists; each outcome with its time goes to $results. */
    private function caller(string $stop, string $results): string
    {
        return <<<PHP
            \$amo = AmoClient::getInstance();
            while (!file_exists('$stop')) {
                try {
                    \$outcome = (string) \$amo->request('GET', '/api/v4/account')['id'];
                } catch (AmoException \$e) {
                    \$outcome = get_class(\$e) . ': ' . \$e->getMessage();
                }
                file_put_contents('$results', json_encode([getmypid(), \$outcome, microtime(true)]) . "\\n", FILE_APPEND | LOCK_EX);
                usleep(20000);
            }
            return 'stopped';
            PHP;
    }

    /**
     * Runs $n callers (one per simulated host) and $during() while they run;
     * returns what they recorded.
     * @return list<array{0:int, 1:string, 2:float}>
     */
    private function withCallers(int $n, callable $env, callable $during): array
    {
        $stop = "{$this->dir}/stop";
        $results = "{$this->dir}/calls";
        @unlink($stop);
        @unlink($results);
        $procs = [];
        for ($i = 0; $i < $n; $i++) {
            $procs[] = new PhpProcess($this->caller($stop, $results), $env($i));
        }
        try {
            $during(fn () => $this->lines($results), array_map(fn ($p) => $p->pid, $procs));
        } finally {
            touch($stop);
            foreach ($procs as $p) {
                $r = $p->wait();
                $this->assertSame(['ok' => true, 'result' => 'stopped'], $r['result'], $r['err']);
            }
        }
        return $this->lines($results);
    }

    /** Whether every process in $pids recorded an outcome matching $ok after $since. */
    private static function everyoneAfter(array $lines, array $pids, float $since, bool $ok): bool
    {
        $seen = [];
        foreach ($lines as [$pid, $outcome, $at]) {
            if ($at > $since && ($outcome === '31000001') === $ok) {
                $seen[$pid] = true;
            }
        }
        return count($seen) === count($pids);
    }

    public function testRedisKilledAndRestartedMidRunLosesNothing(): void
    {
        $password = 'redis-pw-' . bin2hex(random_bytes(4));
        $redis = $this->redis([], $password);
        $this->putPair($redis, 'default', $this->mintPair(86400));
        $env = fn (int $host) => $this->hostEnv($host, $redis->url());
        $shown = "Redis redis://127.0.0.1:{$redis->port}/0";
        $times = [];
        $lines = $this->withCallers(3, $env, function (callable $lines, array $pids) use ($redis, $env, &$times) {
            $this->waitFor(fn () => self::everyoneAfter($lines(), $pids, 0, true), 'calls before the kill');
            // A refresh just before the kill: the rotated pair is what must survive.
            $this->assertTrue($this->ok('return AmoClient::getInstance()->refreshToken(true)["authorized"];', $env(0)));
            $times['rotated'] = $this->pairIn($redis);
            $times['kill'] = microtime(true);
            $redis->kill();
            $this->waitFor(fn () => self::everyoneAfter($lines(), $pids, $times['kill'], false), 'an error in every process');
            usleep(500000);
            $times['up'] = microtime(true);
            $redis->restart();
            $times['back'] = $this->waitFor(function () use ($lines, $pids, $times) {
                return self::everyoneAfter($lines(), $pids, $times['up'], true) ? microtime(true) : null;
            }, 'every process working again');
        });
        $errors = array_values(array_filter($lines, fn ($l) => $l[1] !== '31000001'));
        $storage = array_filter($errors, fn ($l) => str_starts_with($l[1], "AmoStorageException: $shown"));
        // After a process's first success since the restart it has no error again.
        $late = [];
        foreach ($lines as [$pid, $outcome, $at]) {
            if ($at > $times['up'] && $outcome === '31000001') {
                $late[$pid] ??= $at;
            } elseif (isset($late[$pid])) {
                $late[] = $outcome;
            }
        }
        $after = $this->pairIn($redis);
        $check = $this->emu->check(['access_token' => $after['access_token'], 'refresh_token' => $after['refresh_token']]);
        $refreshes = $this->emu->tokenCalls('refresh_token/ok');
        $leaks = array_filter($lines, fn ($l) => str_contains($l[1], $password));
        Results::row(self::KEY, ['Redis killed (SIGKILL) for 0.5 s under 3 hosts calling, just after a refresh, then restarted',
            3, count($lines), $refreshes, '-', count($errors) . ' calls failed while it was down, all AmoStorageException naming it; '
            . 'every process working again ' . round(($times['back'] - $times['up']) * 1000) . ' ms after the restart',
            count($storage) === count($errors) && $after == $times['rotated'] && !$leaks ? 'pass: the rotated pair was kept' : 'FAIL']);
        $this->assertNotEmpty($errors);
        $this->assertSame(array_slice($errors, 0, 3), array_slice(array_values($storage), 0, 3), 'every failure is AmoStorageException naming Redis');
        $this->assertCount(count($errors), $storage);
        $this->assertSame([], array_filter($late, 'is_string'), 'no error after a process worked again');
        $this->assertSame($times['rotated'], $after, 'nothing lost: the pair written just before the kill');
        $this->assertSame(['access_token' => 'valid', 'refresh_token' => 'valid'], $check);
        $this->assertSame(1, $refreshes, 'only the forced refresh');
        $this->assertSame([], $leaks, 'the password is never shown');
        // php --ri shows where, never the password.
        $info = shell_exec(sprintf('AMOCRM_STORE=%s %s -n -d extension=%s --ri amocrm 2>&1', escapeshellarg($redis->url()),
            escapeshellarg(PHP_BINARY), escapeshellarg((string) getenv('AMOCRM_EXT'))));
        $this->assertStringContainsString('a Redis URL with a password, hidden', (string) $info);
        $this->assertStringNotContainsString($password, (string) $info);
        for ($h = 0; $h < 3; $h++) {
            $this->assertFileDoesNotExist("{$this->dir}/host$h/tokens.json", 'no fallback to a token file while Redis was down');
        }
    }

    public function testTenAccountsRefreshedConcurrentlyStayIsolated(): void
    {
        $redis = $this->redis();
        $this->emu->control('POST', 'rate-limit', ['rps' => 0]);
        $seeded = [];
        for ($a = 0; $a < 10; $a++) {
            $this->putPair($redis, "acc-$a", $seeded["acc-$a"] = $this->mintPair(-60));
        }
        $n = Results::count(10, 30);
        $results = $this->together($n, <<<'PHP'
            $order = range(0, 9);
            shuffle($order);
            $out = [];
            foreach ($order as $a) {
                try {
                    $out["acc-$a"] = AmoClient::getInstance("acc-$a")->request('GET', '/api/v4/account')['id'];
                } catch (AmoException $e) {
                    $out["acc-$a"] = get_class($e) . ': ' . $e->getMessage();
                }
            }
            return $out;
            PHP, ['AMOCRM_STORE' => $redis->url(), 'AMOCRM_RATE_LIMIT' => '0']);
        $failed = [];
        foreach ($results as $r) {
            foreach (is_array($r['result']['result'] ?? null) ? $r['result']['result'] : ['?' => json_encode($r)] as $acc => $id) {
                if ($id !== 31000001) {
                    $failed[] = "$acc: $id";
                }
            }
        }
        $refreshes = $this->emu->tokenCalls('refresh_token/ok');
        $stored = [];
        $invalid = [];
        foreach ($seeded as $acc => $seed) {
            $pair = $this->pairIn($redis, $acc);
            $stored[$acc] = $pair['refresh_token'];
            $check = $this->emu->check(['access_token' => $pair['access_token'], 'refresh_token' => $pair['refresh_token']]);
            if ($pair['refresh_token'] === $seed['refresh_token'] || $check !== ['access_token' => 'valid', 'refresh_token' => 'valid']) {
                $invalid[] = $acc;
            }
        }
        Results::row(self::KEY, ["10 accounts (getInstance('acc-N')), all expired, refreshed at once by $n processes", $n, $n * 10,
            "$refreshes for 10 accounts", '-', count($failed) . ' failed calls', !$failed && $refreshes === 10 && !$invalid
                ? 'pass: each account its own refreshed pair' : 'FAIL']);
        $this->assertSame([], array_slice($failed, 0, 5));
        $this->assertSame(10, $refreshes, 'one refresh per account');
        $this->assertSame([], $invalid, 'each account keeps its own refreshed, valid pair');
        $this->assertCount(10, array_unique($stored));
        $this->assertSame(0, $this->emu->tokenCalls('refresh_token/Token has been revoked'));
    }

    public function testSentinelFailoverLosesNoPairAndWorkResumesOnTheNewPrimary(): void
    {
        $primary = $this->redis([], null, 'primary');
        $replica = $this->redis(['--replicaof', '127.0.0.1', (string) $primary->port], null, 'replica');
        $this->waitFor(fn () => str_contains((string) $replica->command('INFO', 'replication'), 'master_link_status:up'), 'the replica in sync');
        $sentinel = $this->servers[] = RedisServer::sentinel("{$this->dir}/sentinel", 'gw', $primary->port);
        $this->waitFor(function () use ($sentinel, $replica) {
            foreach ($sentinel->command('SENTINEL', 'REPLICAS', 'gw') ?? [] as $fields) {
                $f = [];
                for ($i = 0; $i + 1 < count($fields); $i += 2) {
                    $f[$fields[$i]] = $fields[$i + 1];
                }
                if (($f['port'] ?? '') === (string) $replica->port && !str_contains($f['flags'] ?? 's_down', 'down')) {
                    return true;
                }
            }
            return false;
        }, 'the sentinel to know the replica');
        $this->putPair($primary, 'default', $this->mintPair(86400));
        $store = "redis+sentinel://127.0.0.1:{$sentinel->port}/gw/0";
        $env = fn (int $host) => $this->hostEnv($host, $store);
        $times = [];
        $lines = $this->withCallers(3, $env, function (callable $lines, array $pids) use ($primary, $replica, $env, &$times) {
            $this->waitFor(fn () => self::everyoneAfter($lines(), $pids, 0, true), 'calls before the failover');
            $this->assertTrue($this->ok('return AmoClient::getInstance()->refreshToken(true)["authorized"];', $env(0)));
            $times['rotated'] = $this->pairIn($primary);
            $times['kill'] = microtime(true);
            $primary->kill();
            $times['back'] = $this->waitFor(function () use ($lines, $pids, $times) {
                return self::everyoneAfter($lines(), $pids, $times['kill'] + 0.5, true) ? microtime(true) : null;
            }, 'every process working on the new primary', 40);
        });
        $this->assertStringContainsString('role:master', (string) $replica->command('INFO', 'replication'), 'the replica was promoted');
        $after = $this->pairIn($replica);
        $check = $this->emu->check(['access_token' => $after['access_token'], 'refresh_token' => $after['refresh_token']]);
        $errors = array_values(array_filter($lines, fn ($l) => $l[1] !== '31000001'));
        $storage = array_filter($errors, fn ($l) => str_starts_with($l[1], "AmoStorageException: Redis redis+sentinel://127.0.0.1:"));
        $refreshes = $this->emu->tokenCalls('refresh_token/ok');
        Results::row(self::KEY, ['Sentinel (1 sentinel, a primary and a replica): the primary killed just after a refresh, mid-run',
            3, count($lines), $refreshes, '-', count($errors) . ' calls failed during the failover, all AmoStorageException naming Redis; '
            . 'every process working on the new primary ' . round(($times['back'] - $times['kill']) * 1000) . ' ms after the kill',
            $after == $times['rotated'] && count($storage) === count($errors) ? 'pass: no pair lost' : 'FAIL']);
        $this->assertSame($times['rotated'], $after, 'the pair written just before the kill is on the new primary');
        $this->assertSame(['access_token' => 'valid', 'refresh_token' => 'valid'], $check);
        $this->assertCount(count($errors), $storage, 'every failure is AmoStorageException naming Redis: ' . json_encode(array_slice($errors, 0, 3)));
        $this->assertSame(1, $refreshes);
    }

    public function testAForkedChildMakesItsOwnConnection(): void
    {
        $redis = $this->redis();
        $this->putPair($redis, 'default', $this->mintPair(86400));
        $go = "{$this->dir}/go";
        $ready = "{$this->dir}/ready";
        $port = $redis->port;
        $result = $this->ok(<<<PHP
            \$amo = AmoClient::getInstance();
            \$before = \$amo->request('GET', '/api/v4/account')['id'];
            \$pid = pcntl_fork();
            if (\$pid === 0) {
                try {
                    \$ok = AmoClient::getInstance()->request('GET', '/api/v4/account')['id'] === 31000001;
                } catch (\\Throwable \$e) {
                    fwrite(STDERR, \$e->getMessage());
                    \$ok = false;
                }
                touch('$ready');
                for (\$i = 0; \$i < 500 && !file_exists('$go'); \$i++) {
                    usleep(10000);
                }
                exit(\$ok ? 0 : 3);
            }
            for (\$i = 0; \$i < 500 && !file_exists('$ready'); \$i++) {
                usleep(10000);
            }
            // Who is connected now: this process, the child, and this probe.
            \$s = stream_socket_client('tcp://127.0.0.1:$port');
            fwrite(\$s, "*2\\r\\n\\\$6\\r\\nCLIENT\\r\\n\\\$4\\r\\nLIST\\r\\n");
            \$len = (int) substr(fgets(\$s), 1);
            \$list = '';
            while (strlen(\$list) < \$len) {
                \$list .= fread(\$s, \$len - strlen(\$list));
            }
            fclose(\$s);
            touch('$go');
            pcntl_waitpid(\$pid, \$status);
            \$after = \$amo->request('GET', '/api/v4/account')['id'];
            return [\$before, pcntl_wexitstatus(\$status), substr_count(\$list, "\\n"), \$after];
            PHP, ['AMOCRM_STORE' => $redis->url()]);
        $this->assertSame([31000001, 0, 3, 31000001], $result, 'the child connected anew, and both went on working');
    }
}
