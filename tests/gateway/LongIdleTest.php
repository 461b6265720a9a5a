<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * 120 days without traffic. amoCRM's refresh token dies after 90 days
 * without use; the daily cron keepalive (php/deploy/cron) keeps the pair
 * alive, and without it the gateway ends in a clear "re-authorize" state.
 *
 * The extension runs on the real clock, so each day is simulated twice: the
 * emulator's clock moves one day forward, and the token file is rewritten as
 * if it had been written a day earlier (expires_at and updated_at - 86400).
 */
final class LongIdleTest extends GatewayTestCase
{
    private const DAYS = 120;

    public function testWithADailyKeepaliveTheAccountStaysAuthorized(): void
    {
        $this->seedTokens();
        $refreshedOn = [];
        for ($day = 1; $day <= self::DAYS; $day++) {
            $this->dayPasses();
            $before = $this->emu()->tokenCalls('refresh_token/ok');
            $r = $this->cli(['keepalive', '--max-age=30']);
            $this->assertSame(0, $r['exit'], "day $day: " . $r['out'] . $r['err']);
            if ($this->emu()->tokenCalls('refresh_token/ok') > $before) {
                $refreshedOn[] = $day;
            }
        }
        // The pair is 30 days and a few seconds old on day 30: "older than 30 days".
        $this->assertSame([30, 60, 90, 120], $refreshedOn, 'refreshed once a month, when the pair got older than 30 days');

        $r = $this->cli(['status']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $status = $this->assertJsonAnswer($this->admin('GET', '/oauth/status'), 200);
        $this->assertTrue($status['authorized']);
        $this->assertFalse($status['needs_reauthorization']);
        $this->assertSame(200, $this->request('GET', '/ready')->status);

        $r = $this->api('GET', '/api/info/account');
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertSame(31000001, $r->json()['id']);

        // Ten more quiet days, no cron: the access token expired long ago, the
        // refresh token is 10 days old; the next API call refreshes and succeeds.
        for ($day = 1; $day <= 10; $day++) {
            $this->dayPasses();
        }
        $this->assertSame(4, $this->emu()->tokenCalls('refresh_token/ok'));
        $r = $this->api('GET', '/api/leads/1000001');
        $this->assertProblem($r, 404);
        $this->assertSame(5, $this->emu()->tokenCalls('refresh_token/ok'));
    }

    public function testWithoutKeepaliveTheGatewaySaysToReauthorize(): void
    {
        $pair = $this->seedTokens();
        for ($day = 1; $day <= self::DAYS; $day++) {
            $this->dayPasses();
        }
        $r = $this->cli(['status']);
        $this->assertSame(2, $r['exit'], $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('/re-?authori[sz]e/i', $r['out'] . $r['err']);

        $status = $this->assertJsonAnswer($this->admin('GET', '/oauth/status'), 200);
        $this->assertTrue($status['needs_reauthorization']);
        $this->assertIsString($status['reauthorization_reason']);
        $this->assertNotSame('', $status['reauthorization_reason']);

        $ready = $this->assertJsonAnswer($this->request('GET', '/ready'), 503);
        $this->assertSame('not_ready', $ready['status']);
        $r = $this->api('GET', '/api/info/account');
        $p = $this->assertProblem($r, 503);
        $this->assertStringContainsString('/oauth/authorize', (string) ($p['detail'] ?? ''));

        // The keepalive cannot help any more, and says so.
        $r = $this->cli(['keepalive', '--max-age=30']);
        $this->assertSame(2, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame($pair['refresh_token'], $this->storedPair()['refresh_token'], 'the file is kept for the admin to see');
        // amoCRM agrees: the refresh token died of old age.
        $this->assertSame(['refresh_token' => 'expired'], $this->emu()->check(['refresh_token' => $pair['refresh_token']]));
        $this->assertSame(0, $this->emu()->tokenCalls('refresh_token/ok'));
    }
}
