<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

/**
 * What needs the client secret or the refresh token, which PHP code never
 * sees: an account whose subdomain changed, the API-key exchange and a
 * widget's disposable token.
 */
final class AccountMoveTest extends AmoTestCase
{
    /** The host the emulator's account moves to: another name of the same loopback server. */
    private function newHost(): string
    {
        return '127.0.0.1:' . $this->emu->port;
    }

    private function movable(array $extra = []): array
    {
        return ['AMOCRM_ALLOWED_DOMAINS' => 'localhost,127.0.0.1', 'AMOCRM_RATE_LIMIT' => '0'] + $extra;
    }

    /**
     * A PHP process calls amoCRM every 40 ms while the account is renamed
     * under it: no call fails, the token file gets the new host with the
     * same pair, and no refresh token is spent.
     *
     * @dataProvider oldHostAnswers
     */
    #[DataProvider('oldHostAnswers')]
    public function testAnAccountRenamedMidRunKeepsWorking(int $oldHostStatus): void
    {
        $seeded = $this->seedTokens();
        $proc = new PhpProcess(<<<'PHP'
            $amo = AmoClient::getInstance();
            $failures = []; $hosts = [];
            for ($i = 0; $i < 40; $i++) {
                try {
                    $amo->leads()->addOne(['name' => "lead $i"]);
                    $hosts[AmoClient::getInstance()->tokenStatus()['base_domain']] = true;
                } catch (AmoException $e) {
                    $failures[] = get_class($e) . ': ' . $e->getMessage();
                }
                usleep(40000);
            }
            return ['failures' => $failures, 'hosts' => array_keys($hosts), 'metrics' => $amo->metrics()];
            PHP, $this->env($this->movable()));
        usleep(500000);
        $this->emu->control('POST', 'rename', ['host' => $this->newHost(), 'old_host_status' => $oldHostStatus]);
        $r = $proc->wait();
        $this->assertTrue($r['result']['ok'] ?? false, json_encode($r));
        $got = $r['result']['result'];

        $this->assertSame([], $got['failures']);
        $this->assertSame([$this->emu->referer(), $this->newHost()], $got['hosts'], 'it ran on both hosts');
        $this->assertSame(1, $got['metrics']['relocations']);
        $pair = $this->storedPair();
        $this->assertSame($this->newHost(), $pair['base_domain']);
        $this->assertSame($seeded['refresh_token'], $pair['refresh_token'], 'the same pair, at the new host');
        $stats = $this->emu->stats();
        $this->assertSame([], $stats['token_calls'], 'no refresh');
        $this->assertSame(['ok' => 1], $stats['subdomain_lookups']);
        $this->assertCount(40, $this->emu->control('GET', 'leads'), 'every lead once: the call the old host refused was sent again');
    }

    public static function oldHostAnswers(): array
    {
        return ['401 from the old host' => [401], 'an HTML 404 from the old host' => [404]];
    }

    public function testAMoveOutsideAllowedDomainsIsRefusedAndNothingChanges(): void
    {
        $seeded = $this->seedTokens();
        $this->emu->control('POST', 'rename', ['host' => $this->newHost()]);
        $r = $this->fails('AmoApiException', '$amo = AmoClient::getInstance(); return $amo->account();');
        $this->assertStringContainsString('not within allowed_domains', $r['message']);
        $this->assertSame($seeded, $this->storedPair());
        $this->assertSame([], $this->emu->stats()['token_calls']);
        $this->assertFileDoesNotExist($this->tokenPath . '.refused');
    }

    public function testExchangeApiKeyAsksForACodeThatThenAuthorizes(): void
    {
        $this->ok('$amo = AmoClient::getInstance(); $amo->exchangeApiKey("admin@example.com", "emulator-api-key", ' . var_export($this->emu->referer(), true) . '); return true;');
        $codes = $this->emu->control('GET', 'api-key-codes')['codes'];
        $this->assertCount(1, $codes, 'amoCRM sent one code to the redirect URI');
        $status = $this->ok('$amo = AmoClient::getInstance(); return $amo->exchangeCode(' . var_export($codes[0], true) . ', ' . var_export($this->emu->referer(), true) . ');');
        $this->assertTrue($status['authorized']);
        // With a pair stored, the account host is the pair's.
        $this->ok('$amo = AmoClient::getInstance(); $amo->exchangeApiKey("admin@example.com", "emulator-api-key"); return true;');
        $this->assertCount(2, $this->emu->control('GET', 'api-key-codes')['codes']);
    }

