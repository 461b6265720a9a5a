<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** The consent URL, the code exchange and the referer check. */
final class OAuthTest extends AmoTestCase
{
    public function testAuthorizationUrl(): void
    {
        $url = $this->ok("return AmoClient::getInstance()->authorizationUrl('st at&e');");
        $this->assertSame('https://www.amocrm.ru/oauth?client_id=emulator-client-id&state=st+at%26e&mode=post_message', $url);
        $url = $this->ok("return AmoClient::getInstance()->authorizationUrl('s1', 'popup');", ['AMOCRM_OAUTH_HOST' => 'www.kommo.com']);
        $this->assertSame('https://www.kommo.com/oauth?client_id=emulator-client-id&state=s1&mode=popup', $url);
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->authorizationUrl('s', 'window');");
        $this->assertStringContainsString('`mode`', $e['message']);
    }

    public function testExchangeCodeStoresThePairAndReturnsStatusWithoutTokens(): void
    {
        $code = $this->emu->code();
        $referer = $this->emu->referer();
        $before = time();
        $status = $this->ok("return AmoClient::getInstance()->exchangeCode('$code', '$referer');");
        $this->assertTrue($status['authorized']);
        $this->assertSame('oauth', $status['mode']);
        $this->assertSame($referer, $status['base_domain']);
        $this->assertEqualsWithDelta($before + 86400, $status['expires_at'], 5);
        $this->assertEqualsWithDelta(86400, $status['expires_in'], 5);
        $this->assertEqualsWithDelta($before, $status['updated_at'], 5);

        $pair = $this->storedPair();
        $this->assertSame($referer, $pair['base_domain']);
        $this->assertSame(0600, fileperms($this->tokenPath) & 0777);
        $this->assertSame(['access_token' => 'valid', 'refresh_token' => 'valid'],
            $this->emu->check(['access_token' => $pair['access_token'], 'refresh_token' => $pair['refresh_token']]));
        $shown = json_encode($status);
        $this->assertStringNotContainsString($pair['access_token'], $shown);
        $this->assertStringNotContainsString($pair['refresh_token'], $shown);
        $this->assertStringNotContainsString(self::CLIENT_SECRET, $shown);
        $this->assertSame(1, $this->emu->tokenCalls('authorization_code/ok'));

        // The stored pair works for API calls from another process.
        $account = $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account');");
        $this->assertSame(31000001, $account['id']);
    }

    public function testAReusedCodeIsRefusedAndTheFileIsKept(): void
    {
        $code = $this->emu->code();
        $referer = $this->emu->referer();
        $this->ok("return AmoClient::getInstance()->exchangeCode('$code', '$referer');");
        $before = file_get_contents($this->tokenPath);
        $e = $this->fails('AmoAuthException', "AmoClient::getInstance()->exchangeCode('$code', '$referer');");
        $this->assertStringContainsString('Authorization code has been revoked', $e['message']);
        $this->assertSame($before, file_get_contents($this->tokenPath));
    }

    public function testHostileRefererIsRefusedBeforeAnyConnection(): void
    {
        // A listener that a forged referer points at: it must see no connection.
        $trap = Emulator::start('127.0.0.2');
        try {
            $code = $this->emu->code();
            foreach ([$trap->host . ':' . $trap->port, 'evil' . $this->emu->referer(), 'localhost.evil.com:' . $this->emu->port,
                      "localhost:{$this->emu->port}/@evil.com", "user@localhost:{$this->emu->port}"] as $referer) {
                $e = $this->fails('AmoConfigException', 'AmoClient::getInstance()->exchangeCode(' . var_export($code, true) . ', ' . var_export($referer, true) . ');');
                $this->assertStringContainsString('`referer`', $e['message'], $referer);
            }
            $this->assertSame(1, $trap->stats()['connections'], 'only our own stats call reached the trap');
            $this->assertSame([], $this->emu->stats()['token_calls']);
            $this->assertFileDoesNotExist($this->tokenPath);
        } finally {
            $trap->stop();
        }
    }

    /** Issue 7.14: a referer naming a port would send the client secret to whatever listens there. */
    public function testARefererWithAPortIsRefusedUnlessInsecureHttp(): void
    {
        $trap = Emulator::start('127.0.0.1');
        try {
            $code = $this->emu->code();
            foreach (['localhost:' . $trap->port, 'localhost:443'] as $referer) {
                $e = $this->fails('AmoConfigException', 'AmoClient::getInstance()->exchangeCode(' . var_export($code, true) . ', ' . var_export($referer, true) . ');',
                    ['AMOCRM_INSECURE_HTTP' => '0']);
                $this->assertStringContainsString('`referer`', $e['message'], $referer);
                $this->assertStringContainsString('port', $e['message'], $referer);
            }
            $this->assertSame(1, $trap->stats()['connections'], 'only our own stats call reached the listener');
            $this->assertFileDoesNotExist($this->tokenPath);
            // With insecure_http (the local emulator) a port is how the emulator is reached.
            $status = $this->ok('return AmoClient::getInstance()->exchangeCode(' . var_export($code, true) . ", '{$this->emu->referer()}');");
            $this->assertTrue($status['authorized']);
        } finally {
            $trap->stop();
        }
    }

    public function testWrongClientSecretIsAnAuthErrorWithoutTheSecret(): void
    {
        $code = $this->emu->code();
        $referer = $this->emu->referer();
        $e = $this->fails('AmoAuthException', "AmoClient::getInstance()->exchangeCode('$code', '$referer');", ['AMOCRM_CLIENT_SECRET' => 'wrong-secret-xyz']);
        $this->assertSame(401, $e['errorCode']);
        $this->assertStringNotContainsString('wrong-secret-xyz', json_encode($e));
    }

    public function testMissingCredentialsAreNamed(): void
    {
        $code = $this->emu->code();
        $referer = $this->emu->referer();
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->exchangeCode('$code', '$referer');", ['AMOCRM_CLIENT_SECRET' => '']);
        $this->assertStringContainsString('`client_secret`', $e['message']);
    }
}
