<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * php/bin/amocrm with many accounts (issue 9.3, 9.4): --account for every
 * command, --all-accounts, the .env checks, and moving a pair between stores
 * with export and import — without a refresh, and without losing it when
 * killed half-way.
 */
final class AccountsCliTest extends AccountsTestCase
{
    public function testEveryCommandWorksOnTheNamedAccountOnly(): void
    {
        $this->withAccounts(['default', 'shop-1', 'shop-2']);
        $r = $this->cli(['--account=shop-1', 'status']);
        $this->assertSame(2, $r['exit'], 'not authorized: ' . $r['out'] . $r['err']);
        $this->assertMatchesRegularExpression('/authori[sz]/i', $r['out'] . $r['err']);

        $this->seedAccount('shop-1');
        $r = $this->cli(['status', '--account=shop-1']); // the option may follow the command
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString($this->amocrmOf('shop-1')->referer(), $r['out'], 'its amoCRM account');
        $this->assertSame(2, $this->cli(['status'])['exit'], 'the default account is not authorized');

        $before = $this->pairOf('shop-1');
        $r = $this->cli(['--account=shop-1', 'refresh', '--force']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(1, $this->amocrmOf('shop-1')->tokenCalls('refresh_token/ok'));
        $this->assertNotSame($before['refresh_token'], $this->pairOf('shop-1')['refresh_token']);

        $this->seedAccount('shop-2', 86400, 31 * 86400);
        $r = $this->cli(['--account=shop-2', 'keepalive', '--max-age=30']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString('refreshed', $r['out']);
        $this->assertSame(1, $this->amocrmOf('shop-2')->tokenCalls('refresh_token/ok'));
        $this->assertSame(1, $this->amocrmOf('shop-1')->tokenCalls('refresh_token/ok'), 'shop-1 untouched');

        $r = $this->cli(['--account=shop-2', 'authorize-url']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString('http://localhost:' . $this->amocrmOf('shop-2')->port . '/oauth?', $r['out'], 'the consent page of its amoCRM');

        $r = $this->cli(['--account=default', 'exchange', $this->emu()->code(), $this->emu()->referer()]);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame($this->emu()->referer(), $this->pairOf('default')['base_domain']);
        $this->assertSame(1, $this->emu()->tokenCalls('authorization_code/ok'));

        // import and export name their account too (the round trip below goes further).
        $file = $this->dir . '/shop-1-export.json';
        $r = $this->cli(['--account=shop-1', 'export', $file]);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame($this->pairOf('shop-1')['refresh_token'], json_decode((string) file_get_contents($file), true)['refresh_token']);
        $r = $this->cli(['--account=shop-2', 'import', $file]);
        $this->assertSame(1, $r['exit'], 'shop-1\'s amoCRM account cannot become shop-2\'s too: ' . $r['out'] . $r['err']);
        $this->assertStringContainsString('already held by account `shop-1`', $r['err']);
        $this->assertSame($this->amocrmOf('shop-2')->referer(), $this->pairOf('shop-2')['base_domain'], 'shop-2 keeps its pair');
        $r = $this->cli(['--account=shop-2', 'exchange', $this->amocrmOf('shop-1')->code(), $this->amocrmOf('shop-1')->referer()]);
        $this->assertSame(1, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(0, $this->amocrmOf('shop-1')->tokenCalls('authorization_code/ok'), 'the code was never sent');

        // webhooks:replay: every account's deliveries, or the named account's.
        $pending = $this->dataDir . '/webhooks/pending';
        mkdir($pending, 0700, true);
        foreach (['shop-1' => '1000601', 'shop-2' => '1000602', null => '1000603'] as $a => $lead) {
            $id = sprintf('%.6F', microtime(true) - 120) . '-' . bin2hex(random_bytes(4));
            file_put_contents("$pending/$id.json", json_encode(['id' => $id, 'received_at' => time() - 120, 'remote_addr' => '127.0.0.1',
                'body' => "leads%5Badd%5D%5B0%5D%5Bid%5D=$lead"] + ($a === '' ? [] : ['account' => $a])));
            touch("$pending/$id.json", time() - 120);
        }
        $r = $this->cli(['--account=shop-1', 'webhooks:replay']);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString('1 delivered', $r['out']);
        $this->assertStringContainsString('"account":"shop-1"', (string) file_get_contents($this->jsonl));
        $this->assertCount(2, glob("$pending/*.json"));
        $r = $this->cli(['--account=default', 'webhooks:replay']);
        $this->assertStringContainsString('1 delivered', $r['out'], 'a delivery stored before accounts is the default\'s');
        $this->assertSame(0, $this->cli(['webhooks:replay'])['exit']);
        $this->assertSame([], glob("$pending/*.json"));
    }

    public function testAccountOptionMistakesAreUsageErrors(): void
    {
        $this->withAccounts(['default', 'shop-1']);
        $cases = [
            'an account not configured' => ['--account=shop-9', 'status'],
            'not an account name' => ['--account=Shop 1', 'status'],
            'twice' => ['--account=shop-1', '--account=default', 'status'],
            'without =' => ['--account', 'shop-1', 'status'],
            'both options' => ['--all-accounts', '--account=shop-1', 'status'],
            '--all-accounts for a one-account command' => ['--all-accounts', 'export', $this->dir . '/x.json'],
            'webhooks:replay for no such account' => ['--account=shop-9', 'webhooks:replay'],
            'export without a file' => ['--account=shop-1', 'export'],
            'a bad --max-age for every account' => ['--all-accounts', 'keepalive', '--max-age=0'],
        ];
        foreach ($cases as $case => $args) {
            $r = $this->cli($args);
            $this->assertSame(64, $r['exit'], "$case: " . $r['out'] . $r['err']);
            $this->assertStringContainsString('usage', $r['out'] . $r['err'], $case);
        }
        $this->assertSame(1, substr_count($this->cli(['--all-accounts', 'keepalive', '--max-age=0'])['err'], 'usage:'), 'said once, not once per account');

        // Without a `default` account, a command must name one.
        $this->withAccounts(['shop-1']);
        $r = $this->cli(['status']);
        $this->assertSame(64, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString('--account=NAME', $r['err']);
    }

    public function testAllAccountsRunsForEachAndExitsWithTheWorst(): void
    {
        $this->withAccounts(['default', 'shop-1', 'shop-2']);
        $this->seedAccount('default', 86400, 31 * 86400);
        $this->seedAccount('shop-1', 86400, 31 * 86400);
        $r = $this->cli(['--all-accounts', 'status']);
        $this->assertSame(2, $r['exit'], 'shop-2 needs an admin: ' . $r['out'] . $r['err']);
        foreach (['default', 'shop-1', 'shop-2'] as $a) {
            $this->assertStringContainsString("== account $a ==", $r['out']);
        }

        $r = $this->cli(['keepalive', '--all-accounts', '--max-age=30']);
        $this->assertSame(2, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(1, $this->emu()->tokenCalls('refresh_token/ok'), 'default renewed');
        $this->assertSame(1, $this->amocrmOf('shop-1')->tokenCalls('refresh_token/ok'), 'shop-1 renewed');

        $this->seedAccount('shop-2');
        $this->assertSame(0, $this->cli(['--all-accounts', 'status'])['exit']);
        $this->assertSame(0, $this->cli(['--all-accounts', 'keepalive'])['exit']);
        $this->assertSame(1, $this->emu()->tokenCalls('refresh_token/ok'), 'not due any more');

        // One amoCRM down: exit 1 (the others still refreshed).
        $this->amocrmOf('shop-1')->fault(['path' => '/oauth2/access_token', 'action' => 'drop']);
        $r = $this->cli(['--all-accounts', 'refresh', '--force']);
        $this->assertSame(1, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(2, $this->emu()->tokenCalls('refresh_token/ok'));
        $this->assertSame(1, $this->amocrmOf('shop-2')->tokenCalls('refresh_token/ok'));
    }

    /**
     * Moving a pair from one store to another and back, as a change of the
     * account's store in the .env does (here: from its token file to
     * another; `store=redis://…` is the same commands): export from the old,
     * import into the new. amoCRM sees no refresh, and the pair works there.
     */
    public function testExportAndImportMoveAPairBothWaysWithoutARefresh(): void
    {
        $this->withAccounts(['default', 'shop-1']);
        $old = $this->tokenPathOf('shop-1');
        $new = $this->dir . '/other-store/tokens.json';
        $pair = $this->seedAccount('shop-1');
        $oldBytes = (string) file_get_contents($old);

        $file = $this->dir . '/moving/shop-1.json';
        mkdir(dirname($file), 0700);
        $r = $this->cli(['--account=shop-1', 'export', $file]);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString('exported', $r['out']);
        $this->assertSame(0600, fileperms($file) & 0777);
        $exported = json_decode((string) file_get_contents($file), true);
        foreach (['access_token', 'refresh_token', 'expires_at', 'base_domain', 'updated_at'] as $k) {
            $this->assertSame($pair[$k], $exported[$k], "the export holds the stored $k");
        }
        $this->assertSame($oldBytes, file_get_contents($old), 'the source is untouched');

        // Never over an existing file; nothing to export is "authorize first".
        $r = $this->cli(['--account=shop-1', 'export', $file]);
        $this->assertSame(1, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString('exists', $r['err']);
        $this->assertSame($exported, json_decode((string) file_get_contents($file), true));
        $r = $this->cli(['--account=default', 'export', $this->dir . '/moving/none.json']);
        $this->assertSame(2, $r['exit'], $r['out'] . $r['err']);
        $this->assertFileDoesNotExist($this->dir . '/moving/none.json');

        // The .env now keeps shop-1 in the new store.
        $this->configure([self::prefix('shop-1') . 'TOKEN_PATH' => $new]);
        $this->assertSame(2, $this->cli(['--account=shop-1', 'status'])['exit'], 'the new store is empty');
        $r = $this->cli(['--account=shop-1', 'import', $file]);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame(0600, fileperms($new) & 0777);
        $moved = json_decode((string) file_get_contents($new), true);
        foreach (['access_token', 'refresh_token', 'expires_at', 'base_domain'] as $k) {
            $this->assertSame($pair[$k], $moved[$k], "the new store holds the same $k");
        }
        $this->assertSame($oldBytes, file_get_contents($old), 'the old store is kept as it was (a backup)');

        // And back: export from the new store, import into the old one (emptied).
        $back = $this->dir . '/moving/shop-1-back.json';
        $this->assertSame(0, $this->cli(['--account=shop-1', 'export', $back])['exit']);
        unlink($old);
        $this->configure([self::prefix('shop-1') . 'TOKEN_PATH' => null]);
        $r = $this->cli(['--account=shop-1', 'import', $back]);
        $this->assertSame(0, $r['exit'], $r['out'] . $r['err']);
        $this->assertSame($pair['refresh_token'], $this->pairOf('shop-1')['refresh_token']);

        $this->assertSame([], $this->amocrmOf('shop-1')->stats()['token_calls'], 'no refresh, no code: the pair moved as it was');
        // It works as it is: an API call through the gateway with no token request.
        $a = $this->apiAs('shop-1', 'GET', '/api/info/account');
        $this->assertSame(200, $a->status, $a->describe());
        $this->assertSame([], $this->amocrmOf('shop-1')->stats()['token_calls']);
        $this->assertSame(['access_token' => 'valid', 'refresh_token' => 'valid'], $this->amocrmOf('shop-1')->check($this->pairOf('shop-1')));
    }

    /**
     * SIGKILL at spread moments of `export` and of `import`: the source pair
     * is intact every time, and the destination is absent (export) or the old
     * pair (import), or whole — never a torn file.
     */
    public function testAKilledExportOrImportLosesNothing(): void
    {
        $rounds = 30;
        $this->withAccounts(['default', 'shop-1']);
        $a = $this->seedAccount('shop-1');
        $source = $this->tokenPathOf('shop-1');
        $sourceBytes = (string) file_get_contents($source);
        $dir = $this->dir . '/kills';
        mkdir($dir, 0700);
        $cmd = fn (string ...$args): array => [PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT'), $this->root . '/php/bin/amocrm', '--account=shop-1', ...$args];
        // How long a whole run takes (the longest of three): the kills are spread over 1.5 times that.
        $longest = 0.0;
        for ($i = 0; $i < 3; $i++) {
            $t = microtime(true);
            $this->killAfter($cmd('export', "$dir/timing-$i.json"), null);
            $longest = max($longest, microtime(true) - $t);
            $this->assertFileExists("$dir/timing-$i.json");
        }
        rename("$dir/timing-0.json", "$dir/timing.json");
        $span = $longest * 1.5;

        $export = ['absent' => 0, 'whole' => 0];
        for ($i = 0; $i < $rounds; $i++) {
            $file = "$dir/export-$i.json";
            $this->killAfter($cmd('export', $file), $span * $i / $rounds);
            $this->assertSame($sourceBytes, file_get_contents($source), "export round $i: the source is intact");
            clearstatcache();
            if (!file_exists($file)) {
                $export['absent']++;
                continue;
            }
            $this->assertSame(0600, fileperms($file) & 0777, "export round $i");
            $got = json_decode((string) file_get_contents($file), true);
            $this->assertSame($a['refresh_token'], $got['refresh_token'] ?? null, "export round $i: the file is whole");
            $this->assertSame($a['access_token'], $got['access_token'] ?? null, "export round $i: the file is whole");
            $export['whole']++;
        }

        // Import into another store that holds an older pair B: B or A, whole, every time.
        $target = $this->dir . '/other-store/tokens.json';
        $this->configure([self::prefix('shop-1') . 'TOKEN_PATH' => $target]);
        $t = $this->amocrmOf('shop-1')->mintTokens();
        $this->rememberSecrets($t['access_token'], $t['refresh_token']);
        $b = ['access_token' => $t['access_token'], 'refresh_token' => $t['refresh_token'], 'expires_at' => time() + 3600,
            'base_domain' => $this->amocrmOf('shop-1')->referer(), 'updated_at' => time() - 86400];
        $from = "$dir/timing.json";
        $fromBytes = (string) file_get_contents($from);
        @mkdir(dirname($target), 0700);
        $import = ['old' => 0, 'new' => 0];
        for ($i = 0; $i < $rounds; $i++) {
            file_put_contents("$target.tmp-test", json_encode($b));
            chmod("$target.tmp-test", 0600);
            rename("$target.tmp-test", $target);
            $this->killAfter($cmd('import', $from), $span * $i / $rounds);
            $this->assertSame($fromBytes, file_get_contents($from), "import round $i: the exported file is intact");
            $got = json_decode((string) file_get_contents($target), true);
            $this->assertIsArray($got, "import round $i: the store's file is whole");
            $which = ($got['refresh_token'] ?? null) === $a['refresh_token'] ? 'new' : (($got['refresh_token'] ?? null) === $b['refresh_token'] ? 'old' : 'neither');
            $this->assertNotSame('neither', $which, "import round $i");
            $this->assertSame($which === 'new' ? $a['access_token'] : $b['access_token'], $got['access_token'], "import round $i: one pair, not a mix");
            $import[$which]++;
        }
        $this->assertSame($sourceBytes, file_get_contents($source));
        $this->assertSame([], $this->amocrmOf('shop-1')->stats()['token_calls'], 'no refresh at any point');
        // The kills really spanned the runs: some came before the write, some after.
        $this->assertGreaterThan(0, $export['absent'], 'some exports were killed before writing');
        $this->assertGreaterThan(0, $export['whole'], 'some exports finished');
        $this->assertGreaterThan(0, $import['old'], 'some imports were killed before writing');
        $this->assertGreaterThan(0, $import['new'], 'some imports finished');
        $leftovers = count(array_filter(array_merge(glob("$dir/*") ?: [], glob(dirname($target) . '/*') ?: []),
            static fn (string $f): bool => str_contains(basename($f), '.tmp')));
        $this->figures('SIGKILL during export/import', ['rounds' => $rounds, 'span_ms' => (int) ($span * 1000),
            'export_absent' => $export['absent'], 'export_whole' => $export['whole'], 'import_old' => $import['old'], 'import_new' => $import['new'],
            'temp_files_left' => $leftovers]);
    }

    /**
     * Starts the CLI, SIGKILLs it after $seconds (if it still runs; null: lets
     * it finish), and reaps it.
     * @param list<string> $cmd
     */
    private function killAfter(array $cmd, ?float $seconds): void
    {
        $proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes, $this->root,
            ['PATH' => getenv('PATH') ?: '/usr/bin:/bin', 'GATEWAY_ENV_FILE' => $this->envFile]);
        $this->assertIsResource($proc);
        if ($seconds !== null) {
            usleep((int) ($seconds * 1e6));
            $status = proc_get_status($proc);
            if ($status['running']) {
                posix_kill($status['pid'], SIGKILL);
            }
        }
        proc_close($proc);
    }

    public function testAnAccountsTokenFolderIsPrivateAndOwnedLikeTheFolderItIsIn(): void
    {
        if (posix_geteuid() !== 0) {
            $this->markTestSkipped('needs root: an admin\'s CLI run as root is the case');
        }
        // The token folder belongs to the workers' user (here nobody); the admin runs the CLI as root.
        $folder = $this->dir . '/lib-amocrm';
        mkdir($folder, 0700);
        chown($folder, 65534);
        chgrp($folder, 65534);
        $this->withAccounts(['default', 'shop-1'], ['AMOCRM_TOKEN_PATH' => "$folder/tokens.json"]);
        $this->assertSame(2, $this->cli(['--account=shop-1', 'status'])['exit']);
        $made = "$folder/shop-1";
        $this->assertDirectoryExists($made);
        $this->assertSame(0700, fileperms($made) & 0777);
        $this->assertSame(65534, fileowner($made), 'owned like its parent, not by root');
        $this->assertSame(65534, filegroup($made));
    }

    public function testTheEnvIsCheckedAtLoadNamingTheKey(): void
    {
        $this->withAccounts(['default', 'shop-1']);
        $base = $this->envValues();
        $cases = [
            'GATEWAY_ACCOUNTS' => [
                ['GATEWAY_ACCOUNTS' => 'default,Shop-1'],
                ['GATEWAY_ACCOUNTS' => 'default,shop-1,shop-1'],
                ['GATEWAY_ACCOUNTS' => 'default,shop-1,shop_1'],
                ['GATEWAY_ACCOUNTS' => 'default,shop-1,connect'],
                ['GATEWAY_ACCOUNTS' => 'default,shop-1,' . str_repeat('a', 33)],
                // Its token folder would be the info cache's (with the token file in the data dir).
                ['GATEWAY_ACCOUNTS' => 'default,shop-1,cache', 'AMOCRM_TOKEN_PATH' => $this->dataDir . '/tokens.json'],
            ],
            'AMOCRM_SHOP_9_CLIENT_ID' => [['AMOCRM_SHOP_9_CLIENT_ID' => 'x']],
            'AMOCRM_SHOP_1_NO_SUCH_KEY' => [['AMOCRM_SHOP_1_NO_SUCH_KEY' => 'x']],
            'AMOCRM_DEFAULT_CLIENT_ID' => [['AMOCRM_DEFAULT_CLIENT_ID' => 'x']],
            'AMOCRM_SHOP_1_RATE_LIMIT' => [['AMOCRM_SHOP_1_RATE_LIMIT' => 'fast']],
            'AMOCRM_SHOP_1_TOKEN_PATH' => [['AMOCRM_SHOP_1_TOKEN_PATH' => $this->tokenPath]],
            'GATEWAY_API_KEYS' => [
                ['GATEWAY_API_KEYS' => 'shop-9:' . str_repeat('k', 20)],
                ['GATEWAY_API_KEYS' => 'default:' . $this->keyOf('shop-1') . ',shop-1:' . $this->keyOf('shop-1')],
                ['GATEWAY_API_KEYS' => 'Shop:' . str_repeat('k', 20)],
                ['GATEWAY_API_KEYS' => 'shop-1:short'],
            ],
            'GATEWAY_WEBHOOK_SECRET' => [
                ['GATEWAY_WEBHOOK_SECRET' => 'shop-9:' . str_repeat('w', 20)],
                ['GATEWAY_WEBHOOK_SECRET' => 'shop-1:' . $this->hookOf('shop-1') . ',' . $this->hookOf('shop-1')],
                ['GATEWAY_WEBHOOK_SECRET' => 'shop-1:has.a.dot.in.it.0000'],
            ],
        ];
        foreach ($cases as $key => $variants) {
            foreach ($variants as $override) {
                $env = $override + $base;
                $this->writeEnv($env);
                $r = $this->cli(['--account=shop-1', 'status']);
                $case = $key . ' ' . json_encode($override);
                $this->assertSame(78, $r['exit'], "$case: " . $r['out'] . $r['err']);
                $this->assertStringContainsString($key, $r['err'], "$case: the message names the key");
                foreach (['k' => str_repeat('k', 20), 'w' => str_repeat('w', 20), 'key' => $this->keyOf('shop-1'), 'hook' => $this->hookOf('shop-1')] as $secret) {
                    $this->assertStringNotContainsString($secret, $r['err'] . $r['out'], "$case: no secret printed");
                }
            }
        }
        // A bare key (or secret) is the default account's: without `default` it names none.
        $env = ['GATEWAY_ACCOUNTS' => 'shop-1', 'GATEWAY_API_KEYS' => $this->keyOf('shop-1')] + $base;
        $this->writeEnv($env);
        $r = $this->cli(['--account=shop-1', 'status']);
        $this->assertSame(78, $r['exit'], $r['out'] . $r['err']);
        $this->assertStringContainsString('GATEWAY_API_KEYS', $r['err']);
        $this->assertStringContainsString('names no account', $r['err']);

        // What is right loads: an account's own key (here a token file of its own) wins over the shared one.
        $own = $this->dir . '/own/shop-1.json';
        $this->writeEnv([self::prefix('shop-1') . 'TOKEN_PATH' => $own] + $base);
        $this->assertSame(2, $this->cli(['--account=shop-1', 'status'])['exit']);
        $t = $this->amocrmOf('shop-1')->mintTokens();
        $this->rememberSecrets($t['access_token'], $t['refresh_token']);
        $this->assertSame(0700, fileperms(dirname($own)) & 0777, 'the gateway made the folder of the account\'s own token file');
        file_put_contents($own, json_encode(['access_token' => $t['access_token'], 'refresh_token' => $t['refresh_token'], 'expires_at' => time() + 3600,
            'base_domain' => $this->amocrmOf('shop-1')->referer(), 'updated_at' => time()]));
        $this->assertSame(0, $this->cli(['--account=shop-1', 'status'])['exit'], 'shop-1 reads its own token file');
        $this->assertSame(2, $this->cli(['status'])['exit'], 'the default account does not');
    }
}
