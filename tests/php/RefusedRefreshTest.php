<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/**
 * Issue 7.5: once amoCRM refuses a refresh token, no process sends it again
 * (a host of workers retrying it on every call is how an integration gets
 * blocked), until a new pair is stored; and the token endpoint shares the
 * rate limit.
 */
final class RefusedRefreshTest extends AmoTestCase
{
    private const CALLS = <<<'PHP'
        $out = [];
        for ($i = 0; $i < 5; $i++) {
            try {
                $out[] = AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];
            } catch (AmoException $e) {
                $out[] = get_class($e) . ': ' . $e->getMessage();
            }
        }
        return $out;
        PHP;

    /** An expired pair whose refresh token amoCRM has revoked (it was spent twice elsewhere). */
    private function seedRevokedPair(): array
    {
        $pair = $this->seedTokens(-60);
        $second = $this->emu->refreshDirectly($pair['refresh_token']);
        $this->assertSame(200, $second['status'], $second['body']);
        $this->assertSame(200, $this->emu->refreshDirectly($second['json']['refresh_token'])['status'], 'using R2 revokes R1');
        $this->emu->control('POST', 'reset-stats');
        return $pair;
    }

    private function tokenCalls(): int
    {
        return (int) array_sum($this->emu->stats()['token_calls']);
    }

    public function testARefusedRefreshTokenIsSentOnceByAllProcessesTogether(): void
    {
        $pair = $this->seedRevokedPair();
        $results = $this->together(6, self::CALLS);
        foreach ($results as $i => $r) {
            $this->assertIsArray($r['result'], "process $i: {$r['err']}");
            $this->assertTrue($r['result']['ok'], "process $i: " . json_encode($r['result']));
            $this->assertCount(5, $r['result']['result']);
            foreach ($r['result']['result'] as $outcome) {
                $this->assertStringStartsWith('AmoAuthException: ', (string) $outcome, "process $i");
                $this->assertStringContainsString('re-authorize', (string) $outcome, "process $i");
            }
        }
        $stats = $this->emu->stats();
        $this->assertSame(['refresh_token/Token has been revoked' => 1], $stats['token_calls'], '30 failed calls, one refresh at amoCRM');
        $this->assertSame([], $stats['api_calls'], 'nothing was sent with the expired access token either');
        $this->assertSame($pair['refresh_token'], $this->storedPair()['refresh_token'], 'the file is kept for the admin');

        // Later processes, refreshToken(true) and tokenStatus() say the same without asking amoCRM.
        $e = $this->fails('AmoAuthException', 'AmoClient::getInstance()->refreshToken(true);');
        $this->assertStringContainsString('Token has been revoked', $e['message']);
        $this->assertStringContainsString('not sent again', $e['message']);
        $status = $this->ok('return AmoClient::getInstance()->tokenStatus();');
        $this->assertTrue($status['needs_reauthorization']);
        $this->assertStringContainsString('Token has been revoked', $status['reauthorization_reason']);
        $this->assertSame(1, $this->tokenCalls());

        // A new pair (here an import; an authorization or another host's refresh alike) ends it.
        $fresh = $this->emu->mintTokens();
        $this->ok('return AmoClient::getInstance()->importTokens(' . var_export([
            'access_token' => $fresh['access_token'], 'refresh_token' => $fresh['refresh_token'],
            'expires_at' => time() - 60, 'base_domain' => $this->emu->referer(), 'updated_at' => time(),
        ], true) . ');');
        $this->assertSame(array_fill(0, 5, 31000001), $this->ok(self::CALLS), 'the new pair is refreshed and used');
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'));
        $this->assertFalse($this->ok('return AmoClient::getInstance()->tokenStatus();')['needs_reauthorization']);
    }

    public function testAFixedClientSecretGetsOneMoreTry(): void
    {
        $this->seedTokens(-60);
        $wrong = ['AMOCRM_CLIENT_SECRET' => 'a-wrong-client-secret'];
        foreach ([1, 2] as $attempt) {
            $e = $this->fails('AmoAuthException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", $wrong);
            $this->assertStringNotContainsString('a-wrong-client-secret', json_encode($e));
        }
        $this->assertSame(1, $this->tokenCalls(), 'the wrong secret was tried once');
        // The admin fixes the secret: the same refresh token is worth one more try, and it works.
        $this->assertSame(31000001, $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];"));
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'));
    }

    public function testTheTokenEndpointWaitsForTheSharedRateLimit(): void
    {
        $this->seedTokens(3600);
        $m = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $amo->request('GET', '/api/v4/account'); // takes the one slot of this second
            $amo->refreshToken(true);                // must wait for the next
            return $amo->metrics();
            PHP, ['AMOCRM_RATE_LIMIT' => '1']);
        $this->assertSame(1, $m['refreshes']);
        $this->assertSame(1, $m['rate_limit_waits'], 'the refresh waited for a slot');
        $this->assertGreaterThan(500, $m['rate_limit_wait_ms']);
    }
}
