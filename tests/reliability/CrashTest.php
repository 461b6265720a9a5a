<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\Gateway\GatewayTestCase;
use AmoCRM\Tests\Gateway\NginxFpmServer;
use AmoCRM\Tests\Gateway\GatewayServer;
use AmoCRM\Tests\PhpProcess;

/**
 * Issue 8.2, crash consistency at scale: SIGKILLs at random moments while
 * 16 processes refresh and write the token file, and while php-fpm workers
 * spool webhooks; a lock holder killed, and one stopped.
 */
final class CrashTest extends GatewayTestCase
{
    private const KEY = '20-crash';
    private const PROCESSES = 16;

    private bool $fpm = false;

    public static function setUpBeforeClass(): void
    {
        Results::section(self::KEY, 'Crash consistency',
            'SIGKILLs at random moments (a random one of the running processes, after a random 2–40 ms) while '
            . self::PROCESSES . ' PHP processes force refreshes in a loop (each one a token request, a write of the token '
            . 'file and the lock around them), and while 16 concurrent senders post webhooks to 4 php-fpm workers. '
            . 'A killed process is replaced at once. A lock holder killed releases the lock with its death; a stopped '
            . 'one is taken over after the lock wait (connect_timeout + timeout + 5 s), and when it resumes its write is refused.',
            ['scenario', 'kills', 'work done meanwhile', 'checks', 'result']);
    }

    protected function createServer(): GatewayServer
    {
        return $this->fpm
            ? new NginxFpmServer($this->root, $this->port, $this->envFile, $this->dir, 4)
            : parent::createServer();
    }

    /** @return array<string, string> the AMOCRM_* settings as a PHP process's environment */
    private function amoEnv(array $extra = []): array
    {
        $env = ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'];
        foreach ($this->envValues() as $k => $v) {
            if (str_starts_with($k, 'AMOCRM_')) {
                $env[$k] = $v;
            }
        }
        return $extra + $env;
    }

    public function testSigkillsWhileProcessesRefreshAndWriteTheTokenFile(): void
    {
        $this->configure(['AMOCRM_RATE_LIMIT' => '0'], ['--rate-limit', '0']);
        $this->seedTokens(3600);
        // A little time at amoCRM, so that kills also land while the lock is held for a request.
        $this->emu()->fault(['path' => '/oauth2/access_token', 'action' => 'delay', 'delay_ms' => 3]);
        $kills = Results::count(150, 400);
        $loop = "\$amo = AmoClient::getInstance();\nfor (;;) { \$amo->refreshToken(true); }";
        $procs = [];
        for ($i = 0; $i < self::PROCESSES; $i++) {
            $procs[$i] = new PhpProcess($loop, $this->amoEnv());
        }
        mt_srand(20261129);
        $reads = 0;
        for ($k = 0; $k < $kills; $k++) {
            usleep(mt_rand(2000, 40000));
            $i = mt_rand(0, self::PROCESSES - 1);
            $procs[$i]->kill();
            $procs[$i]->wait();
            $procs[$i] = new PhpProcess($loop, $this->amoEnv());
            // Whenever anyone looks, the file is a whole pair.
            $raw = (string) file_get_contents($this->tokenPath);
            $this->assertIsArray(json_decode($raw, true), "after kill $k the token file does not parse (" . strlen($raw) . ' bytes)');
            $reads++;
        }
        foreach ($procs as $p) {
            $p->kill();
            $p->wait();
        }
        $this->emu()->control('DELETE', 'faults');
        $refreshes = $this->emu()->tokenCalls('refresh_token/ok');
        $pair = $this->storedPair();
        $check = $this->emu()->check(['refresh_token' => $pair['refresh_token']]);
        $this->assertSame('valid', $check['refresh_token'], 'the stored refresh token is accepted');
        $left = array_values(array_diff(scandir($this->dir) ?: [], ['.', '..']));
        $temps = preg_grep('/\.tmp/', $left) ?: [];
        $this->assertLessThanOrEqual(1, count($temps), 'at most the one fixed temp file, which the next writer truncates');
        // The next process is not blocked by anything left behind.
        $t = microtime(true);
        $next = $this->php("\$amo = AmoClient::getInstance(); \$amo->refreshToken(true); return \$amo->request('GET', '/api/v4/account')['id'];");
        $this->assertSame(31000001, $next);
        $this->assertLessThan(5.0, microtime(true) - $t, 'the next process refreshed at once');
        Results::row(self::KEY, ['SIGKILL while refreshing and writing tokens.json', $kills,
            "$refreshes refreshes completed at amoCRM", "$reads reads of the file between kills; the final pair's refresh token",
            'every read parsed; the stored refresh token was valid; ' . count($temps) . ' temp file left; the next process refreshed at once']);
        $this->assertGreaterThan($kills, $refreshes, 'the kills landed among many refreshes');
    }

    /** @return mixed what the snippet returned, through a fresh process */
    private function php(string $code): mixed
    {
        $r = (new PhpProcess($code, $this->amoEnv()))->wait();
        $this->assertTrue($r['result']['ok'] ?? false, 'the snippet: ' . json_encode($r['result']) . $r['err']);
        return $r['result']['result'];
    }