    public function testExchangeApiKeyErrorsNameTheProblemAndNeverTheKey(): void
    {
        $r = $this->fails('AmoAuthException', '$amo = AmoClient::getInstance(); return $amo->exchangeApiKey("admin@example.com", "wrong-key-1234", ' . var_export($this->emu->referer(), true) . ');');
        $this->assertStringContainsString('Invalid login or api key', $r['message']);
        $this->assertStringNotContainsString('wrong-key-1234', json_encode($r));
        $this->assertStringNotContainsString(self::CLIENT_SECRET, json_encode($r));

        $before = $this->emu->stats()['token_calls'];
        $r = $this->fails('AmoConfigException', '$amo = AmoClient::getInstance(); return $amo->exchangeApiKey("admin@example.com", "emulator-api-key", "evil.example.com");');
        $this->assertStringContainsString('accountHost', $r['message']);
        $this->assertStringNotContainsString('`referer`', $r['message'], 'named once, as the argument it came in');
        $r = $this->fails('AmoConfigException', '$amo = AmoClient::getInstance(); return $amo->exchangeApiKey("admin@example.com", "emulator-api-key");');
        $this->assertStringContainsString('no token pair is stored', $r['message']);
        $this->assertSame($before, $this->emu->stats()['token_calls'], 'nothing was sent');
    }

    /** A widget token as amoCRM makes it: HS256 with the client secret, for redirect_uri's scheme and host. */
    private static function widgetToken(array $claims, string $key = self::CLIENT_SECRET, string $alg = 'HS256'): string
    {
        $b64 = static fn (string $s): string => rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
        $head = $b64(json_encode(['typ' => 'JWT', 'alg' => $alg]));
        $body = $b64(json_encode($claims + [
            'jti' => 'a1b2', 'iss' => 'https://example.amocrm.ru', 'aud' => 'http://127.0.0.1',
            'iat' => time(), 'nbf' => time(), 'exp' => time() + 1800, 'subdomain' => 'example',
            'account_id' => 31000001, 'user_id' => 1001, 'is_admin' => false, 'client_uuid' => self::CLIENT_ID,
        ]));
        return "$head.$body." . $b64(hash_hmac('sha256', "$head.$body", $key, true));
    }

    public function testADisposableTokenIsCheckedWithTheClientSecret(): void
    {
        $claims = $this->ok('$amo = AmoClient::getInstance(); return $amo->parseDisposableToken(' . var_export(self::widgetToken([]), true) . ');');
        $this->assertSame(31000001, $claims['account_id']);
        $this->assertSame(1001, $claims['user_id']);
        $this->assertSame('example', $claims['account_subdomain']);
        $this->assertSame('https://example.amocrm.ru', $claims['account_domain']);
        $this->assertFalse($claims['is_admin']);
    }

    /** @dataProvider badWidgetTokens */
    #[DataProvider('badWidgetTokens')]
    public function testABadDisposableTokenIsRefusedSayingWhy(string $token, string $title): void
    {
        $r = $this->fails('AmoAuthException', '$amo = AmoClient::getInstance(); return $amo->parseDisposableToken(' . var_export($token, true) . ');');
        $this->assertSame($title, $r['title']);
        $this->assertStringNotContainsString($token, json_encode($r));
    }

    public static function badWidgetTokens(): array
    {
        return [
            'another secret' => [self::widgetToken([], 'not-the-secret'), 'Invalid signature'],
            'alg none' => [explode('.', self::widgetToken([], self::CLIENT_SECRET, 'none'))[0] . '.e30.', 'Invalid signature'],
            'another integration' => [self::widgetToken(['aud' => 'https://other.example.com']), 'Wrong audience'],
            'expired' => [self::widgetToken(['exp' => time() - 120]), 'Token expired'],
            'not yet valid' => [self::widgetToken(['nbf' => time() + 600]), 'Token expired'],
            'garbage' => ['garbage', 'Malformed token'],
        ];
    }
}
