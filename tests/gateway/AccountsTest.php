<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * Many accounts in one gateway (issue 9.3), under php -S: every route works
 * on the account its credential or its state names, and on no other; each
 * account has its own amoCRM (an emulator), pair, cache and rate limit.
 */
final class AccountsTest extends AccountsTestCase
{
    public function testTenAccountsTogetherRefreshOncePerExpiryAndHoldTheRateLimit(): void
    {
        $this->figures('ten accounts, php -S', $this->tenAccountsUnderLoad(3));
    }

    // ---- API keys ---------------------------------------------------------

    public function testAnApiKeyReachesItsOwnAccountOnly(): void
    {
        $this->withAccounts(['default', 'shop-1', 'shop-2']);
        foreach (['default', 'shop-1', 'shop-2'] as $a) {
            $this->seedAccount($a);
        }
        $one = $this->assertJsonAnswer($this->apiAs('shop-1', 'POST', '/api/leads', ['json' => ['name' => 'shop-1 lead']]), 201);
        $two = $this->assertJsonAnswer($this->apiAs('shop-2', 'POST', '/api/leads', ['json' => ['name' => 'shop-2 lead']]), 201);
        // Each amoCRM numbers its leads from the same first id: the same id names a different lead in each account.
        $this->assertSame($one['id'], $two['id']);
        $this->assertSame(['shop-1 lead'], array_column($this->amocrmOf('shop-1')->http('GET', '/_emulator/leads')['json'], 'name'));
        $this->assertSame(['shop-2 lead'], array_column($this->amocrmOf('shop-2')->http('GET', '/_emulator/leads')['json'], 'name'));
        $this->assertSame([], $this->entities('leads'), 'nothing reached the default account');

        $this->assertSame('shop-1 lead', $this->assertJsonAnswer($this->apiAs('shop-1', 'GET', "/api/leads/{$one['id']}"), 200)['name']);
        $this->assertSame('shop-2 lead', $this->assertJsonAnswer($this->apiAs('shop-2', 'GET', "/api/leads/{$one['id']}"), 200)['name']);
        $this->assertProblem($this->apiAs('default', 'GET', "/api/leads/{$one['id']}"), 404);
        $this->assertJsonAnswer($this->apiAs('shop-2', 'PATCH', "/api/leads/{$one['id']}", ['json' => ['name' => 'renamed by shop-2']]), 200);
        $this->assertSame('shop-1 lead', $this->amocrmOf('shop-1')->http('GET', '/_emulator/leads')['json'][0]['name'], 'a PATCH with shop-2\'s key changed shop-2\'s lead only');
        $this->assertSame('renamed by shop-2', $this->amocrmOf('shop-2')->http('GET', '/_emulator/leads')['json'][0]['name']);

        // A key that names no configured account's key: 401, as before.
        $this->assertProblem($this->request('GET', '/api/info/account', ['bearer' => 'shop-1:' . $this->keyOf('shop-1')]), 401);
    }

