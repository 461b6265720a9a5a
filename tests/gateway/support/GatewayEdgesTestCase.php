<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

use PHPUnit\Framework\Attributes\DataProvider;

/**
 * Nothing lost, nothing duplicated, nothing leaked at the edges (issue 7):
 * webhook bodies PHP cannot read, leads whose creation had an unknown
 * outcome, guessing, configuration and storage errors, PATCH input, OAuth
 * details, file modes. Run once per server kind: PhpBuiltinEdgesTest and
 * NginxFpmEdgesTest.
 */
abstract class GatewayEdgesTestCase extends GatewayTestCase
{
    private const LEAD = ['name' => 'Заявка: окна', 'price' => 40000, 'tags' => ['site'],
        'contact' => ['name' => 'Олег', 'phone' => '+7 901 222-33-44'], 'comment' => 'Перезвонить утром'];

    // ---- webhooks: raw bytes first (7), parsed whole (8) ----------------------

    private function postWebhook(string $body, string $contentType = 'application/x-www-form-urlencoded'): HttpResponse
    {
        $r = $this->request('POST', '/webhooks/amocrm/' . $this->webhookSecret, ['body' => $body, 'headers' => ['Content-Type' => $contentType]]);
        $this->assertSame(200, $r->status, 'amoCRM gets its 200 once the delivery is stored: ' . $r->describe());
        $this->assertSame('ok', trim($r->body));
        return $r;
    }

    /** @return array<string, mixed> the one delivery in $state, once it is there */
    private function onlyDelivery(string $state): array
    {
        $file = $this->eventually(fn () => $this->spool($state)[0] ?? null, "a delivery in webhooks/$state/");
        $this->assertCount(1, $this->spool($state));
        $d = json_decode((string) file_get_contents($file), true);
        $this->assertIsArray($d, $file);
        return $d;
    }

    /** The stored raw bytes of a delivery. */
    private static function storedBody(array $d): string
    {
        return isset($d['body_base64']) ? (string) base64_decode($d['body_base64'], true) : (string) ($d['body'] ?? '');
    }

    /** @return array<string, array{0: string, 1: string, 2: string}> body, content type, what the reason says */
    public static function unparsableWebhooks(): array
    {
        return [
            'a windows-1251 form' => ['leads%5Bstatus%5D%5B0%5D%5Bid%5D=1000321&leads%5Bstatus%5D%5B0%5D%5Bname%5D=' . rawurlencode("\xC7\xE0\xFF\xE2\xEA\xE0"),
                'application/x-www-form-urlencoded', 'UTF-8'],
            'a stray byte in a form' => ["leads[add][0][id]=1000322&leads[add][0][name]=\xFF", 'application/x-www-form-urlencoded', 'UTF-8'],
            'a stray byte in JSON' => ["{\"leads\":{\"add\":[{\"id\":\"1000323\",\"name\":\"\xFF\"}]}}", 'application/json', 'JSON'],
            'JSON cut short' => ['{"leads":{"add":[{"id":"1000324"', 'application/json', 'JSON'],
            'a form nested deeper than PHP keeps (70 levels)' => ['leads' . str_repeat('[x]', 69) . '=1000325', 'application/x-www-form-urlencoded', 'deeper'],
        ];
    }

    /** @dataProvider unparsableWebhooks */
    #[DataProvider('unparsableWebhooks')]
    public function testAWebhookThatCannotBeParsedIsKeptInFailedWithItsBytes(string $body, string $type, string $reason): void
    {
        $this->postWebhook($body, $type);
        $d = $this->onlyDelivery('failed');
        $this->assertSame($body, self::storedBody($d), 'the raw bytes are kept, losslessly');
        $this->assertStringContainsString($reason, implode("\n", $d['errors'] ?? []), 'the reason is recorded with the delivery');
        $this->assertSame([], $this->spool('done'));
        $this->assertSame([], $this->spool('pending'));
        $this->assertFileDoesNotExist($this->jsonl, 'no handler got a partial payload');

        // Replay works from the stored bytes: still failing, still whole.
        $run = $this->cli(['webhooks:replay']);
        $this->assertSame(1, $run['exit'], $run['out'] . $run['err']);
        $this->assertSame($body, self::storedBody($this->onlyDelivery('failed')));
    }

    public function testA1500FieldWebhookReachesTheHandlersWhole(): void
    {
        $fields = [];
        for ($i = 0; $i < 1500; $i++) {
            $fields[] = "leads%5Bstatus%5D%5B$i%5D%5Bid%5D=" . (1000000 + $i);
        }
        $body = implode('&', $fields) . '&account%5Bsubdomain%5D=emulator';
        $this->assertLessThan(65536, strlen($body), 'within GATEWAY_MAX_BODY');
        $this->postWebhook($body);

        $d = $this->onlyDelivery('done');
        $this->assertCount(1500, $d['parsed']['leads']['status'], 'every field, past PHP\'s max_input_vars (1000)');
        $this->assertSame('1001499', $d['parsed']['leads']['status'][1499]['id']);
        $this->assertSame('emulator', $d['parsed']['account']['subdomain']);
        $line = json_decode(trim((string) file_get_contents($this->jsonl)), true);
        $this->assertCount(1500, $line['data']['leads']['status'] ?? [], 'the handler got all 1500');
    }

