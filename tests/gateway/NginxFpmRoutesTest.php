<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * Every route again under Debian's nginx + php-fpm, configured from
 * php/deploy/nginx-site.conf and php/deploy/php-fpm-pool.conf (4 static
 * workers); plus what only that setup shows: connections to amoCRM reused
 * across FPM requests, and the site's own limits.
 */
final class NginxFpmRoutesTest extends GatewayRoutesTestCase
{
    use OnNginxFpm;

    public function testConnectionsToAmoCrmAreReusedAcrossFpmRequests(): void
    {
        // No rate limit on either side: 500 requests as fast as 4 workers go.
        $this->configure(['AMOCRM_RATE_LIMIT' => '0', 'GATEWAY_INFO_CACHE_TTL' => '0'], ['--rate-limit', '0']);
        $this->seedTokens();
        $this->server();
        $this->emu()->control('POST', 'reset-stats');
        $before = $this->emu()->stats()['connections']; // the control calls so far

        $requests = 500;
        $ok = 0;
        $batch = array_fill(0, 8, ['GET', '/api/info/account', ['bearer' => self::API_KEY]]);
        for ($sent = 0; $sent < $requests; $sent += count($batch)) {
            foreach ($this->http()->concurrently(array_slice($batch, 0, min(count($batch), $requests - $sent))) as $r) {
                $this->assertSame(200, $r->status, $r->describe());
                $ok++;
            }
        }
        $this->http()->log = []; // 500 answers: the leak check of tearDown need not scan them all
        $this->assertSame($requests, $ok);

        $stats = $this->emu()->stats();
        $this->assertSame($requests, (int) array_sum($stats['api_calls']), 'every request reached amoCRM (no cache)');
        $apiConnections = $stats['connections'] - $before - 1; // minus this stats call
        $this->assertGreaterThanOrEqual(1, $apiConnections);
        $this->assertLessThanOrEqual(
            $this->server()->workers() + 4,
            $apiConnections,
            "$requests requests over {$this->server()->workers()} FPM workers opened $apiConnections connections to amoCRM: each worker must keep its connection"
        );
    }

    public function testTheSiteServesOnlyTheFrontController(): void
    {
        // Dotfiles never reach PHP (nginx answers), and nothing escapes the root.
        $r = $this->request('GET', '/.env');
        $this->assertSame(404, $r->status);
        $this->assertSame('text/html', $r->contentType(), 'nginx\'s own 404: the dotfile rule of the site, not the gateway');
        foreach (['/.env', '/.git/config', '/.htaccess', '/var/.env', '/../.env', '/index.php/../../.env', '/%2e%2e/.env'] as $path) {
            $r = $this->request('GET', $path, ['path_as_is' => true]);
            $this->assertContains($r->status, [400, 404], "$path: " . $r->describe());
            $this->assertStringNotContainsString('GATEWAY_', $r->body);
            $this->assertStringNotContainsString(self::CLIENT_SECRET, $r->body);
        }
        foreach (['/index.php', '/src/App.php', '/config/fields.php', '/composer.json', '/autoload.php'] as $path) {
            $r = $this->request('GET', $path);
            $this->assertSame(404, $r->status, "$path: routed to the front controller, which has no such route: " . $r->describe());
            $this->assertSame('application/problem+json', $r->contentType(), $path);
            $this->assertStringNotContainsString('<?php', $r->body);
        }
        $this->assertNull($this->request('GET', '/health')->header('x-powered-by'), 'no X-Powered-By');
    }

    public function testAWebhookIsAnsweredBeforeItsHandlersRun(): void
    {
        // The jsonl handler writes to a FIFO: it blocks until this test reads.
        $fifo = $this->dir . '/webhooks.fifo';
        $this->assertTrue(posix_mkfifo($fifo, 0600));
        $this->configure(['GATEWAY_WEBHOOK_HANDLERS' => 'jsonl:' . $fifo]);
        $r = $this->request('POST', '/webhooks/amocrm/' . $this->webhookSecret, ['form' => 'leads%5Badd%5D%5B0%5D%5Bid%5D=1000901', 'timeout' => 10]);
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertLessThan(2.0, $r->seconds);
        $this->assertCount(1, $this->spool('pending'), 'stored before the answer, handled after it (fastcgi_finish_request)');
        $this->assertSame([], $this->spool('done'));

        // Now read: the handler goes on and the delivery is done.
        $reader = fopen($fifo, 'r+'); // O_RDWR: never blocks on a FIFO
        $this->assertNotFalse($reader);
        stream_set_blocking($reader, false);
        $line = '';
        $deadline = microtime(true) + 10;
        while (!str_contains($line, "\n") && microtime(true) < $deadline) {
            $read = [$reader];
            $w = $e = null;
            if (stream_select($read, $w, $e, 0, 200000)) {
                $line .= (string) fread($reader, 65536);
            }
        }
        fclose($reader);
        $this->assertStringContainsString('1000901', $line, 'the handler got the delivery');
        $this->eventually(fn () => count($this->spool('done')) === 1 ?: null, 'the delivery in done/');
        $this->assertSame([], $this->spool('pending'));
    }

    public function testTheAccessLogHidesTheWebhookSecret(): void
    {
        $this->assertSame(200, $this->request('POST', '/webhooks/amocrm/' . $this->webhookSecret, ['form' => 'leads%5Badd%5D%5B0%5D%5Bid%5D=1'])->status);
        $this->assertSame(404, $this->request('POST', '/webhooks/amocrm/' . strrev($this->webhookSecret), ['form' => 'x=1'])->status);
        $log = $this->dir . '/nginx-fpm/log/amocrm-gateway.access.log';
        $text = $this->eventually(fn () => substr_count((string) @file_get_contents($log), '/webhooks/amocrm/') >= 2 ? (string) file_get_contents($log) : null, 'two lines in the access log');
        $this->assertStringContainsString('"POST /webhooks/amocrm/[secret] HTTP/1.1" 200', $text);
        $this->assertStringNotContainsString($this->webhookSecret, $text);
        $this->assertStringNotContainsString(strrev($this->webhookSecret), $text, 'a guess is not logged either');
    }

    public function testBodiesOverTheSiteLimitAreRefusedByNginx(): void
    {
        $this->seedTokens();
        $r = $this->api('POST', '/api/leads', ['json' => ['contact' => ['phone' => '+79001112233'], 'comment' => str_repeat('x', 70000)]]);
        $this->assertSame(413, $r->status, $r->describe());
        $this->assertSame('application/problem+json', $r->contentType(), 'nginx answers 413 as a problem document too');
        $this->assertSame(413, $r->json()['status'] ?? null);
        $this->assertSame([], $this->emu()->stats()['api_calls']);
        // Just under the limit passes nginx and reaches the gateway's own checks.
        $r = $this->api('POST', '/api/leads', ['json' => ['contact' => ['phone' => '+79001112233'], 'comment' => str_repeat('x', 10001)]]);
        $this->assertProblem($r, 422, 'comment');
    }
}
