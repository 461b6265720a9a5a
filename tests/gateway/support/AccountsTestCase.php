<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

use AmoCRM\Tests\Emulator;

/**
 * A gateway with several accounts (GATEWAY_ACCOUNTS), each an amoCRM account
 * of its own: one emulator per account (an emulator is one amoCRM account: it
 * accepts only the tokens it minted, and counts its own 7 requests per
 * second). `default` uses the test's emulator; every other account gets one
 * more, its AMOCRM_<ACCOUNT>_OAUTH_HOST pointing there, and an API key and a
 * webhook secret that name it.
 */
abstract class AccountsTestCase extends GatewayTestCase
{
    /** @var array<string, Emulator> account => its amoCRM */
    private array $amocrm = [];
    /** @var array<string, string> account => its API key */
    private array $keys = [];
    /** @var array<string, string> account => its webhook secret */
    private array $hooks = [];

    protected function tearDown(): void
    {
        // Every account's last tokens count as secrets for the checks of the answers and logs.
        foreach (array_keys($this->amocrm) as $a) {
            try {
                $this->pairOf($a);
            } catch (\Throwable) {
                // a test that failed already says why
            }
        }
        parent::tearDown();
    }

    /**
     * Configures the accounts (before the server starts); $emulatorOf maps
     * an account to another account's amoCRM when two should share one.
     *
     * @param list<string> $accounts
     * @param array<string, string|null> $env more .env keys
     * @param array<string, string> $emulatorOf
     */
    protected function withAccounts(array $accounts, array $env = [], array $emulatorOf = []): void
    {
        $this->emu(); // the .env is written once it runs
        foreach ($accounts as $a) {
            if (isset($emulatorOf[$a])) {
                $this->amocrm[$a] = $this->amocrm[$emulatorOf[$a]];
            } else {
                $this->amocrm[$a] = $a === 'default' ? $this->emu() : $this->extraEmulator('127.0.0.1', ['--redirect-uri', $this->callbackUrl()]);
            }
            $this->keys[$a] = "$a-key-" . bin2hex(random_bytes(10));
            $this->hooks[$a] = 'wh_' . str_replace('-', '_', $a) . '_' . bin2hex(random_bytes(10));
            $this->rememberSecrets($this->keys[$a], $this->hooks[$a]);
        }
        $keys = $hooks = [];
        foreach ($accounts as $a) {
            $keys[] = "$a:{$this->keys[$a]}";
            $hooks[] = "$a:{$this->hooks[$a]}";
        }
        $values = ['GATEWAY_ACCOUNTS' => implode(',', $accounts), 'GATEWAY_API_KEYS' => implode(',', $keys), 'GATEWAY_WEBHOOK_SECRET' => implode(',', $hooks)];
        foreach ($accounts as $a) {
            if ($a !== 'default') {
                $values[self::prefix($a) . 'OAUTH_HOST'] = 'localhost:' . $this->amocrm[$a]->port;
            }
        }
        if (!in_array('default', $accounts, true)) {
            $values['AMOCRM_OAUTH_HOST'] = null;
        }
        $this->configure($values + $env);
    }

    protected static function prefix(string $account): string
    {
        return 'AMOCRM_' . strtoupper(str_replace('-', '_', $account)) . '_';
    }

    protected function amocrmOf(string $account): Emulator
    {
        return $this->amocrm[$account];
    }

    protected function keyOf(string $account): string
    {
        return $this->keys[$account];
    }

    protected function hookOf(string $account): string
    {
        return $this->hooks[$account];
    }

    /** Where the gateway keeps an account's pair: the default's token file, the others' in a folder named after them beside it. */
    protected function tokenPathOf(string $account): string
    {
        return $account === 'default' ? $this->tokenPath : dirname($this->tokenPath) . "/$account/" . basename($this->tokenPath);
    }

    /** An API call with the account's key. */
    protected function apiAs(string $account, string $method, string $path, array $opts = []): HttpResponse
    {
        return $this->request($method, $path, $opts + ['bearer' => $this->keys[$account]]);
    }