    /** A mass status change: a delivery past the API's 64 KiB is still amoCRM's and must not be refused (lost). */
    public function testAWebhookLargerThanTheApiBodyLimitIsStored(): void
    {
        $fields = [];
        for ($i = 0; $i < 6000; $i++) {
            $fields[] = "leads%5Bstatus%5D%5B$i%5D%5Bid%5D=" . (1000000 + $i) . "&leads%5Bstatus%5D%5B$i%5D%5Bstatus_id%5D=142";
        }
        $body = implode('&', $fields);
        $this->assertGreaterThan(4 * 65536, strlen($body), 'far past GATEWAY_MAX_BODY');
        $this->postWebhook($body);
        $d = $this->onlyDelivery('done');
        $this->assertCount(6000, $d['parsed']['leads']['status']);
        $this->assertSame($body, self::storedBody($d));

        // Past GATEWAY_WEBHOOK_MAX_BODY the answer is 413, and nothing half-stored.
        $this->configure(['GATEWAY_WEBHOOK_MAX_BODY' => '65536']);
        $r = $this->request('POST', '/webhooks/amocrm/' . $this->webhookSecret, ['form' => $body]);
        $this->assertProblem($r, 413);
        $this->assertCount(1, $this->spool('done'));
        $this->assertSame([], $this->spool('pending'));
    }

    public function testAWebhookFormParsesLikeAmoCrmSendsIt(): void
    {
        $body = 'leads%5Bupdate%5D%5B0%5D%5Bid%5D=1000401&leads%5Bupdate%5D%5B0%5D%5Bname%5D=%D0%9E%D0%BA%D0%BD%D0%B0+%D0%9F%D0%92%D0%A5'
            . '&leads%5Bupdate%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bvalues%5D%5B0%5D%5Bvalue%5D=yandex'
            . '&leads%5Bupdate%5D%5B0%5D%5Btags%5D%5B%5D=a&leads%5Bupdate%5D%5B0%5D%5Btags%5D%5B%5D=b&account%5Bid%5D=31000001';
        $this->postWebhook($body);
        parse_str($body, $php); // what handlers got before, for a body within PHP's limits
        $this->assertSame($php, $this->onlyDelivery('done')['parsed']);
    }

    public function testAMultipartLeadFormIsReadByTheGatewayItself(): void
    {
        $this->seedTokens();
        $part = static fn (string $name, string $value, string $extra = ''): string =>
            "--XyZ\r\nContent-Disposition: form-data; name=\"$name\"$extra\r\n\r\n$value\r\n";
        $type = ['Content-Type' => 'multipart/form-data; boundary=XyZ'];
        $body = $part('contact[name]', 'Пётр') . $part('phone', '+7 902 333-44-55') . $part('comment', "две\r\nстроки") . "--XyZ--\r\n";
        $created = $this->assertJsonAnswer($this->api('POST', '/api/leads', ['body' => $body, 'headers' => $type]), 201);
        $this->assertSame('Пётр', $this->entity('contacts', $created['contact_id'])['name'] ?? null);

        $file = $part('phone', '+79023334455') . $part('cv', 'PDF…', '; filename="cv.pdf"') . "--XyZ--\r\n";
        $this->assertProblem($this->api('POST', '/api/leads', ['body' => $file, 'headers' => $type]), 422, 'cv');
        $this->assertCount(1, $this->entities('leads'));
    }

    // ---- idempotency over an unknown outcome (9) ------------------------------------

    private function createWithKey(string $key, array $opts = []): HttpResponse
    {
        return $this->request('POST', '/api/leads', $opts + ['bearer' => self::API_KEY, 'json' => self::LEAD, 'headers' => ['Idempotency-Key' => $key]]);
    }

