<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/** php/bin/amocrm: every command and its exit codes, against the emulator. */
final class CliTest extends GatewayTestCase
{
    public function testStatusSaysWhetherTheAccountIsAuthorized(): void
    {
        $r = $this->cli(['status']);
        $this->assertSame(2, $r['exit'], 'not authorized: ' . $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('/authoriz/i', $r['out'] . $r['err']);

        $this->seedTokens();
        $r = $this->cli(['status']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString($this->emu()->referer(), $r['out'], 'names the account');
        $this->assertSame([], $this->emu()->stats()['api_calls'], 'status asks nobody');
    }

    public function testStatusOfAPairTooOldToRefresh(): void
    {
        $this->seedTokens(-60, 91 * 86400);
        $r = $this->cli(['status']);
        $this->assertSame(2, $r['exit'], $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('/re-?authori[sz]e/i', $r['out'] . $r['err']);
    }

    public function testRefresh(): void
    {
        $pair = $this->seedTokens();
        $r = $this->cli(['refresh']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(0, $this->tokenCallCount(), 'a fresh pair is not refreshed without --force');
        $this->assertSame($pair['refresh_token'], $this->storedPair()['refresh_token']);

        $r = $this->cli(['refresh', '--force']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(1, $this->emu()->tokenCalls('refresh_token/ok'));
        $stored = $this->storedPair();
        $this->assertNotSame($pair['refresh_token'], $stored['refresh_token']);
        $this->assertSame(['refresh_token' => 'valid'], $this->emu()->check(['refresh_token' => $stored['refresh_token']]));

        $this->seedTokens(60); // within the refresh margin: due
        $r = $this->cli(['refresh']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(2, $this->emu()->tokenCalls('refresh_token/ok'));
    }

    public function testRefreshWithARevokedRefreshTokenSaysReauthorize(): void
    {
        $pair = $this->seedTokens();
        // Another client spent the refresh token and used its child: R is revoked.
        $child = $this->refreshDirectly($pair['refresh_token']);
        $this->refreshDirectly($child['refresh_token']);
        $before = file_get_contents($this->tokenPath);
        $r = $this->cli(['refresh', '--force']);
        $this->assertSame(2, $r['exit'], $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('/authori[sz]/i', $r['out'] . $r['err']);
        $this->assertSame($before, file_get_contents($this->tokenPath), 'a refused refresh keeps the file');
    }

    public function testRefreshWhenAmoCrmCannotBeReachedIsAnError(): void
    {
        $pair = $this->seedTokens();
        $this->emu()->fault(['path' => '/oauth2/access_token', 'action' => 'drop']);
        $r = $this->cli(['refresh', '--force']);
        $this->assertSame(1, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame($pair['refresh_token'], $this->storedPair()['refresh_token'], 'the pair is kept');
    }

    public function testKeepalive(): void
    {
        $this->seedTokens(86400, 10 * 86400);
        $r = $this->cli(['keepalive', '--max-age=30']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('/nothing to do|not needed|not due/i', $r['out']);
        $this->assertSame(0, $this->tokenCallCount());

        $this->seedTokens(86400, 31 * 86400);
        $r = $this->cli(['keepalive', '--max-age=30']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('/refreshed/i', $r['out']);
        $this->assertSame(1, $this->emu()->tokenCalls('refresh_token/ok'));
        $this->assertEqualsWithDelta(time(), $this->storedPair()['updated_at'], 30, 'the pair is new');

        $this->seedTokens(86400, 31 * 86400);
        $r = $this->cli(['keepalive']); // default --max-age=30
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(2, $this->emu()->tokenCalls('refresh_token/ok'));

        unlink($this->tokenPath);
        $r = $this->cli(['keepalive']);
        $this->assertSame(2, $r['exit'], 'nothing to keep alive: an admin must authorize; ' . $r['out'] . $r['err']);
    }

    public function testAuthorizeUrlAndExchange(): void
    {
        $r = $this->cli(['authorize-url']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('#(http://localhost:' . $this->emu()->port . '/oauth\?\S+)#', $r['out']);
        preg_match('#(http://localhost:\d+/oauth\?\S+)#', $r['out'], $m);
        parse_str((string) parse_url($m[1], PHP_URL_QUERY), $q);
        $this->assertSame(self::CLIENT_ID, $q['client_id']);
        $this->assertNotEmpty($q['state']);
        $this->assertStringContainsString('state: ' . $q['state'], $r['out'], 'the state is printed too');

        $r = $this->cli(['exchange', 'not-a-code', $this->emu()->referer()]);
        $this->assertSame(2, $r['exit'], 'amoCRM refuses the code: ' . $r['out'] . $r['err']);
        $this->assertFileDoesNotExist($this->tokenPath);

        $trap = $this->extraEmulator('127.0.0.2');
        $r = $this->cli(['exchange', $this->emu()->code(), '127.0.0.2:' . $trap->port]);
        $this->assertNotSame(0, $r['exit'], 'a referer outside allowed_domains: ' . $r['out'] . $r['err']);
        $this->assertStringContainsString('allowed_domains', $r['out'] . $r['err']);
        $this->assertSame(1, $trap->stats()['connections'], 'nothing was sent to it');
        $this->assertFileDoesNotExist($this->tokenPath);

        $r = $this->cli(['exchange', $this->emu()->code(), $this->emu()->referer()]);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame($this->emu()->referer(), $this->storedPair()['base_domain']);
        $this->assertSame(0, $this->cli(['status'])['exit']);
        $this->assertSame(1, $this->emu()->tokenCalls('authorization_code/ok'));
    }

    /**
     * `exchange-api-key LOGIN HOST`, the key on stdin: amoCRM (the emulator)
     * sends the code to the gateway's callback from its servers, with no
     * state and no admin credential, before it answers the CLI's request;
     * the gateway takes it once, inside the window the command opened.
     */
    public function testExchangeApiKeyConnectsThroughTheCallbackOnce(): void
    {
        $host = $this->emu()->referer();
        $stateless = fn (string $code) => $this->request('GET', '/oauth/callback?' . http_build_query(['code' => $code, 'referer' => $host]));
        $this->assertSame(401, $stateless('x')->status, 'no window: a stateless callback needs the admin, as before');

        $r = $this->cli(['exchange-api-key', self::AMOCRM_LOGIN, $host], null, [], '');
        $this->assertSame(1, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString('reads the API key from stdin', $r['err']);
        $r = $this->cli(['exchange-api-key', self::AMOCRM_LOGIN, $host], null, [], "not-the-key\n");
        $this->assertSame(2, $r['exit'], 'amoCRM refuses the key: ' . $r['out'] . $r['err']);
        $this->assertStringNotContainsString('not-the-key', $r['out'] . $r['err'], 'a refused key is not shown either');
        $this->assertSame(401, $stateless('x')->status, 'a refused exchange closes its window');
        $this->assertSame(0, $this->emu()->tokenCalls('exchange_api_key/ok'));

        $r = $this->cli(['exchange-api-key', self::AMOCRM_LOGIN, $host], null, [], self::AMOCRM_USER_API_KEY . "\n");
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString("takes that code once, from $host", $r['out']);
        $sent = $this->emu()->control('GET', 'api-key-codes');
        $this->assertSame(['200'], $sent['deliveries'], 'the gateway took the code amoCRM sent');
        $this->assertSame($host, $this->storedPair()['base_domain']);
        $this->assertSame(1, $this->emu()->tokenCalls('authorization_code/ok'));
        $this->assertSame(0, $this->cli(['status'])['exit']);
        $this->assertSame(401, $stateless($sent['codes'][0])->status, 'the window took one code');
        $this->assertSame(1, $this->emu()->tokenCalls('authorization_code/ok'));
    }

    /**
     * A window that amoCRM's code missed: the exchange is asked at
     * 127.0.0.1, and the emulator sends the code with its own referer,
     * localhost:port, which is not the window's host (the callback wanted the
     * admin). Returns the window's host and the code that was sent.
     * @return array{string, string}
     */
    private function openAWindowTheCodeMissed(): array
    {
        $this->configure(['AMOCRM_ALLOWED_DOMAINS' => 'localhost,127.0.0.1']);
        $named = '127.0.0.1:' . $this->emu()->port;
        $this->request('GET', '/health');
        $r = $this->cli(['exchange-api-key', self::AMOCRM_LOGIN, $named], null, [], self::AMOCRM_USER_API_KEY . "\n");
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $sent = $this->emu()->control('GET', 'api-key-codes');
        $this->assertSame(['401'], $sent['deliveries'], 'another host: the callback wanted the admin');
        $this->assertFileDoesNotExist($this->tokenPath);
        return [$named, $sent['codes'][0]];
    }

    /** A code whose referer is not the window's host does not take it; one from that host does, whatever its code. */
    public function testTheApiKeyWindowIsForItsHostOnly(): void
    {
        [$named, $code] = $this->openAWindowTheCodeMissed();
        $spend = $this->request('GET', '/oauth/callback?' . http_build_query(['code' => 'not-a-code', 'referer' => $named]));
        $this->assertSame(400, $spend->status, 'the window\'s host: taken, and amoCRM refused the code: ' . $spend->describe());
        $this->assertStringContainsString('Run `amocrm exchange-api-key` again', $spend->body);
        $again = $this->request('GET', '/oauth/callback?' . http_build_query(['code' => $code, 'referer' => $named]));
        $this->assertSame(401, $again->status, 'spent');
        $this->assertFileDoesNotExist($this->tokenPath);
    }

    /** The README's 20 minutes: a window past them takes no code, even the right one from its host. */
    public function testAnApiKeyWindowPastItsTwentyMinutesTakesNoCode(): void
    {
        [$named, $code] = $this->openAWindowTheCodeMissed();
        $window = $this->dataDir . '/oauth-states/api-key.default.json';
        $open = json_decode((string) file_get_contents($window), true);
        $this->assertEqualsWithDelta(time() + 1200, $open['until'], 5, 'the window closes 20 minutes after it opened');
        file_put_contents($window, json_encode(['until' => time() - 1] + $open));
        $late = $this->request('GET', '/oauth/callback?' . http_build_query(['code' => $code, 'referer' => $named]));
        $this->assertSame(401, $late->status, 'past its time: the callback wants the admin');
        $this->assertFileDoesNotExist($window, 'an expired window is removed when seen');
        $this->assertFileDoesNotExist($this->tokenPath);
        $this->assertSame(0, $this->emu()->tokenCalls('authorization_code/ok'));
    }

    public function testImportTheOldGatewaysTokenFile(): void
    {
        $t = $this->emu()->mintTokens();
        $old = $this->dir . '/old-gateway-tokens.json';
        file_put_contents($old, json_encode([
            'access_token' => $t['access_token'], 'refresh_token' => $t['refresh_token'],
            'expires_at' => time() + 3600, 'base_domain' => $this->emu()->referer(), 'updated_at' => time() - 5 * 86400,
        ]));
        $r = $this->cli(['import', $old]);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $stored = $this->storedPair();
        $this->assertSame($t['refresh_token'], $stored['refresh_token']);
        $this->assertSame(0600, fileperms($this->tokenPath) & 0777);
        $this->assertSame(0, $this->cli(['status'])['exit']);
        // The imported pair works: a forced refresh spends its refresh token.
        $this->assertSame(0, $this->cli(['refresh', '--force'])['exit']);
        $this->assertSame(1, $this->emu()->tokenCalls('refresh_token/ok'));
    }

    public function testImportTheOfficialLibrarysTokenFile(): void
    {
        $t = $this->emu()->mintTokens();
        $official = $this->dir . '/token_info.json';
        file_put_contents($official, json_encode([
            'accessToken' => $t['access_token'], 'refreshToken' => $t['refresh_token'],
            'expires' => time() + 3600, 'baseDomain' => $this->emu()->referer(),
        ]));
        $r = $this->cli(['import', $official]);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $stored = $this->storedPair();
        $this->assertSame($t['access_token'], $stored['access_token']);
        $this->assertSame($this->emu()->referer(), $stored['base_domain']);
        $this->assertSame(0, $this->cli(['status'])['exit']);
        $this->assertSame(0, $this->cli(['refresh', '--force'])['exit']);
    }

    public function testImportOfABadFileChangesNothing(): void
    {
        $pair = $this->seedTokens();
        $before = file_get_contents($this->tokenPath);
        $bad = [
            'missing' => $this->dir . '/no-such-file.json',
            'not json' => $this->file('garbage.json', '{"access_token": '),
            'no refresh token' => $this->file('partial.json', json_encode(['access_token' => 'a', 'expires_at' => time() + 60, 'base_domain' => $this->emu()->referer()])),
            'foreign domain' => $this->file('evil.json', json_encode(['access_token' => 'a', 'refresh_token' => 'r', 'expires_at' => time() + 60, 'base_domain' => 'evil.example.com'])),
            // Issue 7.4: what used to be written as the token file, or to exhaust memory.
            'CR/LF in a token' => $this->file('crlf.json', json_encode(['access_token' => "a\r\nX-Injected: 1", 'refresh_token' => 'def50200r', 'expires_at' => time() + 60, 'base_domain' => $this->emu()->referer()])),
            'a 5 MB token' => $this->file('huge.json', json_encode(['access_token' => str_repeat('a', 5 << 20), 'refresh_token' => 'def50200r', 'expires_at' => time() + 60, 'base_domain' => $this->emu()->referer()])),
            'an expiry amoCRM never set' => $this->file('when.json', json_encode(['access_token' => 'a', 'refresh_token' => 'def50200r', 'expires_at' => 99999999999, 'base_domain' => $this->emu()->referer()])),
            'an endless file' => '/dev/zero',
            'a folder' => $this->dir,
        ];
        foreach ($bad as $case => $file) {
            $r = $this->cli(['import', $file]);
            $this->assertSame(1, $r['exit'], "$case: " . $r['out'] . $r['err']);
            $this->assertNotSame('', trim($r['err'] . $r['out']), "$case: says why");
            $this->assertSame($before, file_get_contents($this->tokenPath), "$case: nothing changed");
        }
        $this->assertSame($pair['access_token'], $this->storedPair()['access_token']);
    }

    public function testWebhooksReplayWithNothingToDo(): void
    {
        $r = $this->cli(['webhooks:replay']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
    }

    public function testWebhooksReplayRunsStuckPendingDeliveries(): void
    {
        $pending = $this->dataDir . '/webhooks/pending';
        mkdir($pending, 0700, true);
        $deliver = function (string $id, int $age, string $leadId) use ($pending): void {
            $body = "leads%5Badd%5D%5B0%5D%5Bid%5D=$leadId";
            file_put_contents("$pending/$id.json", json_encode(['id' => $id, 'received_at' => time() - $age, 'remote_addr' => '127.0.0.1',
                'body' => $body, 'parsed' => ['leads' => ['add' => [['id' => $leadId]]]]]));
            touch("$pending/$id.json", time() - $age);
        };
        // A worker died after storing this one, two minutes ago; the other is being handled right now.
        $deliver(sprintf('%.6F', microtime(true) - 120) . '-0badc0de', 120, '1000555');
        $deliver(sprintf('%.6F', microtime(true)) . '-0000beef', 0, '1000556');
        $r = $this->cli(['webhooks:replay']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertCount(1, glob($this->dataDir . '/webhooks/done/*.json'));
        $this->assertCount(1, glob("$pending/*.json"), 'a fresh pending delivery is left to its worker');
        $this->assertStringContainsString('1000555', (string) @file_get_contents($this->jsonl));
        $this->assertStringNotContainsString('1000556', (string) @file_get_contents($this->jsonl));

        // --all (docs/gateway.md: `webhooks:replay [--all]`): every pending delivery, however young.
        $r = $this->cli(['webhooks:replay', '--all']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame([], glob("$pending/*.json"), '--all also runs the delivery that is not yet 60 s old');
        $this->assertStringContainsString('1000556', (string) @file_get_contents($this->jsonl));
    }

    public function testTheEnvFileIsTheOneSourceOfGatewayKeys(): void
    {
        $this->seedTokens();
        // Real environment variables do not override (or fill in) GATEWAY_* keys.
        $r = $this->cli(['status'], null, ['GATEWAY_SECRET' => 'short', 'GATEWAY_API_KEYS' => '', 'GATEWAY_DATA_DIR' => '/nonexistent/dir']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $env = $this->envValues();
        unset($env['GATEWAY_SECRET']);
        $this->writeEnv($env);
        $r = $this->cli(['status'], null, ['GATEWAY_SECRET' => $this->gatewaySecret]);
        $this->assertSame(78, $r['exit'], 'GATEWAY_SECRET only in the environment is not enough: ' . $r['out'] . $r['err']);
        $this->assertStringContainsString('GATEWAY_SECRET', $r['err']);
    }

    public function testUsageErrorsExit64(): void
    {
        foreach ([[], ['no-such-command'], ['keepalive', '--max-age=soon'], ['exchange', 'only-a-code'], ['import'], ['webhooks:replay', '--everything']] as $args) {
            $r = $this->cli($args);
            $this->assertSame(64, $r['exit'], implode(' ', $args) . ': ' . $r['out'] . $r['err']);
            $this->assertStringContainsString('usage', $r['out'] . $r['err']);
        }
        $this->assertFileDoesNotExist($this->tokenPath);
    }

    public function testABadEnvExits78NamingTheKey(): void
    {
        $this->emu();
        $cases = [
            'GATEWAY_SECRET' => ['GATEWAY_SECRET' => 'short-secret-value'],
            'GATEWAY_API_KEYS' => ['GATEWAY_API_KEYS' => null],
            'GATEWAY_ADMIN_PASSWORD' => ['GATEWAY_ADMIN_PASSWORD' => 'pw-secret'],
            'GATEWAY_WEBHOOK_SECRET' => ['GATEWAY_WEBHOOK_SECRET' => 'tiny-hook'],
        ];
        foreach ($cases as $key => $override) {
            $env = $this->envValues();
            foreach ($override as $k => $v) {
                if ($v === null) {
                    unset($env[$k]);
                } else {
                    $env[$k] = $v;
                }
            }
            $this->writeEnv($env);
            foreach (['status', 'keepalive', 'webhooks:replay'] as $command) {
                $r = $this->cli([$command]);
                $this->assertSame(78, $r['exit'], "$key, $command: " . $r['out'] . $r['err']);
                $this->assertStringContainsString($key, $r['err'], "$key, $command: the message names the key");
                foreach ($override as $v) {
                    if ($v !== null) {
                        $this->assertStringNotContainsString($v, $r['out'] . $r['err'], 'the value is never printed');
                    }
                }
            }
        }
        $r = $this->cli(['status'], $this->dir . '/no-such.env');
        $this->assertSame(78, $r['exit'], 'an unreadable .env: ' . $r['out'] . $r['err']);

        $env = $this->envValues();
        $env['AMOCRM_RATE_LIMIT'] = 'fast';
        $this->writeEnv($env);
        $r = $this->cli(['status']);
        $this->assertSame(78, $r['exit'], 'a bad extension key: ' . $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('/rate_limit/i', $r['err']);
    }

    /** Spends a refresh token the way another client of the integration would. */
    private function refreshDirectly(string $refreshToken): array
    {
        $r = $this->emu()->http('POST', '/oauth2/access_token', [
            'client_id' => self::CLIENT_ID, 'client_secret' => self::CLIENT_SECRET, 'grant_type' => 'refresh_token',
            'refresh_token' => $refreshToken, 'redirect_uri' => $this->callbackUrl(),
        ]);
        $this->assertSame(200, $r['status'], $r['body']);
        return $r['json'];
    }

    private function file(string $name, string $contents): string
    {
        file_put_contents($this->dir . '/' . $name, $contents);
        return $this->dir . '/' . $name;
    }
}