    public function testIdempotencyKeysAndTheInfoCacheAreTheAccounts(): void
    {
        $this->withAccounts(['default', 'shop-1', 'shop-2'], ['GATEWAY_INFO_CACHE_TTL' => '300']);
        foreach (['shop-1', 'shop-2'] as $a) {
            $this->seedAccount($a);
        }
        // One Idempotency-Key, two accounts, two different leads: neither is a repeat of the other.
        $first = $this->apiAs('shop-1', 'POST', '/api/leads', ['json' => ['name' => 'order 1 at shop-1'], 'headers' => ['Idempotency-Key' => 'order-1']]);
        $this->assertJsonAnswer($first, 201);
        $other = $this->apiAs('shop-2', 'POST', '/api/leads', ['json' => ['name' => 'order 1 at shop-2'], 'headers' => ['Idempotency-Key' => 'order-1']]);
        $this->assertJsonAnswer($other, 201);
        $this->assertNull($other->header('idempotent-replayed'), 'shop-2 was not answered with shop-1\'s lead');
        $again = $this->apiAs('shop-1', 'POST', '/api/leads', ['json' => ['name' => 'order 1 at shop-1'], 'headers' => ['Idempotency-Key' => 'order-1']]);
        $this->assertSame('true', $again->header('idempotent-replayed'));
        $this->assertCount(1, $this->amocrmOf('shop-1')->http('GET', '/_emulator/leads')['json']);
        $this->assertCount(1, $this->amocrmOf('shop-2')->http('GET', '/_emulator/leads')['json']);

        // The info cache: a folder per account; one account's entry never answers another.
        $href = fn (string $a): string => 'http://' . $this->amocrmOf($a)->referer() . '/api/v4/account';
        foreach ([['shop-1', 'MISS'], ['shop-2', 'MISS'], ['shop-1', 'HIT'], ['shop-2', 'HIT']] as [$a, $cache]) {
            $r = $this->apiAs($a, 'GET', '/api/info/account');
            $this->assertSame($href($a), $this->assertJsonAnswer($r, 200)['_links']['self']['href'], "$a, $cache");
            $this->assertSame($cache, $r->header('x-cache'), $a);
        }
        $this->assertFileExists($this->dataDir . '/cache/shop-1/account.json');
        $this->assertFileExists($this->dataDir . '/cache/shop-2/account.json');
        $this->assertSame(['200' => 2], $this->amocrmOf('shop-2')->stats()['api_calls'], 'shop-2\'s amoCRM: one lead, one account fetch');

        // The admin moves shop-1's key to shop-2: its old records replay nothing there.
        $keys = "shop-1:other-key-for-shop-1-0000,shop-2:{$this->keyOf('shop-2')},shop-2:{$this->keyOf('shop-1')}";
        $this->configure(['GATEWAY_API_KEYS' => $keys]);
        $moved = $this->apiAs('shop-1', 'POST', '/api/leads', ['json' => ['name' => 'order 1 at shop-1'], 'headers' => ['Idempotency-Key' => 'order-1']]);
        $this->assertJsonAnswer($moved, 201);
        $this->assertNull($moved->header('idempotent-replayed'), 'the key now works on shop-2, where this lead is new');
        $this->assertSame(['order 1 at shop-2', 'order 1 at shop-1'], array_column($this->amocrmOf('shop-2')->http('GET', '/_emulator/leads')['json'], 'name'));
        $this->assertCount(1, $this->amocrmOf('shop-1')->http('GET', '/_emulator/leads')['json']);
    }

    // ---- OAuth ------------------------------------------------------------

    public function testOAuthConnectsTheNamedAccountOnly(): void
    {
        $this->withAccounts(['default', 'shop-1', 'shop-2']);
        $flow = $this->consent('allow', $this->amocrmOf('shop-1'), '?account=shop-1');
        $setCookie = implode("\n", $flow['authorize']->headers['set-cookie'] ?? []);
        $this->assertMatchesRegularExpression('/^amocrm_oauth_state_shop-1=[^;]+;.*HttpOnly/m', $setCookie, 'a state cookie of the account');
        parse_str((string) parse_url($flow['callbackUrl'], PHP_URL_QUERY), $q);
        $this->assertMatchesRegularExpression('/^shop-1\.[0-9a-f]{32}$/', $q['state'], 'the state names the account');

        $r = $this->admin('GET', $flow['callbackUrl']);
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertStringContainsString('Connected', $r->body);
        $this->assertStringContainsString('`shop-1`', $r->body);
        $this->assertStringContainsString('/oauth/status?account=shop-1', $r->body, 'the page\'s links name the account');
        $this->assertSame($this->amocrmOf('shop-1')->referer(), $this->pairOf('shop-1')['base_domain']);
        $this->assertSame(0600, fileperms($this->tokenPathOf('shop-1')) & 0777);
        $this->assertSame(0700, fileperms(dirname($this->tokenPathOf('shop-1'))) & 0777, 'the account\'s token folder is private');
        $this->assertNull($this->pairOf('default'));
        $this->assertNull($this->pairOf('shop-2'));
        $this->assertSame(['authorization_code/ok' => 1], $this->amocrmOf('shop-1')->stats()['token_calls']);
        $this->assertSame([], $this->amocrmOf('default')->stats()['token_calls']);
        $this->assertSame([], $this->amocrmOf('shop-2')->stats()['token_calls']);

        $status = $this->assertJsonAnswer($this->admin('GET', '/oauth/status?account=shop-1'), 200);
        $this->assertSame('shop-1', $status['account']);
        $this->assertTrue($status['authorized']);
        $this->assertSame($this->tokenPathOf('shop-1'), $status['token_path']);
        $this->assertFalse($this->assertJsonAnswer($this->admin('GET', '/oauth/status?account=shop-2'), 200)['authorized']);
        $this->assertSame('default', $this->assertJsonAnswer($this->admin('GET', '/oauth/status'), 200)['account']);
        $this->assertProblem($this->admin('GET', '/oauth/status?account=shop-9'), 404);
        $this->assertProblem($this->admin('GET', '/oauth/status?account=Shop%201'), 400, 'account');
        $this->assertProblem($this->admin('GET', '/oauth/status?account[]=shop-1'), 400, 'account');
        $this->assertProblem($this->admin('GET', '/oauth/authorize?account=shop-9'), 404);
        $this->assertProblem($this->request('GET', '/oauth/status?account=shop-1'), 401);

        // Two accounts connected from one browser at once: a state cookie each.
        $two = $this->consent('allow', $this->amocrmOf('shop-2'), '?account=shop-2');
        $def = $this->consent('allow', $this->amocrmOf('default'));
        $this->assertStringContainsString('Connected', $this->admin('GET', $def['callbackUrl'])->body);
        $this->assertStringContainsString('Connected', $this->admin('GET', $two['callbackUrl'])->body);
        $this->assertSame($this->amocrmOf('shop-2')->referer(), $this->pairOf('shop-2')['base_domain']);
        $this->assertSame($this->amocrmOf('default')->referer(), $this->pairOf('default')['base_domain']);
    }