    public function testARetryAfterAnUnknownOutcomeAnswersWithTheLeadItCreated(): void
    {
        $this->seedTokens();
        // amoCRM creates the lead, but its answer is cut off.
        $this->emu()->fault(['path' => '/api/v4/leads/complex', 'action' => 'truncate', 'times' => 1]);
        $first = $this->createWithKey('order-7001');
        $p = $this->assertProblem($first, 502);
        $this->assertCount(1, $this->entities('leads'), 'amoCRM did create the lead');

        $retry = $this->createWithKey('order-7001');
        $leads = $this->entities('leads');
        $this->assertCount(1, $leads, 'the retry found the lead instead of creating another');
        $created = $this->assertJsonAnswer($retry, 201);
        $this->assertSame('true', $retry->header('idempotent-replayed'));
        $this->assertStringContainsString('Idempotency-Key', (string) ($p['detail'] ?? ''), 'the first answer said a retry with the key is safe');
        $this->assertSame($leads[0]['id'], $created['id']);
        $this->assertIsInt($created['contact_id']);
        $this->assertNotNull($this->entity('contacts', $created['contact_id']), 'the lead\'s contact');
        $notes = array_values(array_filter($this->entities('notes'), static fn ($n) => ($n['entity_id'] ?? null) === $created['id']));
        $this->assertCount(1, $notes, 'the comment the first attempt never added is on the lead now');
        $this->assertSame($created['note_id'], $notes[0]['id']);

        $calls = $this->apiCallCount();
        $again = $this->createWithKey('order-7001');
        $this->assertSame($created, $this->assertJsonAnswer($again, 201), 'later repeats get the same answer');
        $this->assertSame($calls, $this->apiCallCount(), 'from the record, without asking amoCRM');
    }

    public function testARetryCreatesTheLeadWhenTheFirstAttemptNeverReachedAmoCrm(): void
    {
        $this->seedTokens();
        // amoCRM reads the request and drops it unanswered: the outcome is unknown to the gateway.
        $this->emu()->fault(['path' => '/api/v4/leads/complex', 'action' => 'drop', 'times' => 1]);
        $this->assertProblem($this->createWithKey('order-7002'), 502);
        $this->assertSame([], $this->entities('leads'));

        $created = $this->assertJsonAnswer($this->createWithKey('order-7002'), 201);
        $this->assertCount(1, $this->entities('leads'), 'the search found nothing, so the retry created the lead');
        $this->assertSame($created, $this->assertJsonAnswer($this->createWithKey('order-7002'), 201));
        $this->assertCount(1, $this->entities('leads'));
    }

    public function testWhenAmoCrmCannotBeSearchedNothingIsCreated(): void
    {
        $this->seedTokens();
        $this->emu()->fault(['path' => '/api/v4/leads/complex', 'action' => 'truncate', 'times' => 1]);
        $this->assertProblem($this->createWithKey('order-7003'), 502);
        $this->emu()->fault(['path' => '/api/v4/leads', 'method' => 'GET', 'action' => 'respond', 'status' => 500, 'body' => 'oops']);

        $r = $this->createWithKey('order-7003');
        $this->assertProblem($r, 503);
        $this->assertNotNull($r->header('retry-after'));
        $this->assertCount(1, $this->entities('leads'), 'no second lead while the first attempt\'s outcome is unknown');
        $this->assertLogged('/cannot tell whether the lead with tag idem-[0-9a-f]+ exists/', 'why nothing was created');

        $this->emu()->control('DELETE', 'faults');
        $created = $this->assertJsonAnswer($this->createWithKey('order-7003'), 201);
        $this->assertSame($this->entities('leads')[0]['id'], $created['id']);
        $this->assertCount(1, $this->entities('leads'));
    }

    /** @return array<string, array{0: string}> */
    public static function authorizationSpellings(): array
    {
        return [
            'lower-case scheme' => ['bearer ' . self::API_KEY],
            'two spaces' => ['Bearer  ' . self::API_KEY],
            'upper-case scheme' => ['BEARER ' . self::API_KEY],
            'trailing space' => ['Bearer ' . self::API_KEY . ' '],
        ];
    }

    /** @dataProvider authorizationSpellings */
    #[DataProvider('authorizationSpellings')]
    public function testAKeyIsRememberedPerApiKeyNotPerHeaderSpelling(string $authorization): void
    {
        $this->seedTokens();
        $created = $this->assertJsonAnswer($this->createWithKey('order-7004'), 201);
        $r = $this->createWithKey('order-7004', ['bearer' => null, 'headers' => ['Idempotency-Key' => 'order-7004', 'Authorization' => $authorization]]);
        $this->assertSame($created, $this->assertJsonAnswer($r, 201));
        $this->assertSame('true', $r->header('idempotent-replayed'));
        $this->assertCount(1, $this->entities('leads'));
    }

    public function testTheSameLeadInAnotherKeyOrderIsTheSameInput(): void
    {
        $this->seedTokens();
        $created = $this->assertJsonAnswer($this->createWithKey('order-7005'), 201);
        $reordered = array_reverse(self::LEAD, true);
        $r = $this->createWithKey('order-7005', ['json' => $reordered]);
        $this->assertSame($created, $this->assertJsonAnswer($r, 201), 'the canonical input is compared, not the bytes');
        // Another API key is another client: its key is its own.
        $other = $this->createWithKey('order-7005', ['bearer' => self::OTHER_API_KEY]);
        $this->assertNotSame($created['id'], $this->assertJsonAnswer($other, 201)['id']);
        $this->assertCount(2, $this->entities('leads'));
    }

