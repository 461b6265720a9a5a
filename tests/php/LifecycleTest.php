<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** Expiry, refresh, 401 handling, revoked and unreachable token endpoints. */
final class LifecycleTest extends AmoTestCase
{
    private const ACCOUNT = "return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];";

    public function testValidTokenIsUsedWithoutRefresh(): void
    {
        $pair = $this->seedTokens(3600);
        $this->assertSame(31000001, $this->ok(self::ACCOUNT));
        $this->assertSame([], $this->emu->stats()['token_calls']);
        $this->assertSame($pair['access_token'], $this->storedPair()['access_token']);
    }

    public function testTokenWithinTheMarginIsRefreshedBeforeTheCall(): void
    {
        $old = $this->seedTokens(300); // inside the default 600 s margin
        $this->assertSame(31000001, $this->ok(self::ACCOUNT));
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'));
        $new = $this->storedPair();
        $this->assertNotSame($old['refresh_token'], $new['refresh_token']);
        $this->assertEqualsWithDelta(time() + 86400, $new['expires_at'], 5);
        $this->assertSame(['access_token' => 'valid', 'refresh_token' => 'valid'],
            $this->emu->check(['access_token' => $new['access_token'], 'refresh_token' => $new['refresh_token']]));
        // A smaller margin leaves the same token alone.
        $this->seedTokens(300);
        $this->ok(self::ACCOUNT, ['AMOCRM_REFRESH_MARGIN' => '60']);
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'));
    }

