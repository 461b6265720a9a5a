<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** Many PHP processes, one token: single-flight refresh, SIGKILL, keep-alive. */
final class ConcurrencyTest extends AmoTestCase
{
    public function testEightProcessesFindingTheTokenExpiredRefreshExactlyOnce(): void
    {
        $this->seedTokens(-30);
        // Slow the token endpoint a little so that every process is waiting
        // on the lock while the one refresh is in flight.
        $this->emu->fault(['path' => '/oauth2/access_token', 'action' => 'delay', 'delay_ms' => 200, 'times' => 1]);
        $results = $this->together(8, <<<'PHP'
            $amo = AmoClient::getInstance();
            $ids = [];
            for ($i = 0; $i < 3; $i++) { $ids[] = $amo->request('GET', '/api/v4/account')['id']; }
            return $ids;
            PHP);
        foreach ($results as $i => $r) {
            $this->assertIsArray($r['result'], "process $i: {$r['err']}");
            $this->assertTrue($r['result']['ok'], "process $i: " . json_encode($r['result']));
            $this->assertSame([31000001, 31000001, 31000001], $r['result']['result']);
        }
        $stats = $this->emu->stats();
        $this->assertSame(['refresh_token/ok' => 1], $stats['token_calls'], 'exactly one refresh reached amoCRM');
        $this->assertSame(24, $stats['api_calls']['200'] ?? 0);
        $this->assertSame(0, $stats['api_calls']['401'] ?? 0);
    }

    public function testSigkillDuringRefreshNeverLeavesABrokenOrDeadPair(): void
    {
        $this->seedTokens(-30);
        mt_srand(20261127);
        for ($round = 0; $round < 12; $round++) {
            // Keep every refresh slow enough that kills land inside it: before
            // the answer, between answer and rename, after.
            $this->emu->fault(['path' => '/oauth2/access_token', 'action' => 'delay', 'delay_ms' => mt_rand(0, 40), 'times' => 4]);
            // The limiter off: at 7 per second (a slot held a second after
            // each answer) a round's 20–120 ms would hold a refresh or two,
            // and the kills must land among many.
            $procs = [];
            for ($i = 0; $i < 4; $i++) {
                $procs[] = new PhpProcess("for (\$i = 0; \$i < 50; \$i++) { AmoClient::getInstance()->refreshToken(true); }\nreturn 'done';", $this->env(['AMOCRM_RATE_LIMIT' => '0']));
            }
            usleep(mt_rand(20000, 120000));
            foreach ($procs as $p) {
                $p->kill();
                usleep(mt_rand(0, 15000));
            }
            foreach ($procs as $p) {
                $p->wait();
            }
            $raw = file_get_contents($this->tokenPath);
            $pair = json_decode((string) $raw, true);
            // Never the content in the message: it holds tokens.
            $this->assertIsArray($pair, "round $round: the token file does not parse (" . strlen((string) $raw) . ' bytes, ' . json_last_error_msg() . ')');
            foreach (['access_token', 'refresh_token', 'expires_at', 'base_domain', 'updated_at'] as $k) {
                $this->assertArrayHasKey($k, $pair, "round $round");
            }
            $check = $this->emu->check(['refresh_token' => $pair['refresh_token']]);
            $this->assertSame('valid', $check['refresh_token'], "round $round: the stored refresh token is accepted");
        }
        // The survivor pair works: a fresh process refreshes and calls the API.
        $this->emu->control('DELETE', 'faults');
        $this->ok('return AmoClient::getInstance()->refreshToken(true);');
        $this->assertSame(31000001, $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];"));
        $this->assertGreaterThan(12, $this->emu->tokenCalls('refresh_token/ok'), 'kills did land among many refreshes');
        $leftovers = array_filter(scandir($this->dir), static fn ($f) => str_contains($f, '.tmp.'));
        $this->assertLessThanOrEqual(1, count($leftovers), 'a killed writer leaves at most the one temp file, never a broken token file');
    }

    public function testConnectionsAreKeptAliveAcrossCalls(): void
    {
        $this->seedTokens(3600);
        $before = $this->emu->stats()['connections'];
        $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            for ($i = 0; $i < 25; $i++) { $amo->request('GET', '/api/v4/account'); }
            return true;
            PHP);
        $after = $this->emu->stats()['connections'];
        // One connection for the 25 calls, plus the stats call itself.
        $this->assertSame(2, $after - $before);
    }
}