    public function testExpiredIdempotencyRecordsAndTheirLockFilesAreRemoved(): void
    {
        $this->seedTokens();
        $this->assertJsonAnswer($this->createWithKey('order-7006'), 201);
        $dir = $this->dataDir . '/idempotency';
        $fresh = array_map('basename', glob("$dir/*") ?: []);
        $this->assertNotEmpty($fresh);
        // Two days old: a record with its lock, a lock whose record is gone, a torn temp file.
        $old = ['aaaa.json' => '{"state":"done"}', 'aaaa.json.lock' => '', 'bbbb.json.lock' => '', 'cccc.json.tmp.1.ab' => '{'];
        foreach ($old as $name => $content) {
            file_put_contents("$dir/$name", $content);
            touch("$dir/$name", time() - 2 * 86400);
        }
        @unlink("$dir/.swept"); // as if the last sweep was long ago

        $this->assertJsonAnswer($this->createWithKey('order-7007'), 201);
        $this->eventually(fn () => array_intersect(array_keys($old), array_map('basename', glob("$dir/*") ?: [])) === [] ?: null,
            'the expired record, its lock file, the orphan lock and the temp file are removed');
        foreach ($fresh as $name) {
            $this->assertFileExists("$dir/$name", 'a record within GATEWAY_IDEMPOTENCY_TTL stays');
        }
        $this->assertSame('true', $this->createWithKey('order-7006')->header('idempotent-replayed'));
    }

    // ---- the field map is data (10) ------------------------------------------

    /** @return array<string, array{0: \Closure(self): string}> */
    public static function fieldMapsThatAreNotData(): array
    {
        return [
            'the .env itself' => [fn (self $t): string => $t->envFile],
            'a .php file with text before <?php' => [fn (self $t): string => $t->file('map.php', "GATEWAY_NOTE=x\n<?php return [];\n")],
            'a .php file that prints' => [fn (self $t): string => $t->file('map.php', "<?php\necho file_get_contents('" . $t->envFile . "');\nreturn [];\n")],
            'a .php file that returns no array' => [fn (self $t): string => $t->file('map.php', "<?php\nreturn 'x';\n")],
            'a .json file that is not an object' => [fn (self $t): string => $t->file('map.json', '"x"')],
            'a .txt file' => [fn (self $t): string => $t->file('map.txt', '{}')],
        ];
    }

    private function file(string $name, string $content): string
    {
        file_put_contents($this->dir . '/' . $name, $content);
        return $this->dir . '/' . $name;
    }

    /** @dataProvider fieldMapsThatAreNotData */
    #[DataProvider('fieldMapsThatAreNotData')]
    public function testAFieldMapThatIsNotDataIsRefusedWithoutBeingShown(\Closure $map): void
    {
        $this->emu();
        $this->configure(['GATEWAY_FIELD_MAP' => $map($this)]);
        $r = $this->request('GET', '/health');
        $this->assertProblem($r, 500);
        foreach (['GATEWAY_', 'AMOCRM_', self::CLIENT_SECRET, self::ADMIN_PASSWORD] as $text) {
            $this->assertStringNotContainsString($text, $r->body, 'nothing of the file reaches the answer');
        }
        $this->assertLogged('/configuration: GATEWAY_FIELD_MAP/', 'the key');
    }

    public function testAJsonFieldMapMapsFields(): void
    {
        $this->seedTokens();
        $this->configure(['GATEWAY_FIELD_MAP' => $this->file('fields.json', json_encode([
            'utm_source' => ['entity' => 'leads', 'field_code' => 'UTM_SOURCE'],
            'position' => ['entity' => 'contacts', 'field_code' => 'POSITION'],
        ]))]);
        $created = $this->assertJsonAnswer($this->api('POST', '/api/leads', ['json' => self::LEAD + ['utm_source' => 'yandex', 'fields' => ['position' => 'Директор']]]), 201);
        $this->assertSame(['yandex'], self::customFields($this->entity('leads', $created['id']))['UTM_SOURCE'] ?? null);
        $this->assertSame(['Директор'], self::customFields($this->entity('contacts', $created['contact_id']))['POSITION'] ?? null);
    }

    // ---- a brake on guessing (11) ------------------------------------------------

    /** @return array<string, array{0: string, 1: int}> kind, status of a wrong guess */
    public static function credentialKinds(): array
    {
        return ['admin password' => ['admin', 401], 'API key' => ['api', 401], 'webhook secret' => ['webhook', 404]];
    }

