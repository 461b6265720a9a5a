<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\Gateway\GatewayServer;
use AmoCRM\Tests\Gateway\GatewayTestCase;
use AmoCRM\Tests\Gateway\NginxFpmServer;
use AmoCRM\Tests\PhpProcess;

/**
 * Issue 8.3, refresh storms: many processes find the token expired at the
 * same moment, round after round. Each round must cost amoCRM exactly one
 * refresh, no process may be told "Token has been revoked", and every call
 * succeeds.
 */
final class StormTest extends GatewayTestCase
{
    private const KEY = '30-storms';

    private bool $fpm = false;

    public static function setUpBeforeClass(): void
    {
        Results::section(self::KEY, 'Refresh storms',
            'Each round the stored pair is made to expire (its `expires_at` set in the past, the tokens unchanged), then every '
            . 'process calls amoCRM at once. Both rate limits are off, so that the calls really meet.',
            ['scenario', 'processes', 'rounds', 'calls', 'refreshes at amoCRM', '"Token has been revoked"', 'failed calls']);
    }

    protected function createServer(): GatewayServer
    {
        return $this->fpm
            ? new NginxFpmServer($this->root, $this->port, $this->envFile, $this->dir, 4)
            : parent::createServer();
    }

    /** The stored pair, with the same tokens, expired a minute ago. */
    private function expireThePair(): void
    {
        $pair = $this->storedPair();
        $pair['expires_at'] = time() - 60;
        $this->writeTokenFile($pair);
    }

    private function revoked(): int
    {
        return $this->emu()->tokenCalls('refresh_token/Token has been revoked');
    }

    public function testLongLivedProcessesFindTheTokenExpiredTogether(): void
    {
        $this->configure(['AMOCRM_RATE_LIMIT' => '0'], ['--rate-limit', '0']);
        $this->seedTokens();
        $processes = Results::count(24, 64);
        $rounds = Results::count(6, 20);
        $round = $this->dir . '/round';
        $results = $this->dir . '/results';
        file_put_contents($round, '0');
        // Each process waits for the next round, makes one call, and reports it.
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
                try {
                    \$outcome = (string) \$amo->request('GET', '/api/v4/account')['id'];
                } catch (AmoException \$e) {
                    \$outcome = get_class(\$e) . ': ' . \$e->getMessage();
                }
                file_put_contents('$results', json_encode([\$r, \$outcome]) . "\\n", FILE_APPEND | LOCK_EX);
            }
            PHP;
        $env = ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'];
        foreach ($this->envValues() as $k => $v) {
            if (str_starts_with($k, 'AMOCRM_')) {
                $env[$k] = $v;
            }
        }
        $procs = [];
        for ($i = 0; $i < $processes; $i++) {
            $procs[] = new PhpProcess($code, $env);
        }
        try {
            // Every process has made its first call before the storms begin.
            file_put_contents($round, '1');
            $this->waitForResults($results, 1, $processes);
            $this->emu()->control('POST', 'reset-stats');
            for ($r = 2; $r <= $rounds + 1; $r++) {
                $this->expireThePair();
                file_put_contents($round, (string) $r);
                $this->waitForResults($results, $r, $processes);
            }
        } finally {
            file_put_contents($round, '-1');
            foreach ($procs as $p) {
                $p->wait();
            }
        }
        $failed = [];
        foreach (file($results, FILE_IGNORE_NEW_LINES) as $line) {
            [$r, $outcome] = json_decode($line, true);
            if ($r > 1 && $outcome !== '31000001') {
                $failed[] = "round $r: $outcome";
            }
        }
        $refreshes = $this->emu()->tokenCalls('refresh_token/ok');
        Results::row(self::KEY, ['PHP processes that live through the rounds', $processes, $rounds, $processes * $rounds,
            $refreshes, $this->revoked(), count($failed)]);
        $this->assertSame([], array_slice($failed, 0, 5), 'every call succeeds');
        $this->assertSame($rounds, $refreshes, 'one refresh per round');
        $this->assertSame(0, $this->revoked());
    }

    private function waitForResults(string $file, int $round, int $expected): void
    {
        $this->eventually(function () use ($file, $round, $expected): bool {
            $n = 0;
            foreach (@file($file, FILE_IGNORE_NEW_LINES) ?: [] as $line) {
                $n += json_decode($line, true)[0] === $round ? 1 : 0;
            }
            return $n >= $expected;
        }, "$expected answers in round $round", 60);
    }

    public function testPhpFpmUnderConcurrentLoad(): void
    {
        $this->fpm = true;
        $this->configure(['AMOCRM_RATE_LIMIT' => '0', 'GATEWAY_INFO_CACHE_TTL' => '0'], ['--rate-limit', '0']);
        $this->seedTokens();
        $this->server();
        $concurrent = Results::count(32, 64);
        $rounds = Results::count(6, 20);
        $this->assertSame(200, $this->api('GET', '/api/info/account')->status);
        $this->emu()->control('POST', 'reset-stats');
        $failed = 0;
        $batch = array_fill(0, $concurrent, ['GET', '/api/info/account', ['bearer' => self::API_KEY]]);
        for ($r = 1; $r <= $rounds; $r++) {
            $this->expireThePair();
            foreach ($this->http()->concurrently($batch) as $answer) {
                $failed += $answer->status === 200 && ($answer->json()['id'] ?? null) === 31000001 ? 0 : 1;
            }
        }
        $this->http()->log = [];
        $refreshes = $this->emu()->tokenCalls('refresh_token/ok');
        Results::row(self::KEY, ['php-fpm (4 workers) behind nginx, ' . $concurrent . ' requests in flight per round', 4, $rounds,
            $concurrent * $rounds, $refreshes, $this->revoked(), $failed]);
        $this->assertSame(0, $failed, 'every request succeeds');
        $this->assertSame($rounds, $refreshes, 'one refresh per round');
        $this->assertSame(0, $this->revoked());
    }
}