    /**
     * A pair minted by the account's amoCRM, stored where the gateway keeps
     * that account's pair.
     * @return array{access_token:string, refresh_token:string, expires_at:int, base_domain:string, updated_at:int}
     */
    protected function seedAccount(string $account, int $expiresIn = 86400, int $age = 0): array
    {
        $t = $this->amocrm[$account]->mintTokens();
        $pair = ['access_token' => $t['access_token'], 'refresh_token' => $t['refresh_token'], 'expires_at' => time() + $expiresIn,
            'base_domain' => $this->amocrm[$account]->referer(), 'updated_at' => time() - $age];
        $this->rememberSecrets($t['access_token'], $t['refresh_token']);
        $this->writePair($account, $pair);
        return $pair;
    }

    protected function writePair(string $account, array $pair): void
    {
        $path = $this->tokenPathOf($account);
        if (!is_dir(dirname($path))) {
            mkdir(dirname($path), 0700, true);
        }
        $tmp = "$path.test-tmp";
        file_put_contents($tmp, json_encode($pair));
        chmod($tmp, 0600);
        rename($tmp, $path);
    }

    /** The account's stored pair (its tokens remembered as secrets), or null. */
    protected function pairOf(string $account): ?array
    {
        $path = $this->tokenPathOf($account);
        clearstatcache(true, $path);
        if (!is_file($path)) {
            return null;
        }
        $pair = json_decode((string) file_get_contents($path), true);
        $this->assertIsArray($pair, "$account: its token file holds a JSON object");
        $this->rememberSecrets(...array_values(array_filter([$pair['access_token'] ?? null, $pair['refresh_token'] ?? null], 'is_string')));
        return $pair;
    }

    /** The stored pair of the account, with the same tokens, expired a minute ago. */
    protected function expire(string $account): void
    {
        $pair = $this->pairOf($account);
        $this->assertNotNull($pair, "$account has a pair to expire");
        $pair['expires_at'] = time() - 60;
        $this->writePair($account, $pair);
    }

    /**
     * Figures a test measured, appended as a JSON line to the file named by
     * AMOCRM_ACCOUNTS_FIGURES when set (for the report of a run); else nothing.
     * @param array<string, mixed> $figures
     */
    protected function figures(string $what, array $figures): void
    {
        $file = getenv('AMOCRM_ACCOUNTS_FIGURES');
        if (is_string($file) && $file !== '') {
            file_put_contents($file, json_encode(['test' => static::class . '::' . $this->currentTestName(), 'what' => $what] + $figures) . "\n", FILE_APPEND | LOCK_EX);
        }
        $this->addToAssertionCount(1);
    }

    /** A metric sample of /metrics' text, e.g. `amocrm_refreshes_total{account="shop-1"}`; null when absent. */
    protected static function sample(string $text, string $series): ?float
    {
        return preg_match('/^' . preg_quote($series, '/') . ' (\S+)$/m', $text, $m) ? (float) $m[1] : null;
    }

