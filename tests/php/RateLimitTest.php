<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** One request budget for all PHP processes of the host; 429 and 403 handling. */
final class RateLimitTest extends AmoTestCase
{
    public function testThreeProcessesTogetherStayUnderSevenPerSecond(): void
    {
        $this->seedTokens();
        $this->emu->control('POST', 'reset-stats');
        $start = microtime(true) + 0.5;
        $procs = [];
        for ($i = 0; $i < 3; $i++) {
            $procs[] = new PhpProcess(<<<'PHP'
                while (microtime(true) < (float) getenv('START_AT')) { usleep(500); }
                $amo = AmoClient::getInstance();
                for ($i = 0; $i < 20; $i++) { $amo->request('GET', '/api/v4/account'); }
                return 20;
                PHP, $this->env(['START_AT' => (string) $start]));
        }
        foreach ($procs as $p) {
            $r = $p->wait();
            $this->assertSame(20, $r['result']['result'] ?? null, $r['out'] . $r['err']);
        }
        $stats = $this->emu->stats();
        $this->assertSame(60, $stats['api_calls']['200'] ?? 0);
        $this->assertLessThanOrEqual(7, $stats['max_api_rps'], 'never more than 7 requests in any one-second window');
        $this->assertSame(0, $stats['rate_limited'], 'no 429 was needed');
    }

    public function testA429StormEndsInRateLimitExceptionAfterBoundedRetries(): void
    {
        $this->seedTokens();
        $this->emu->fault(['path' => '/api/v4/', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html',
            'body' => '<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1></center></body></html>']);
        $e = $this->fails('AmoRateLimitException', "AmoClient::getInstance()->leads()->addOne(['name' => 'x']);",
            ['AMOCRM_MAX_RETRIES' => '3', 'AMOCRM_RETRY_BACKOFF_MS' => '20']);
        $this->assertSame(429, $e['errorCode']);
        $this->assertStringContainsString('after 3 retries', $e['message']);
        $this->assertStringContainsString('429 Too Many Requests', $e['description']);
        $this->assertSame(4, $this->emu->stats()['faults']['respond']);
    }

    public function testA429IsRetriedEvenForAPost(): void
    {
        $this->seedTokens();
        $this->emu->fault(['path' => '/api/v4/leads', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html', 'body' => '<html>429</html>', 'times' => 2]);
        $id = $this->ok("return AmoClient::getInstance()->leads()->addOne(['name' => 'after 429'])['id'];", ['AMOCRM_RETRY_BACKOFF_MS' => '20']);
        $this->assertIsInt($id);
        $this->assertCount(1, $this->emu->control('GET', 'leads'), 'a 429 means amoCRM did nothing: resending is safe');
    }

    public function testAnAccountBlockIsFinalAtOnce(): void
    {
        $this->seedTokens();
        $this->emu->fault(['path' => '/api/v4/', 'action' => 'respond', 'status' => 403, 'content_type' => 'text/html',
            'body' => '<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>']);
        $e = $this->fails('AmoRateLimitException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", ['AMOCRM_RETRY_BACKOFF_MS' => '20']);
        $this->assertSame(403, $e['errorCode']);
        $this->assertStringContainsString('blocked', $e['message']);
        $this->assertSame(1, $this->emu->stats()['faults']['respond'], 'no retry: it would prolong the block');
    }

    public function testTheEmulatorsOwnLimiterAgreesWithOurs(): void
    {
        // Without our limiter (rate_limit=0) a burst is answered 429 by the
        // emulator; the client retries with backoff and every call succeeds.
        $this->seedTokens();
        $this->emu->control('POST', 'rate-limit', ['block_after' => 1000]);
        $n = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            for ($i = 0; $i < 12; $i++) { $amo->request('GET', '/api/v4/account'); }
            return 12;
            PHP, ['AMOCRM_RATE_LIMIT' => '0', 'AMOCRM_RETRY_BACKOFF_MS' => '300', 'AMOCRM_MAX_RETRIES' => '5']);
        $this->assertSame(12, $n);
        $stats = $this->emu->stats();
        $this->assertGreaterThan(0, $stats['rate_limited'], 'the burst did hit amoCRM\'s limit');
        $this->assertSame(12, $stats['api_calls']['200'] ?? 0);
    }
}