    /** A request of $kind with the right credential, or a wrong one. */
    private function withCredential(string $kind, bool $right, array $headers = []): HttpResponse
    {
        $guess = 'guess-' . bin2hex(random_bytes(8));
        return match ($kind) {
            'admin' => $this->request('GET', '/oauth/status', ['basic' => [self::ADMIN_USER, $right ? self::ADMIN_PASSWORD : $guess], 'headers' => $headers]),
            'api' => $this->request('GET', '/api/info/account', ['bearer' => $right ? self::API_KEY : $guess, 'headers' => $headers]),
            'webhook' => $this->request('POST', '/webhooks/amocrm/' . ($right ? $this->webhookSecret : $guess), ['form' => 'account%5Bid%5D=1', 'headers' => $headers]),
        };
    }

    /** @dataProvider credentialKinds */
    #[DataProvider('credentialKinds')]
    public function testWrongCredentialsAreThrottledPerAddress(string $kind, int $wrongStatus): void
    {
        $this->seedTokens();
        for ($i = 1; $i <= 10; $i++) {
            $this->assertSame($wrongStatus, $this->withCredential($kind, false)->status, "wrong guess #$i");
        }
        $r = $this->withCredential($kind, false);
        $this->assertProblem($r, 429);
        $wait = (int) $r->header('retry-after');
        $this->assertGreaterThanOrEqual(1, $wait, $r->describe());
        $this->assertLessThanOrEqual(60, $wait, $r->describe());
        $this->assertSame(429, $this->withCredential($kind, true)->status, 'while throttled, the credential is not looked at (a right guess would tell)');
        foreach (array_diff(['admin', 'api', 'webhook'], [$kind]) as $other) {
            $this->assertSame(200, $this->withCredential($other, true)->status, "$other from the same address is counted apart");
        }

        $lines = array_values(preg_grep('/auth failure/', explode("\n", $this->gatewayLog())) ?: []);
        $this->assertCount(10, $lines, 'each counted failure is logged, the refused ones are not');
        $this->assertStringContainsString('from 127.0.0.1', $lines[0]);
        $this->assertStringNotContainsString('guess-', implode("\n", $lines), 'never the guessed value');
    }

    public function testWorkersShareTheFailureCounts(): void
    {
        $this->server();
        $guesses = [];
        for ($i = 0; $i < 24; $i++) {
            $guesses[] = ['GET', '/api/info/account', ['bearer' => 'guess-' . $i . '-' . bin2hex(random_bytes(8))]];
        }
        $statuses = array_map(static fn (HttpResponse $r) => $r->status, $this->http()->concurrently($guesses));
        sort($statuses);
        $this->assertSame(array_merge(array_fill(0, 10, 401), array_fill(0, 14, 429)), $statuses,
            'exactly 10 guesses were checked, however many workers took them at once');
    }

    public function testTheClientAddressComesFromTrustedProxiesOnly(): void
    {
        $this->seedTokens();
        $from = static fn (string $ip): array => ['X-Forwarded-For' => "198.51.100.1, $ip"];
        // Not trusted: X-Forwarded-For is the client's own word, and ignored.
        for ($i = 1; $i <= 10; $i++) {
            $this->assertSame(401, $this->withCredential('admin', false, $from("203.0.113.$i"))->status);
        }
        $this->assertSame(429, $this->withCredential('admin', false, $from('203.0.113.99'))->status, 'a new X-Forwarded-For does not dodge the brake');

        // Behind a trusted proxy: the address it reports is the client.
        $this->configure(['GATEWAY_TRUSTED_PROXIES' => '10.0.0.0/8, 127.0.0.1']);
        for ($i = 1; $i <= 10; $i++) {
            $this->assertSame(401, $this->withCredential('admin', false, $from('203.0.113.7'))->status);
        }
        $this->assertSame(429, $this->withCredential('admin', false, $from('203.0.113.7'))->status);
        $this->assertSame(200, $this->withCredential('admin', true, $from('203.0.113.8'))->status, 'another client behind the proxy is not locked out');
        $this->assertSame(200, $this->withCredential('admin', true, ['X-Forwarded-For' => '203.0.113.8, 10.1.2.3'])->status, 'trusted hops are skipped');
        $this->assertLogged('/auth failure: wrong admin credential from 203\.0\.113\.7 /', 'the client behind the proxy');
    }

    // ---- errors say enough, to the right audience (12) -----------------------