    /**
     * Ten accounts, each with its own amoCRM, under concurrent traffic; each
     * round every account's pair is made to expire (its `expires_at` in the
     * past, the tokens unchanged), then every account gets $posts lead
     * POSTs and $gets account GETs at once, shuffled together. Asserts after
     * every round: exactly one refresh per account, no revoked token, every
     * call answered, each account's calls at its own amoCRM only (with its
     * own pair: an emulator refuses the others'); at the end no amoCRM saw
     * more than 7 requests in a second nor answered a 429.
     *
     * @return array<string, int|float> figures
     */
    protected function tenAccountsUnderLoad(int $rounds, int $posts = 3, int $gets = 5): array
    {
        $accounts = ['default'];
        for ($i = 1; $i <= 9; $i++) {
            $accounts[] = "shop-$i";
        }
        // Every call reaches amoCRM (no info cache); the rate limits are the
        // real ones: the extension's 7 per 1.1 s per account, the emulators' 7 per second.
        $this->withAccounts($accounts, ['GATEWAY_INFO_CACHE_TTL' => '0']);
        foreach ($accounts as $a) {
            $this->seedAccount($a);
        }
        $this->server();
        $t0 = microtime(true);
        $calls = 0;
        for ($round = 1; $round <= $rounds; $round++) {
            $before = [];
            foreach ($accounts as $a) {
                $before[$a] = $this->pairOf($a);
                $this->expire($a);
            }
            $requests = $expect = [];
            foreach ($accounts as $a) {
                for ($i = 0; $i < $posts; $i++) {
                    $requests[] = ['POST', '/api/leads', ['bearer' => $this->keyOf($a), 'json' => ['name' => "$a round $round #$i", 'contact' => ['phone' => '+7900' . random_int(1000000, 9999999)]]]];
                    $expect[] = [$a, 201];
                }
                for ($i = 0; $i < $gets; $i++) {
                    $requests[] = ['GET', '/api/info/account', ['bearer' => $this->keyOf($a)]];
                    $expect[] = [$a, 200];
                }
            }
            $order = range(0, count($requests) - 1);
            shuffle($order);
            $answers = $this->http()->concurrently(array_map(static fn (int $i) => $requests[$i], $order));
            foreach ($order as $n => $i) {
                [$a, $status] = $expect[$i];
                $r = $answers[$n];
                $this->assertSame($status, $r->status, "round $round, $a: " . $r->describe());
                if ($status === 200) {
                    // The account answered is the key's: its amoCRM's own host in _links.
                    $this->assertSame('http://' . $this->amocrmOf($a)->referer() . '/api/v4/account', $r->json()['_links']['self']['href'] ?? null, "round $round, $a");
                }
            }
            $calls += count($requests);
            foreach ($accounts as $k => $a) {
                $emu = $this->amocrmOf($a);
                $this->assertSame($round, $emu->tokenCalls('refresh_token/ok'), "round $round, $a: exactly one refresh per expiry at its amoCRM");
                $this->assertSame(0, $emu->tokenCalls('refresh_token/Token has been revoked'), "round $round, $a: no revoked token");
                $this->assertSame(($posts + $gets) * $round, (int) array_sum($emu->stats()['api_calls']), "round $round, $a: its calls, and only its calls, reached its amoCRM");
                $pair = $this->pairOf($a);
                $this->assertNotSame($before[$a]['refresh_token'], $pair['refresh_token'], "round $round, $a: the pair was renewed");
                $this->assertSame(['access_token' => 'valid', 'refresh_token' => 'valid'], $emu->check($pair), "round $round, $a: its amoCRM accepts the stored pair");
                $neighbour = $this->amocrmOf($accounts[($k + 1) % count($accounts)]);
                $this->assertSame(['access_token' => 'unknown', 'refresh_token' => 'unknown'], $neighbour->check($pair), "$a's pair means nothing to another account's amoCRM");
            }
        }
        $seconds = microtime(true) - $t0;
        $maxRps = 0;
        foreach ($accounts as $a) {
            $stats = $this->amocrmOf($a)->stats();
            $this->assertLessThanOrEqual(7, $stats['max_api_rps'], "$a: its amoCRM never saw more than 7 requests in a second");
            $this->assertSame(0, $stats['rate_limited'], "$a: no 429");
            $this->assertSame($posts * $rounds, count($this->amocrmOf($a)->http('GET', '/_emulator/leads')['json'] ?? []), "$a: one lead per POST");
            foreach ($this->amocrmOf($a)->http('GET', '/_emulator/leads')['json'] ?? [] as $lead) {
                $this->assertStringStartsWith("$a round ", $lead['name'], "$a: only its own leads");
            }
            $maxRps = max($maxRps, $stats['max_api_rps']);
        }
        $metrics = $this->admin('GET', '/metrics');
        $this->assertSame(200, $metrics->status);
        $waits = 0;
        foreach ($accounts as $a) {
            $this->assertSame((float) $rounds, self::sample($metrics->body, "amocrm_refreshes_total{account=\"$a\"}"), "/metrics: $a's refreshes");
            $this->assertSame((float) (($posts + $gets) * $rounds), self::sample($metrics->body, "amocrm_api_calls_total{account=\"$a\",status=\"200\"}"), "/metrics: $a's calls");
            $waits += (int) self::sample($metrics->body, "amocrm_rate_limit_waits_total{account=\"$a\"}");
        }
        // The ten budgets are the accounts' own: together they went faster than one account may.
        $this->assertGreaterThan(7.0, $calls / $seconds, 'ten accounts together are not held to one account\'s 7 per second');
        return ['accounts' => count($accounts), 'rounds' => $rounds, 'calls' => $calls, 'seconds' => round($seconds, 1),
            'calls_per_second' => round($calls / $seconds, 1), 'refreshes_per_account' => $rounds, 'max_rps_at_one_amocrm' => $maxRps, 'rate_limit_waits' => $waits];
    }
}