    public function testTheCallbackBelievesTheAccountOnlyFromItsSignedCookie(): void
    {
        $this->withAccounts(['default', 'shop-1', 'shop-2']);
        $flow = $this->consent('allow', $this->amocrmOf('shop-1'), '?account=shop-1');
        $cookie = (string) $this->http()->cookie('amocrm_oauth_state_shop-1');
        parse_str((string) parse_url($flow['callbackUrl'], PHP_URL_QUERY), $q);
        $random = substr($q['state'], strlen('shop-1.'));
        $as = fn (string $state): string => $this->callbackUrl() . '?' . http_build_query(['state' => $state] + $q);
        $cases = [
            'the state renamed to shop-2, shop-1\'s cookie' => [$as("shop-2.$random"), "amocrm_oauth_state_shop-1=$cookie"],
            'shop-1\'s cookie sent as shop-2\'s' => [$as("shop-2.$random"), "amocrm_oauth_state_shop-2=$cookie"],
            'shop-1\'s cookie sent as the default\'s' => [$as("default.$random"), "amocrm_oauth_state=$cookie"],
            'an account that is not configured' => [$as("shop-9.$random"), "amocrm_oauth_state_shop-9=$cookie"],
            'no account in the state' => [$as($random), "amocrm_oauth_state=$cookie"],
        ];
        foreach ($cases as $case => [$url, $header]) {
            $r = $this->admin('GET', $url, ['cookies' => false, 'headers' => ['Cookie' => $header]]);
            $this->assertSame(400, $r->status, "$case: " . $r->describe());
            $this->assertStringNotContainsString('Connected', $r->body, $case);
        }
        foreach (['default', 'shop-1', 'shop-2'] as $a) {
            $this->assertSame([], $this->amocrmOf($a)->stats()['token_calls'], "$a: nothing reached amoCRM");
            $this->assertNull($this->pairOf($a));
        }
        // The code was not spent: the genuine callback connects shop-1.
        $r = $this->admin('GET', $flow['callbackUrl'], ['cookies' => false, 'headers' => ['Cookie' => "amocrm_oauth_state_shop-1=$cookie"]]);
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertNotNull($this->pairOf('shop-1'));
    }