    public function testSigkillsOfFpmWorkersWhileTheySpoolWebhooks(): void
    {
        $this->fpm = true;
        $kills = Results::count(40, 100);
        $this->server();
        $master = (int) trim((string) file_get_contents($this->dir . '/nginx-fpm/php-fpm.pid'));
        $mh = curl_multi_init();
        $inFlight = [];
        $acknowledged = [];
        $other = [];
        $sent = 0;
        $killed = 0;
        $nextKill = microtime(true) + mt_rand(2, 40) / 1000;
        $url = $this->server()->baseUrl() . '/webhooks/amocrm/' . $this->webhookSecret;
        mt_srand(8202);
        while ($killed < $kills || $inFlight !== []) {
            while ($killed < $kills && count($inFlight) < 16) {
                $id = 'delivery-' . ++$sent;
                $h = curl_init($url);
                curl_setopt_array($h, [CURLOPT_POST => true, CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 30,
                    CURLOPT_POSTFIELDS => "leads%5Bstatus%5D%5B0%5D%5Bid%5D=$sent&account%5Bid%5D=31000001&test%5Bid%5D=$id"]);
                curl_multi_add_handle($mh, $h);
                $inFlight[(int) $h] = [$h, $id];
            }
            curl_multi_exec($mh, $running);
            curl_multi_select($mh, 0.005);
            while ($done = curl_multi_info_read($mh)) {
                [$h, $id] = $inFlight[(int) $done['handle']];
                $status = (int) curl_getinfo($h, CURLINFO_RESPONSE_CODE);
                // amoCRM takes any 200 as delivered, even one cut short.
                if ($status === 200) {
                    $acknowledged[] = $id;
                } else {
                    $other[$status] = ($other[$status] ?? 0) + 1;
                }
                curl_multi_remove_handle($mh, $h);
                curl_close($h);
                unset($inFlight[(int) $done['handle']]);
            }
            if ($killed < $kills && microtime(true) >= $nextKill) {
                $workers = self::children($master);
                if ($workers !== []) {
                    posix_kill($workers[mt_rand(0, count($workers) - 1)], SIGKILL);
                    $killed++;
                }
                $nextKill = microtime(true) + mt_rand(2, 40) / 1000;
            }
        }
        curl_multi_close($mh);
        // The workers hand deliveries to the handlers after answering: let the spool settle.
        $listing = fn (): array => array_merge(...array_map(fn ($s) => $this->spool($s), ['pending', 'done', 'failed']));
        $deadline = microtime(true) + 15;
        do {
            $before = $listing();
            usleep(300000);
        } while ($before !== $listing() && microtime(true) < $deadline);
        // Every delivery that got its 200 is on disk, whole.
        $stored = [];
        foreach (['pending', 'done', 'failed'] as $state) {
            foreach ($this->spool($state) as $file) {
                $d = json_decode((string) file_get_contents($file), true);
                $this->assertIsArray($d, "$file parses");
                $body = isset($d['body_base64']) ? base64_decode($d['body_base64']) : (string) ($d['body'] ?? '');
                parse_str($body, $fields);
                $stored[$fields['test']['id'] ?? ''] = true;
            }
        }
        $lost = array_values(array_filter($acknowledged, static fn ($id) => !isset($stored[$id])));
        $this->assertSame([], $lost, 'acknowledged deliveries missing from the spool');
        $temps = glob($this->dataDir . '/webhooks/*/*.tmp.*') ?: [];
        // What killed workers left: removed by the next `webhooks:replay` once a minute old.
        foreach ($temps as $tmp) {
            touch($tmp, time() - 120);
        }
        $replay = $this->cli(['webhooks:replay', '--all']);
        $this->assertSame([], glob($this->dataDir . '/webhooks/*/*.tmp.*') ?: [], 'replay removed the dead temp files: ' . $replay['out'] . $replay['err']);
        $this->http()->log = [];
        ksort($other);
        $others = implode(', ', array_map(static fn ($s, $n) => "$n × " . ($s === 0 ? 'no answer' : $s), array_keys($other), $other));
        Results::row(self::KEY, ['SIGKILL of php-fpm workers spooling webhooks', $killed,
            "$sent deliveries sent, " . count($acknowledged) . ' answered 200' . ($others !== '' ? ", $others (amoCRM sends those again)" : ''),
            'every delivery answered 200 looked up on disk', count($lost) . ' lost; ' . count($temps) . ' temp files of killed writes, removed by the next webhooks:replay']);
        $this->assertGreaterThan($kills, count($acknowledged), 'the kills landed among many deliveries');
    }

    /** @return list<int> the pids of a process's children */
    private static function children(int $parent): array
    {
        $out = [];
        foreach (glob('/proc/[0-9]*/stat') ?: [] as $stat) {
            $fields = explode(' ', substr((string) @file_get_contents($stat), (int) strrpos((string) @file_get_contents($stat), ')') + 2));
            if ((int) ($fields[1] ?? 0) === $parent) {
                $out[] = (int) basename(dirname($stat));
            }
        }
        return $out;
    }

