<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * Issue 7.6: an admin edits AMOCRM_* in the .env of a running gateway. Every
 * php-fpm worker already has a client; the next request of each must use the
 * new options, never answer 500 until a restart. And AmoClient::getInstance()
 * stays safe across the requests of a worker (one object per request).
 */
final class ConfigReloadTest extends GatewayTestCase
{
    use OnNginxFpm;

    /** @return list<array<string, mixed>> /oauth/status from every worker, $n times over */
    private function statuses(int $n): array
    {
        $out = [];
        $batch = array_fill(0, 4, ['GET', '/oauth/status', ['basic' => [self::ADMIN_USER, self::ADMIN_PASSWORD]]]);
        for ($i = 0; $i < $n; $i++) {
            foreach ($this->http()->concurrently($batch) as $r) {
                $out[] = $this->assertJsonAnswer($r, 200);
            }
        }
        return $out;
    }

    public function testEditedAmocrmOptionsApplyAtTheNextRequestOfEveryWorker(): void
    {
        $this->seedTokens();
        $this->server();
        foreach ($this->statuses(5) as $s) {
            $this->assertSame($this->tokenPath, $s['token_path']);
        }
        $this->assertSame(200, $this->api('GET', '/api/info/account')->status);

        // The admin moves the token file and edits the .env; the workers keep running.
        $moved = $this->dir . '/moved/tokens.json';
        mkdir(dirname($moved), 0700);
        copy($this->tokenPath, $moved);
        chmod($moved, 0600);
        $this->writeEnv(['AMOCRM_TOKEN_PATH' => $moved, 'AMOCRM_RATE_LIMIT' => '5'] + $this->envValues());

        foreach ($this->statuses(5) as $s) {
            $this->assertSame($moved, $s['token_path'], 'every worker uses the new token_path');
            $this->assertTrue($s['authorized']);
        }
        $r = $this->api('GET', '/api/leads/999999999');
        $this->assertSame(404, $r->status, 'API calls work with the new options: ' . $r->describe());
        $this->assertFileExists($moved . '.shm', 'the rate limit now lives beside the new token file');

        // An invalid value is a configuration problem (not a stale client), and fixing it heals every worker.
        $this->writeEnv(['AMOCRM_TOKEN_PATH' => $moved, 'AMOCRM_TIMEOUT' => 'soon'] + $this->envValues());
        $this->assertSame(500, $this->request('GET', '/oauth/status', ['basic' => [self::ADMIN_USER, self::ADMIN_PASSWORD]])->status);
        $this->writeEnv(['AMOCRM_TOKEN_PATH' => $moved] + $this->envValues());
        foreach ($this->statuses(3) as $s) {
            $this->assertSame($moved, $s['token_path']);
        }
    }
}