    /** @return array<string, array{0: \Closure(self): void, 1: int, 2: string}> */
    public static function serverFailures(): array
    {
        return [
            'a corrupt token file' => [fn (self $t) => file_put_contents($t->tokenPath, '{"access_token": '), 500, 'AmoStorageException'],
            'amoCRM unreachable' => [fn (self $t) => $t->emu()->fault(['path' => '/api/v4/', 'action' => 'drop']), 502, 'AmoTransportException'],
            'amoCRM blocks the account' => [fn (self $t) => $t->emu()->fault(['path' => '/api/v4/', 'action' => 'respond', 'status' => 403,
                'content_type' => 'text/html', 'body' => '<html><head><title>403 Forbidden</title></head><body>nginx</body></html>']), 503, 'AmoRateLimitException'],
            // The integration's configuration, not the caller's input: not a 400 that shows a path.
            'a ca_file that cannot be read' => [fn (self $t) => $t->configure(['AMOCRM_CA_FILE' => '/nonexistent/corporate-ca.pem']), 500, 'AmoConfigException'],
        ];
    }

    /** @dataProvider serverFailures */
    #[DataProvider('serverFailures')]
    public function testEvery5xxLeavesItsCauseInTheLog(\Closure $break, int $status, string $cause): void
    {
        $this->seedTokens();
        $break($this);
        $r = $this->api('GET', '/api/leads/1000001');
        $this->assertProblem($r, $status);
        $line = $this->assertLogged("/$status for GET \\/api\\/leads\\/1000001: $cause: \\S/", 'the cause');
        $this->assertStringNotContainsString(substr($line, (int) strpos($line, $cause)), $r->body, 'the cause is for the log, not for the caller');
        $this->assertSecretsAbsent($line, 'the log line');
        $this->seedTokens(); // a readable token file again, for tearDown's checks
    }

    public function testAWebhookFailureIsLoggedWithoutTheSecret(): void
    {
        // The spool cannot be written: a file where its folder should be.
        mkdir($this->dataDir, 0700, true);
        file_put_contents($this->dataDir . '/webhooks', 'not a folder');
        $r = $this->request('POST', '/webhooks/amocrm/' . $this->webhookSecret, ['form' => 'account%5Bid%5D=1']);
        $this->assertProblem($r, 500);
        $line = $this->assertLogged('#500 for POST /webhooks/amocrm/\[secret\]: RuntimeException: cannot create#', 'the cause, path masked');
        $this->assertStringNotContainsString($this->webhookSecret, $line);
    }

    // ---- PATCH checks what POST checks (13) ------------------------------------

    /** @return array<string, array{0: array<string, mixed>, 1: string, 2: bool}> body, field named, POST refuses it too */
    public static function badPatches(): array
    {
        $tags = array_map(static fn ($i) => "tag$i", range(1, 21));
        return [
            '21 tags' => [['tags' => $tags], 'tags', true],
            'a 101-character tag' => [['tags' => [str_repeat('t', 101)]], 'tags', true],
            'a tag with a NUL byte' => [['tags' => ["vip\0"]], 'tags', true],
            'a tag that is not text' => [['tags' => [['name' => 'x']]], 'tags', true],
            'a 256-character name' => [['name' => str_repeat('я', 256)], 'name', true],
            'a name with a NUL byte' => [['name' => "Заявка\0"], 'name', true],
            'a name with a newline' => [['name' => "Заявка\nвторая строка"], 'name', true],
            'a field value of 1001 characters' => [['fields' => ['utm_source' => str_repeat('u', 1001)]], 'fields.utm_source', true],
            'a field not in the map' => [['fields' => ['nope' => 'x']], 'fields.nope', true],
            'a negative price' => [['price' => -1], 'price', true],
            // PATCH only: POST takes these (a default name; contact fields go to the new contact).
            'an empty name' => [['name' => '  '], 'name', false],
            'a contact field' => [['fields' => ['position' => 'Директор']], 'fields.position', false],
            'a key it cannot change' => [['contact' => ['name' => 'x']], 'contact', false],
            'nothing' => [['tags' => []], 'body', false],
        ];
    }

    /** @dataProvider badPatches */
    #[DataProvider('badPatches')]
    public function testPatchRefusesWhatPostRefusesNamingTheField(array $body, string $field, bool $postToo): void
    {
        $this->seedTokens();
        $created = $this->assertJsonAnswer($this->api('POST', '/api/leads', ['json' => self::LEAD]), 201);
        $before = $this->entity('leads', $created['id']);
        $this->assertProblem($this->api('PATCH', '/api/leads/' . $created['id'], ['json' => $body]), 422, $field);
        $this->assertSame($before, $this->entity('leads', $created['id']), 'the lead is unchanged');
        if ($postToo) {
            // One validation for both verbs.
            $this->assertProblem($this->api('POST', '/api/leads', ['json' => $body + self::LEAD]), 422, $field);
            $this->assertCount(1, $this->entities('leads'));
        }
    }

    public function testPatchOfAMissingLeadIs404(): void
    {
        $this->seedTokens();
        $p = $this->assertProblem($this->api('PATCH', '/api/leads/1009999', ['json' => ['status_id' => 142]]), 404);
        $this->assertStringContainsString('1009999', (string) ($p['detail'] ?? ''));
    }