    public function testOneAmoCrmAccountConnectsToOneAccountOfTheGateway(): void
    {
        // Two accounts of the gateway whose admin logs in to the same amoCRM account: the second is refused.
        $this->withAccounts(['shop-1', 'shop-2'], [], ['shop-2' => 'shop-1']);
        $this->assertStringContainsString('Connected', $this->admin('GET', $this->consent('allow', $this->amocrmOf('shop-1'), '?account=shop-1')['callbackUrl'])->body);
        $pair = $this->pairOf('shop-1');
        $r = $this->admin('GET', $this->consent('allow', $this->amocrmOf('shop-2'), '?account=shop-2')['callbackUrl']);
        $this->assertSame(409, $r->status, $r->describe());
        $this->assertStringContainsString('already connected as the gateway&#039;s account `shop-1`', $r->body);
        $this->assertNull($this->pairOf('shop-2'));
        $this->assertSame($pair, $this->pairOf('shop-1'));
        $this->assertSame(['authorization_code/ok' => 1], $this->amocrmOf('shop-1')->stats()['token_calls'], 'the second code was never sent');

        // Without a `default` account, a route that names none says so.
        $this->assertProblem($this->admin('GET', '/oauth/authorize'), 400, 'account');
        $this->assertProblem($this->admin('GET', '/oauth/status'), 400, 'account');
    }

    // ---- /ready, /metrics -------------------------------------------------

    public function testReadyReportsEveryAccount(): void
    {
        $this->withAccounts(['default', 'shop-1', 'shop-2']);
        $this->seedAccount('default');
        $this->seedAccount('shop-1');
        $r = $this->request('GET', '/ready');
        $j = $this->assertJsonAnswer($r, 503);
        $this->assertSame('not_ready', $j['status']);
        $this->assertSame(['shop-2'], $j['not_ready']);
        $this->assertSame(['default', 'shop-1', 'shop-2'], array_keys($j['accounts']));
        $this->assertSame('ready', $j['accounts']['shop-1']['status']);
        $this->assertNotEmpty($j['accounts']['shop-2']['reason']);
        $this->assertSame('60', $r->header('retry-after'));

        $one = $this->assertJsonAnswer($this->request('GET', '/ready?account=shop-1'), 200);
        $this->assertSame('ready', $one['status']);
        $this->assertGreaterThan(80000, $one['expires_in'], 'one account: its fields at the top, as before');
        $this->assertSame(['shop-1'], array_keys($one['accounts']));
        $this->assertSame(503, $this->request('GET', '/ready?account=shop-2')->status);
        $this->assertProblem($this->request('GET', '/ready?account=shop-9'), 404);
        // An API client of the account that is not ready is told which account an admin must authorize.
        $p = $this->assertProblem($this->apiAs('shop-2', 'GET', '/api/leads/1'), 503);
        $this->assertStringContainsString('/oauth/authorize?account=shop-2', $p['detail']);
        $this->assertLogged('#503 for GET /api/leads/1 \(account shop-2\): AmoAuthException#', 'the log names the account');
        $this->assertSame(200, $this->apiAs('shop-1', 'GET', '/api/info/account')->status, 'the other accounts work');

        $this->seedAccount('shop-2', 30); // within the refresh margin: /ready refreshes it now
        $j = $this->assertJsonAnswer($this->request('GET', '/ready'), 200);
        $this->assertSame([], $j['not_ready']);
        $this->assertGreaterThan(80000, $j['accounts']['shop-2']['expires_in']);
        $this->assertSame(1, $this->amocrmOf('shop-2')->tokenCalls('refresh_token/ok'));
        $this->assertSame([], $this->amocrmOf('shop-1')->stats()['token_calls']);
    }