    /** The state letter of /proc/PID/stat (T: stopped), for failure messages. */
    private static function procState(int $pid): string
    {
        $stat = @file_get_contents("/proc/$pid/stat");
        return $stat === false ? 'gone' : (explode(' ', trim(substr($stat, strrpos($stat, ')') + 1)))[0] ?? '?');
    }

    /** A process holding the refresh lock while amoCRM is slow: its pid once it holds it. */
    private function holderDuringASlowRefresh(): PhpProcess
    {
        $this->emu()->fault(['path' => '/oauth2/access_token', 'action' => 'delay', 'delay_ms' => 2500, 'times' => 1]);
        $holder = new PhpProcess("return AmoClient::getInstance()->refreshToken(true)['expires_in'];", $this->amoEnv());
        $lock = $this->tokenPath . '.lock';
        $this->eventually(fn () => is_file($lock) && trim((string) file_get_contents($lock)) === (string) $holder->pid, 'the holder takes the lock');
        return $holder;
    }

    public function testAKilledLockHolderBlocksNobody(): void
    {
        $this->configure(['AMOCRM_CONNECT_TIMEOUT' => '1', 'AMOCRM_TIMEOUT' => '5']);
        $this->seedTokens(-60);
        $holder = $this->holderDuringASlowRefresh();
        $waiter = new PhpProcess("\$t = microtime(true); \$id = AmoClient::getInstance()->request('GET', '/api/v4/account')['id']; return [\$id, microtime(true) - \$t];", $this->amoEnv());
        usleep(300000);
        $holder->kill();
        $holder->wait();
        $r = $waiter->wait();
        $this->assertTrue($r['result']['ok'] ?? false, json_encode($r['result']) . $r['err']);
        [$id, $seconds] = $r['result']['result'];
        $this->assertSame(31000001, $id);
        $this->assertLessThan(2.5, $seconds, 'the waiter went on as soon as the holder died, not after the holder\'s slow answer');
        $this->assertSame('valid', $this->emu()->check(['refresh_token' => $this->storedPair()['refresh_token']])['refresh_token']);
        Results::row(self::KEY, ['the refresh lock\'s holder SIGKILLed mid-refresh', 1, 'one process waiting for the lock',
            'how long the waiter waited', sprintf('went on %.2f s after it started, at the holder\'s death (amoCRM was slowed to 2.5 s)', $seconds)]);
    }

    public function testAStoppedLockHolderIsTakenOverAndItsWriteRefused(): void
    {
        // lock_wait = connect_timeout + timeout + 5 s = 7 s here.
        $this->configure(['AMOCRM_CONNECT_TIMEOUT' => '1', 'AMOCRM_TIMEOUT' => '1']);
        $this->seedTokens(-60);
        $holder = $this->holderDuringASlowRefresh();
        posix_kill($holder->pid, SIGSTOP);
        $t = microtime(true);
        $waiters = [];
        for ($i = 0; $i < 3; $i++) {
            $waiters[] = new PhpProcess("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];", $this->amoEnv());
        }
        foreach ($waiters as $w) {
            $r = $w->wait();
            $this->assertTrue($r['result']['ok'] ?? false, json_encode($r['result']) . $r['err']
                . sprintf(' (the stopped holder is process %d, now %s; waiters %s)', $holder->pid, self::procState($holder->pid),
                    implode(', ', array_map(static fn (PhpProcess $p) => $p->pid, $waiters))));
            $this->assertSame(31000001, $r['result']['result']);
        }
        $waited = microtime(true) - $t;
        $this->assertGreaterThan(6.0, $waited, 'a stopped holder is waited for first: it may only be slow');
        $this->assertLessThan(7.0 + 5.0, $waited, 'then taken over: the host is not wedged');
        $taken = $this->storedPair();
        // The holder resumes: its write is refused (it goes on with the pair
        // the others stored), or its token request timed out meanwhile.
        posix_kill($holder->pid, SIGCONT);
        $r = $holder->wait();
        $this->assertIsArray($r['result'], 'the resumed holder reported: ' . $r['err']);
        $outcome = ($r['result']['ok'] ?? false) ? 'went on with the stored pair' : $r['result']['class'];
        $this->assertContains($outcome, ['went on with the stored pair', 'AmoTransportException'], json_encode($r['result']));
        $this->assertSame($taken, $this->storedPair(), 'the resumed holder did not overwrite the pair');
        $this->assertSame('valid', $this->emu()->check(['refresh_token' => $taken['refresh_token']])['refresh_token']);
        Results::row(self::KEY, ['the refresh lock\'s holder SIGSTOPped mid-refresh', 0, '3 processes needing a refresh (the pair had expired)',
            'when they went on; what the holder did on SIGCONT', sprintf('all 3 went on after %.1f s (lock wait 7 s, then taken over); the resumed holder: %s; the stored pair stayed, valid',
                $waited, $outcome)]);
    }
}