    public function testPatchSetsMappedLeadFields(): void
    {
        $this->seedTokens();
        $created = $this->assertJsonAnswer($this->api('POST', '/api/leads', ['json' => self::LEAD]), 201);
        $this->assertSame(200, $this->api('PATCH', '/api/leads/' . $created['id'], ['json' => ['name' => 'Окна, 3 шт.', 'tags' => ['vip'], 'fields' => ['utm_source' => 'email']]])->status);
        $lead = $this->entity('leads', $created['id']);
        $this->assertSame('Окна, 3 шт.', $lead['name']);
        $this->assertSame(['email'], self::customFields($lead)['UTM_SOURCE'] ?? null);
        $this->assertContains('vip', array_map(static fn ($t) => $t['name'], $lead['_embedded']['tags'] ?? []));
    }

    public function testInvalidUtf8InAFormWithAnIdempotencyKeyIs422(): void
    {
        $this->seedTokens();
        $r = $this->api('POST', '/api/leads', ['form' => 'name=%FF%FE&phone=%2B79001112233', 'headers' => ['Idempotency-Key' => 'order-7100']]);
        $this->assertProblem($r, 422, 'name');
        $this->assertSame([], $this->entities('leads'));
    }

    // ---- OAuth details (14) ------------------------------------------------

    public function testACallbackIsUsableOnce(): void
    {
        $flow = $this->consent('allow');
        $cookie = ['cookies' => false, 'headers' => ['Cookie' => 'amocrm_oauth_state=' . $this->http()->cookie('amocrm_oauth_state')]];
        $this->assertSame(200, $this->admin('GET', $flow['callbackUrl'], $cookie)->status);
        $this->storedPair();
        // The same URL and cookie again, well within the state's 20 minutes.
        $r = $this->admin('GET', $flow['callbackUrl'], $cookie);
        $this->assertSame(400, $r->status, $r->describe());
        $this->assertSame(['authorization_code/ok' => 1], $this->emu()->stats()['token_calls'], 'the replay never reached amoCRM');
    }

    public function testAnAdminUserWithAColonIsAConfigurationError(): void
    {
        $this->configure(['GATEWAY_ADMIN_USER' => 'ad:min']);
        $run = $this->cli(['status']);
        $this->assertSame(78, $run['exit'], $run['out'] . $run['err']);
        $this->assertStringContainsString('GATEWAY_ADMIN_USER', $run['err']);
        $this->assertProblem($this->request('GET', '/health'), 500);
        $this->assertLogged('/configuration: GATEWAY_ADMIN_USER may not contain a colon/', 'the key');
    }

    /** @return array<string, array{0: ?string, 1: bool}> */
    public static function forwardedProtoCases(): array
    {
        return ['a trusted TLS proxy' => ['127.0.0.1', true], 'no trusted proxy' => [null, false], 'another trusted proxy' => ['10.0.0.1', false]];
    }

    /** @dataProvider forwardedProtoCases */
    #[DataProvider('forwardedProtoCases')]
    public function testTheStateCookieIsSecureBehindATrustedTlsProxy(?string $trusted, bool $secure): void
    {
        $this->configure(['GATEWAY_TRUSTED_PROXIES' => $trusted]);
        $r = $this->admin('GET', '/oauth/authorize', ['headers' => ['X-Forwarded-Proto' => 'https']]);
        $this->assertSame(302, $r->status, $r->describe());
        $cookie = implode("\n", $r->headers['set-cookie'] ?? []);
        $this->assertStringStartsWith('amocrm_oauth_state=', $cookie);
        $this->assertSame($secure, (bool) preg_match('/;\s*Secure(;|$)/i', $cookie), $cookie);
    }

    public function testHtmlPagesForbidFramingAndForeignContent(): void
    {
        $pages = [
            'access denied' => $this->admin('GET', $this->consent('deny')['callbackUrl']),
            'state refused' => $this->admin('GET', '/oauth/callback?code=x&state=y&referer=localhost', ['cookies' => false]),
        ];
        foreach ($pages as $page => $r) {
            $this->assertSame('text/html', $r->contentType(), $page);
            $this->assertSame('DENY', $r->header('x-frame-options'), $page);
            $csp = (string) $r->header('content-security-policy');
            foreach (["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"] as $directive) {
                $this->assertStringContainsString($directive, $csp, $page);
            }
            $this->assertDoesNotMatchRegularExpression("/'unsafe-inline'|'unsafe-eval'|\*/", $csp, "$page: strict");
            preg_match('#<style>(.*?)</style>#s', $r->body, $style);
            $this->assertStringContainsString("style-src 'sha256-" . base64_encode(hash('sha256', $style[1] ?? '', true)) . "'", $csp, "$page: its own style, by hash");
        }
    }