    public function testMetricsLabelEverySampleByAccount(): void
    {
        $this->withAccounts(['default', 'shop-1', 'shop-2'], ['GATEWAY_INFO_CACHE_TTL' => '0']);
        $this->seedAccount('default');
        $this->seedAccount('shop-1', -60); // expired: the first call refreshes it
        $this->assertSame(200, $this->apiAs('shop-1', 'GET', '/api/info/account')->status);
        $this->assertSame(200, $this->apiAs('shop-1', 'GET', '/api/info/pipelines')->status);
        $this->assertSame(200, $this->apiAs('default', 'GET', '/api/info/account')->status);

        $r = $this->admin('GET', '/metrics');
        $this->assertSame(200, $r->status, $r->describe());
        $text = $r->body;
        $perAccount = [];
        foreach (explode("\n", rtrim($text)) as $line) {
            if ($line === '' || $line[0] === '#') {
                continue;
            }
            $this->assertMatchesRegularExpression('/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.]+$/', $line);
            if (str_starts_with($line, 'amocrm_')) {
                $this->assertMatchesRegularExpression('/^amocrm_[a-z_]+\{account="(default|shop-1|shop-2)"[,}]/', $line, 'every amocrm_* sample names its account');
                preg_match('/^(amocrm_[a-z_]+)\{account="([^"]+)"/', $line, $m);
                $perAccount[$m[1]][$m[2]] = ($perAccount[$m[1]][$m[2]] ?? 0) + 1;
            }
        }
        foreach (['amocrm_authorized', 'amocrm_token_expires_in_seconds', 'amocrm_refresh_token_expires_in_seconds', 'amocrm_token_warning', 'amocrm_status_error',
                  'amocrm_refreshes_total', 'amocrm_refresh_failures_total', 'amocrm_rate_limited_total', 'amocrm_rate_limit_waits_total',
                  'amocrm_rate_limit_wait_seconds_total', 'amocrm_retries_total'] as $name) {
            $this->assertSame(['default' => 1, 'shop-1' => 1, 'shop-2' => 1], $perAccount[$name] ?? null, "$name: one series per account");
        }
        $this->assertSame(1.0, self::sample($text, 'amocrm_refreshes_total{account="shop-1"}'));
        $this->assertSame(0.0, self::sample($text, 'amocrm_refreshes_total{account="default"}'));
        $this->assertSame(2.0, self::sample($text, 'amocrm_api_calls_total{account="shop-1",status="200"}'));
        $this->assertSame(1.0, self::sample($text, 'amocrm_api_calls_total{account="default",status="200"}'));
        $this->assertSame(0.0, self::sample($text, 'amocrm_api_calls_total{account="shop-2",status="200"}'));
        $this->assertSame(1.0, self::sample($text, 'amocrm_authorized{account="shop-1"}'));
        $this->assertSame(0.0, self::sample($text, 'amocrm_authorized{account="shop-2"}'));
        $this->assertSame(0.0, self::sample($text, 'amocrm_status_error{account="shop-2"}'));
        $this->assertNotNull(self::sample($text, 'gateway_webhooks_pending'), 'the spool is the gateway\'s, not an account\'s');

        // One account's unreadable state: its error gauge, and the others as before.
        $this->assertDirectoryExists(dirname($this->tokenPathOf('shop-2')), 'the gateway made the account\'s token folder');
        file_put_contents($this->tokenPathOf('shop-2'), '{"access_token": ');
        $r = $this->admin('GET', '/metrics');
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertSame(1.0, self::sample($r->body, 'amocrm_status_error{account="shop-2"}'));
        $this->assertSame(0.0, self::sample($r->body, 'amocrm_authorized{account="shop-2"}'));
        $this->assertSame(1.0, self::sample($r->body, 'amocrm_authorized{account="shop-1"}'));
        $this->assertLogged('#/metrics: account shop-2: AmoStorageException#', 'the cause');
        unlink($this->tokenPathOf('shop-2'));
    }

    // ---- webhooks ---------------------------------------------------------

    public function testAWebhookSecretNamesItsAccount(): void
    {
        $this->withAccounts(['default', 'shop-1']);
        foreach (['shop-1' => '1000501', 'default' => '1000502'] as $a => $lead) {
            $r = $this->request('POST', '/webhooks/amocrm/' . $this->hookOf($a), ['form' => "leads%5Badd%5D%5B0%5D%5Bid%5D=$lead"]);
            $this->assertSame(200, $r->status, $r->describe());
        }
        $lines = $this->eventually(function (): ?array {
            $lines = array_values(array_filter(explode("\n", (string) @file_get_contents($this->jsonl))));
            return count($lines) === 2 ? $lines : null;
        }, 'both deliveries handled');
        $byLead = [];
        foreach ($lines as $line) {
            $d = json_decode($line, true);
            $byLead[$d['data']['leads']['add'][0]['id']] = $d['account'];
        }
        $this->assertSame(['1000501' => 'shop-1', '1000502' => 'default'], $byLead);
        // The account is the secret's: a path that adds one is no webhook URL.
        $this->assertSame(404, $this->request('POST', '/webhooks/amocrm/' . $this->hookOf('shop-1') . '/default', ['form' => 'x=1'])->status);
        $this->assertSame(404, $this->request('POST', '/webhooks/amocrm/' . $this->hookOf('shop-1') . 'x', ['form' => 'x=1'])->status);
    }