    public function testA401RefreshesOnceAndRetriesTheSameRequest(): void
    {
        $pair = $this->seedTokens(3600);
        // Create a lead, then spend the pair's refresh token elsewhere: the
        // stored access token dies, the stored refresh token stays valid
        // (amoCRM's grace rule) until the new one is used.
        $this->emu->refreshDirectly($pair['refresh_token']);
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            return $amo->request('PATCH', '/api/v4/leads/' . $amo->request('POST', '/api/v4/leads', [], [['name' => 'first']])['_embedded']['leads'][0]['id'], [], ['name' => 'renamed', 'price' => 5]);
            PHP);
        $this->assertArrayHasKey('id', $r);
        $stats = $this->emu->stats();
        $this->assertSame(2, $stats['token_calls']['refresh_token/ok'], 'ours and the direct one');
        $this->assertSame(1, $stats['api_calls']['401'] ?? 0);
        $leads = $this->emu->control('GET', 'leads');
        $leads = $leads['leads'] ?? $leads;
        $this->assertCount(1, $leads, 'the retried POST created exactly one lead');
        $this->assertSame('renamed', $leads[0]['name']);
        $this->assertSame(5, $leads[0]['price']);
    }

    public function testAPairStoredByAnotherProcessIsNoticedBeforeSending(): void
    {
        $this->seedTokens(3600);
        $code = <<<'PHP'
            $amo = AmoClient::getInstance();
            $amo->request('GET', '/api/v4/account');   // caches the pair in this process
            touch(getenv('GO_FILE'));
            while (!file_exists(getenv('DONE_FILE'))) { usleep(5000); }
            return $amo->request('GET', '/api/v4/account')['id'];
            PHP;
        $go = $this->dir . '/go';
        $done = $this->dir . '/done';
        $waiting = new PhpProcess($code, $this->env(['GO_FILE' => $go, 'DONE_FILE' => $done]));
        $this->waitForFile($go);
        $this->ok('return AmoClient::getInstance()->refreshToken(true);');
        touch($done);
        $r = $waiting->wait();
        $this->assertTrue($r['result']['ok'], json_encode($r));
        $this->assertSame(31000001, $r['result']['result']);
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'), 'only the forced refresh');
        $this->assertSame(0, $this->emu->stats()['api_calls']['401'] ?? 0, 'the new file was noticed before sending');
    }

    public function testA401AfterAnotherProcessRefreshedRetriesWithTheStoredPair(): void
    {
        $this->seedTokens(3600);
        // amoCRM holds the request for a while; meanwhile another process
        // refreshes, which revokes the access token the request carries.
        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'delay', 'delay_ms' => 1500, 'times' => 1]);
        $slow = new PhpProcess(self::ACCOUNT, $this->env());
        usleep(500000);
        $this->ok('return AmoClient::getInstance()->refreshToken(true);');
        $r = $slow->wait();
        $this->assertTrue($r['result']['ok'], json_encode($r));
        $this->assertSame(31000001, $r['result']['result']);
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'), 'the slow process re-read the file instead of refreshing');
        $this->assertSame(1, $this->emu->stats()['api_calls']['401'] ?? 0);
    }

    private function waitForFile(string $path): void
    {
        $deadline = microtime(true) + 10;
        while (!file_exists($path) && microtime(true) < $deadline) {
            usleep(5000);
        }
        $this->assertFileExists($path);
    }

    public function testSecond401IsAnAuthException(): void
    {
        $this->seedTokens(3600);
        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 401, 'content_type' => 'application/problem+json',
            'body' => '{"title":"Unauthorized","type":"https://httpstatus.es/401","status":401,"detail":"Неверный логин или пароль"}']);
        $e = $this->fails('AmoAuthException', self::ACCOUNT);
        $this->assertSame(401, $e['errorCode']);
        $this->assertStringContainsString('re-authorize', $e['message']);
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'), 'one refresh, not one per 401');
    }

    public function testRevokedRefreshTokenAsksForReauthorizationAndKeepsTheFile(): void
    {
        $pair = $this->seedTokens(-10);
        // Use the pair's child once so that the stored refresh token is revoked.
        $child = $this->emu->refreshDirectly($pair['refresh_token'])['json'];
        $this->emu->refreshDirectly($child['refresh_token']);
        $before = file_get_contents($this->tokenPath);
        $e = $this->fails('AmoAuthException', self::ACCOUNT);
        $this->assertStringContainsString('Token has been revoked', $e['message']);
        $this->assertStringContainsString('re-authorize', $e['message']);
        $this->assertStringNotContainsString($pair['refresh_token'], json_encode($e));
        $this->assertSame($before, file_get_contents($this->tokenPath));
    }

    public function testTransportFailureDuringRefreshKeepsThePairAndTheNextCallRecovers(): void
    {
        $pair = $this->seedTokens(-10);
        $this->emu->fault(['path' => '/oauth2/access_token', 'action' => 'drop', 'times' => 1]);
        $e = $this->fails('AmoTransportException', self::ACCOUNT);
        $this->assertStringContainsString('kept', $e['message']);
        $this->assertSame($pair['refresh_token'], $this->storedPair()['refresh_token']);
        $this->emu->fault(['path' => '/oauth2/access_token', 'action' => 'delay', 'delay_ms' => 3000, 'times' => 1]);
        $e = $this->fails('AmoTransportException', self::ACCOUNT, ['AMOCRM_TIMEOUT' => '1']);
        $this->assertStringContainsString('timed out', $e['message']);
        $this->assertSame($pair['refresh_token'], $this->storedPair()['refresh_token']);
        $this->assertSame(31000001, $this->ok(self::ACCOUNT));
        $this->assertNotSame($pair['refresh_token'], $this->storedPair()['refresh_token']);
    }

    public function testForcedRefreshAndStatus(): void
    {
        $pair = $this->seedTokens(7200);
        $status = $this->ok('return AmoClient::getInstance()->refreshToken();');
        $this->assertSame($pair['refresh_token'], $this->storedPair()['refresh_token'], 'not due: no refresh');
        $this->assertEqualsWithDelta(7200, $status['expires_in'], 5);
        $status = $this->ok('return AmoClient::getInstance()->refreshToken(true);');
        $this->assertNotSame($pair['refresh_token'], $this->storedPair()['refresh_token']);
        $this->assertEqualsWithDelta(86400, $status['expires_in'], 5);
        $this->assertEqualsWithDelta(time() + 90 * 86400, $status['refresh_expires_at'], 5);
    }

    public function testLongLivedTokenNeedsNoRefreshAndA401IsFinal(): void
    {
        $t = $this->emu->mintTokens();
        $env = ['AMOCRM_LONG_LIVED_TOKEN' => $t['access_token'], 'AMOCRM_BASE_DOMAIN' => $this->emu->referer(), 'AMOCRM_TOKEN_PATH' => $this->dir . '/unused.json'];
        $this->assertSame(31000001, $this->ok(self::ACCOUNT, $env));
        $status = $this->ok('return AmoClient::getInstance()->tokenStatus();', $env);
        $this->assertSame('long_lived', $status['mode']);
        $this->assertTrue($status['authorized']);
        $this->assertGreaterThan(time(), $status['expires_at'], 'read from the JWT exp claim');
        $this->assertStringNotContainsString($t['access_token'], json_encode($status));
        $this->emu->refreshDirectly($t['refresh_token']); // kills the access token
        $e = $this->fails('AmoAuthException', self::ACCOUNT, $env);
        $this->assertStringContainsString('long-lived', $e['message']);
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'), 'only the direct one');
        $this->assertFileDoesNotExist($this->dir . '/unused.json');
    }

    public function testARefusedRefreshTokenShowsInTheStatusUntilANewPairIsStored(): void
    {
        $pair = $this->seedTokens(-10);
        $child = $this->emu->refreshDirectly($pair['refresh_token'])['json'];
        $this->emu->refreshDirectly($child['refresh_token']);
        $status = $this->ok('return AmoClient::getInstance()->tokenStatus();');
        $this->assertFalse($status['needs_reauthorization'], 'nothing known yet');
        $this->fails('AmoAuthException', self::ACCOUNT);
        $status = $this->ok('return AmoClient::getInstance()->tokenStatus();');
        $this->assertTrue($status['needs_reauthorization']);
        $this->assertStringContainsString('Token has been revoked', $status['reauthorization_reason']);
        $this->assertStringContainsString('re-authorize', $status['reauthorization_reason']);
        $code = $this->emu->code();
        $status = $this->ok("return AmoClient::getInstance()->exchangeCode('$code', '{$this->emu->referer()}');");
        $this->assertFalse($status['needs_reauthorization']);
        $this->assertNull($status['reauthorization_reason']);
    }

    public function testAPairUnusedForThreeMonthsNeedsReauthorization(): void
    {
        $pair = $this->seedTokens(-10);
        $stored = $this->storedPair();
        $stored['updated_at'] = time() - 91 * 86400;
        file_put_contents($this->tokenPath, json_encode($stored));
        $status = $this->ok('return AmoClient::getInstance()->tokenStatus();');
        $this->assertTrue($status['needs_reauthorization']);
        $this->assertStringContainsString('3 months', $status['reauthorization_reason']);
    }

    public function testImportTakesOverAnotherFileAndValidatesIt(): void
    {
        $t = $this->emu->mintTokens();
        $official = ['accessToken' => $t['access_token'], 'refreshToken' => $t['refresh_token'], 'expires' => time() + 3600, 'baseDomain' => $this->emu->referer()];
        $status = $this->ok('return AmoClient::getInstance()->importTokens(' . var_export($official, true) . ');');
        $this->assertTrue($status['authorized']);
        $this->assertSame(['access_token', 'refresh_token', 'expires_at', 'base_domain', 'updated_at'], array_keys($this->storedPair()));
        $this->assertSame(31000001, $this->ok(self::ACCOUNT));
        $before = file_get_contents($this->tokenPath);
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->importTokens(['access_token' => 'a', 'expires_at' => 1, 'base_domain' => 'x.amocrm.ru']);");
        $this->assertStringContainsString('refresh_token', $e['message']);
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->importTokens(['access_token' => 'a', 'refresh_token' => 'r', 'expires_at' => time() + 3600, 'base_domain' => 'evil.example.com']);");
        $this->assertStringContainsString('allowed_domains', $e['message']);
        $this->assertSame($before, file_get_contents($this->tokenPath), 'nothing was stored');
    }

    public function testMetricsAreSharedByAllProcesses(): void
    {
        $this->seedTokens(-10);
        $this->ok(self::ACCOUNT);
        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html', 'body' => '<html>429</html>', 'times' => 1]);
        $this->ok(self::ACCOUNT, ['AMOCRM_RETRY_BACKOFF_MS' => '10']);
        $m = $this->ok('return AmoClient::getInstance()->metrics();');
        $this->assertSame(1, $m['refreshes']);
        $this->assertSame(2, $m['api_calls']['200']);
        $this->assertSame(1, $m['api_calls']['429']);
        $this->assertSame(1, $m['rate_limited']);
        $this->assertSame(1, $m['retries']);
        $this->assertSame(0, $m['refresh_failures']);
    }
}