    /** @return array<string, array{0: string, 1: string}> path, credential */
    public static function getRoutes(): array
    {
        return [
            '/health' => ['/health', 'none'],
            '/ready' => ['/ready', 'none'],
            '/oauth/status' => ['/oauth/status', 'admin'],
            '/metrics' => ['/metrics', 'admin'],
            '/oauth/authorize' => ['/oauth/authorize', 'admin'],
            '/api/leads/{id}' => ['/api/leads/1000001', 'api'],
            '/api/info/pipelines' => ['/api/info/pipelines', 'api'],
            'no credential' => ['/oauth/status', 'none'],
            'no route' => ['/nope', 'none'],
            'POST only' => ['/api/leads', 'api'],
        ];
    }

    /** @dataProvider getRoutes */
    #[DataProvider('getRoutes')]
    public function testHeadAnswersLikeGetWithoutTheBody(string $path, string $credential): void
    {
        $this->seedTokens();
        $opts = match ($credential) {
            'admin' => ['basic' => [self::ADMIN_USER, self::ADMIN_PASSWORD]],
            'api' => ['bearer' => self::API_KEY],
            default => [],
        };
        $get = $this->request('GET', $path, $opts);
        $head = $this->request('HEAD', $path, $opts);
        $this->assertSame($get->status, $head->status, $head->describe());
        $this->assertSame('', $head->body);
        $names = static fn (HttpResponse $r): array => array_values(array_diff(array_keys($r->headers),
            ['date', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'set-cookie', 'location']));
        $this->assertSame($names($get), $names($head), 'the same headers');
        foreach (['content-type', 'allow', 'www-authenticate', 'retry-after'] as $h) {
            $this->assertSame($get->header($h), $head->header($h), $h);
        }
    }

    /** A HEAD of the callback (a link checker with the admin's credential) spends nothing. */
    public function testHeadOfTheCallbackDoesNotSpendTheCode(): void
    {
        $flow = $this->consent('allow');
        $head = $this->admin('HEAD', $flow['callbackUrl']);
        $this->assertSame(200, $head->status, $head->describe());
        $this->assertSame('', $head->body);
        $this->assertSame([], $this->emu()->stats()['token_calls'], 'no code exchange');
        $get = $this->admin('GET', $flow['callbackUrl']);
        $this->assertSame(200, $get->status, $get->describe());
        $this->assertStringContainsString('Connected', $get->body, 'the state and the code still work');
        $this->storedPair();
    }

    // ---- file modes (16) -----------------------------------------------------------

    public function testEveryFileTheGatewayWritesIsPrivateWhateverTheUmask(): void
    {
        $old = umask(022);
        try {
            $this->server(); // the gateway's processes start with umask 022
        } finally {
            umask($old);
        }
        // Through every route that writes: OAuth (state), leads (idempotency), info (cache),
        // a webhook (spool, jsonl), a wrong credential (throttle).
        $this->assertSame(200, $this->authorizeThroughConsent()->status);
        $this->assertSame(200, $this->admin('GET', '/oauth/status')->status);
        $this->assertSame(200, $this->admin('GET', '/metrics')->status);
        $created = $this->assertJsonAnswer($this->createWithKey('order-7200'), 201);
        $this->assertSame(200, $this->api('GET', '/api/leads/' . $created['id'])->status);
        $this->assertSame(200, $this->api('PATCH', '/api/leads/' . $created['id'], ['json' => ['price' => 1]])->status);
        $this->assertSame(200, $this->api('GET', '/api/info/account')->status);
        $this->postWebhook('leads%5Badd%5D%5B0%5D%5Bid%5D=' . $created['id']);
        $this->onlyDelivery('done');
        $this->assertSame(401, $this->withCredential('api', false)->status);
        $this->assertSame(200, $this->request('GET', '/health')->status);

        $modes = [];
        $walk = function (string $path) use (&$walk, &$modes): void {
            $modes[substr($path, strlen($this->dir) + 1)] = fileperms($path) & 0777;
            if (is_dir($path)) {
                foreach (array_diff(scandir($path) ?: [], ['.', '..']) as $f) {
                    $walk("$path/$f");
                }
            }
        };
        $walk($this->dataDir);
        $walk($this->jsonl);
        $expected = [];
        foreach ($modes as $path => $mode) {
            $expected[$path] = is_dir($this->dir . '/' . $path) ? 0700 : 0600;
        }
        $this->assertSame(array_map('decoct', $expected), array_map('decoct', $modes));
        foreach (['var/idempotency', 'var/throttle', 'var/cache', 'var/oauth-states', 'var/webhooks/done', 'webhooks.jsonl'] as $part) {
            $this->assertArrayHasKey($part, $modes, 'the run went through every part');
        }
        $this->assertNotEmpty(preg_grep('/\.lock$/', array_keys($modes)), 'lock files too');
    }
}