    // ---- keepalive after every answer -------------------------------------

    public function testEveryAnswerKeepsEveryAccountAlive(): void
    {
        $accounts = ['default'];
        for ($i = 1; $i <= 9; $i++) {
            $accounts[] = "shop-$i";
        }
        $this->withAccounts($accounts);
        foreach (array_slice($accounts, 0, 9) as $a) {
            $this->seedAccount($a, 86400, 31 * 86400); // past keepalive_days (30)
        }
        // shop-9 is not authorized: nothing to keep alive, nothing to log.
        $this->assertSame(200, $this->request('GET', '/health')->status);
        foreach (array_slice($accounts, 0, 9) as $a) {
            $this->eventually(fn () => $this->amocrmOf($a)->tokenCalls('refresh_token/ok') === 1 ?: null, "$a renewed after one answer");
            $this->assertEqualsWithDelta(time(), $this->pairOf($a)['updated_at'], 30, $a);
        }
        $this->assertSame(200, $this->request('GET', '/health')->status);
        foreach ($accounts as $a) {
            $this->assertSame($a === 'shop-9' ? 0 : 1, $this->amocrmOf($a)->tokenCalls('refresh_token/ok'), "$a: renewed once, then not due");
            $this->assertSame(0, (int) array_sum($this->amocrmOf($a)->stats()['api_calls']), "$a: a keepalive is no API call");
        }
        $this->assertDoesNotMatchRegularExpression('/keepalive|deferred task failed/', $this->gatewayLog());
    }

    public function testWithMoreAccountsThanOneAnswerChecksEveryAccountIsReachedSoon(): void
    {
        // 12 accounts (on one amoCRM, as far as the keepalive cares): each answer checks 10 of them.
        $accounts = ['default'];
        $same = [];
        for ($i = 1; $i <= 11; $i++) {
            $accounts[] = "shop-$i";
            $same["shop-$i"] = 'default';
        }
        $this->withAccounts($accounts, [], $same);
        foreach ($accounts as $a) {
            $this->seedAccount($a, 86400, 31 * 86400);
        }
        $this->assertSame(200, $this->request('GET', '/health')->status);
        $this->eventually(fn () => $this->emu()->tokenCalls('refresh_token/ok') >= 10 ?: null, 'ten accounts renewed after one answer');
        usleep(300000);
        $this->assertSame(10, $this->emu()->tokenCalls('refresh_token/ok'), 'at most ten checked after one answer');
        $requests = 1;
        while ($this->emu()->tokenCalls('refresh_token/ok') < 12 && $requests < 40) {
            $this->assertSame(200, $this->request('GET', '/health')->status);
            $requests++;
        }
        $this->assertSame(12, $this->emu()->tokenCalls('refresh_token/ok'), "every account renewed within $requests answers");
        foreach ($accounts as $a) {
            $this->assertEqualsWithDelta(time(), $this->pairOf($a)['updated_at'], 30, $a);
        }
        $this->figures('keepalive window', ['accounts' => 12, 'answers_until_all_renewed' => $requests]);
    }

    // ---- configuration ----------------------------------------------------

    public function testAnAccountKeyOfTheEnvThatNamesNoAccountMakesTheGatewayMisconfigured(): void
    {
        $this->withAccounts(['default', 'shop-1'], ['AMOCRM_SHOP_9_CLIENT_ID' => 'x']);
        $r = $this->request('GET', '/health');
        $this->assertProblem($r, 500);
        $this->assertStringNotContainsString('SHOP_9', $r->body, 'the answer names no key');
        $this->assertLogged('/configuration: AMOCRM_SHOP_9_CLIENT_ID names an account \(SHOP_9\) that is not in GATEWAY_ACCOUNTS/', 'the key');
        $env = $this->envValues();
        unset($env['AMOCRM_SHOP_9_CLIENT_ID']);
        $this->writeEnv($env);
        $this->assertSame(200, $this->request('GET', '/health')->status, 'fixed: the next request works');
    }
}
