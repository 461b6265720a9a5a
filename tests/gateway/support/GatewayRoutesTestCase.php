<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * Every route of docs/gateway.md through a real web server against the
 * emulator, asserting what a user of the gateway relies on. Run once per
 * server kind: PhpBuiltinRoutesTest and NginxFpmRoutesTest.
 */
abstract class GatewayRoutesTestCase extends GatewayTestCase
{
    private const BLOCK_PAGE = '<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>';
    private const TOO_MANY_PAGE = '<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1></center><hr><center>nginx</center></body></html>';

    // ---- OAuth ----------------------------------------------------------

    public function testOAuthFlowConnectsTheAccount(): void
    {
        $flow = $this->consent('allow');
        $setCookie = implode("\n", $flow['authorize']->headers['set-cookie'] ?? []);
        $this->assertMatchesRegularExpression('/^amocrm_oauth_state=[^;]+/m', $setCookie);
        $this->assertMatchesRegularExpression('/;\s*HttpOnly/i', $setCookie);
        $this->assertMatchesRegularExpression('/;\s*SameSite=Lax/i', $setCookie);
        $this->assertMatchesRegularExpression('#;\s*Path=/oauth(;|$)#i', $setCookie);
        parse_str((string) parse_url((string) $flow['authorize']->header('location'), PHP_URL_QUERY), $q);
        $this->assertSame(self::CLIENT_ID, $q['client_id'] ?? null);
        $this->assertNotEmpty($q['state'] ?? '');
        $cookie = (string) $this->http()->cookie('amocrm_oauth_state');
        $this->assertNotSame($q['state'], $cookie, 'the cookie is signed, not the bare state');

        $callback = $this->admin('GET', $flow['callbackUrl']);
        $this->assertSame(200, $callback->status, $callback->describe());
        $this->assertSame('text/html', $callback->contentType());
        $this->assertStringContainsString('Connected', $callback->body);
        $this->assertStringContainsString($this->emu()->referer(), $callback->body, 'the page names the account host');
        $this->assertSame(1, $this->emu()->tokenCalls('authorization_code/ok'));

        $pair = $this->storedPair();
        $this->assertIsArray($pair, 'the token file was written');
        $this->assertSame(0600, fileperms($this->tokenPath) & 0777);
        $this->assertSame($this->emu()->referer(), $pair['base_domain']);

        $status = $this->assertJsonAnswer($this->admin('GET', '/oauth/status'), 200);
        $this->assertTrue($status['authorized']);
        $this->assertSame($this->emu()->referer(), $status['base_domain']);
        $this->assertGreaterThan(80000, $status['expires_in']);
        $this->assertArrayHasKey('needs_reauthorization', $status);
        $this->assertFalse($status['needs_reauthorization']);

        $account = $this->assertJsonAnswer($this->api('GET', '/api/info/account'), 200);
        $this->assertSame(31000001, $account['id'] ?? null, 'the API works with the pair from the callback');

        // The callback URL replayed (from the browser history, with the old cookie): refused
        // before amoCRM is asked (the state is single-use), the pair stays.
        $replay = $this->admin('GET', $flow['callbackUrl'], ['cookies' => false, 'headers' => ['Cookie' => 'amocrm_oauth_state=' . $cookie]]);
        $this->assertSame(400, $replay->status, $replay->describe());
        $this->assertStringContainsString('already used', $replay->body);
        $this->assertSame(['authorization_code/ok' => 1], $this->emu()->stats()['token_calls'], 'the replay did not reach amoCRM');
        $this->assertSame($pair, $this->storedPair());
    }

    public function testCallbackRefusesAStateThatDoesNotMatch(): void
    {
        $flow = $this->consent('allow');
        $cookie = (string) $this->http()->cookie('amocrm_oauth_state');
        $this->assertNotSame('', $cookie, 'the authorize answer set the state cookie');
        parse_str((string) parse_url($flow['callbackUrl'], PHP_URL_QUERY), $q);
        $state = $q['state'];
        $other = $flow['callbackUrl'];
        $other = str_replace('state=' . urlencode($state), 'state=' . bin2hex(random_bytes(16)), $other);
        $this->assertNotSame($flow['callbackUrl'], $other);
        $tampered = substr($cookie, 0, -1) . (substr($cookie, -1) === 'a' ? 'b' : 'a');

        $cases = [
            'tampered cookie' => [$flow['callbackUrl'], 'amocrm_oauth_state=' . $tampered],
            'missing cookie' => [$flow['callbackUrl'], null],
            'another state' => [$other, 'amocrm_oauth_state=' . $cookie],
            'the bare state as cookie' => [$flow['callbackUrl'], 'amocrm_oauth_state=' . $state],
        ];
        foreach ($cases as $case => [$url, $cookieHeader]) {
            $r = $this->admin('GET', $url, ['cookies' => false, 'headers' => $cookieHeader === null ? [] : ['Cookie' => $cookieHeader]]);
            $this->assertSame(400, $r->status, "$case: " . $r->describe());
            $this->assertFileDoesNotExist($this->tokenPath, "$case: no token file");
        }
        $this->assertSame([], $this->emu()->stats()['token_calls'], 'no token request reached amoCRM');

        // The code was not spent: the right cookie and state still connect.
        $r = $this->admin('GET', $flow['callbackUrl'], ['cookies' => false, 'headers' => ['Cookie' => 'amocrm_oauth_state=' . $cookie]]);
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertStringContainsString('Connected', $r->body);
    }

    public function testCallbackRefusesAMissingOrRefusedCode(): void
    {
        $flow = $this->consent('allow');
        $cookie = ['cookies' => false, 'headers' => ['Cookie' => 'amocrm_oauth_state=' . $this->http()->cookie('amocrm_oauth_state')]];
        parse_str((string) parse_url($flow['callbackUrl'], PHP_URL_QUERY), $q);

        $noCode = $q;
        unset($noCode['code']);
        $r = $this->admin('GET', $this->callbackUrl() . '?' . http_build_query($noCode), $cookie);
        $this->assertSame(400, $r->status, 'missing code: ' . $r->describe());
        $this->assertSame([], $this->emu()->stats()['token_calls']);

        $refused = ['code' => 'def50200' . bin2hex(random_bytes(40))] + $q;
        $r = $this->admin('GET', $this->callbackUrl() . '?' . http_build_query($refused), $cookie);
        $this->assertSame(400, $r->status, 'a code amoCRM refuses: ' . $r->describe());
        $this->assertSame('text/html', $r->contentType());
        $this->assertStringNotContainsString('Connected', $r->body);
        $this->assertSame(0, $this->emu()->tokenCalls('authorization_code/ok'));
        $this->assertFileDoesNotExist($this->tokenPath);
    }

    public function testCallbackRefusesAHostileReferer(): void
    {
        $trap = $this->extraEmulator('127.0.0.2');
        $flow = $this->consent('allow');
        parse_str((string) parse_url($flow['callbackUrl'], PHP_URL_QUERY), $q);
        $q['referer'] = '127.0.0.2:' . $trap->port;
        $r = $this->admin('GET', $this->callbackUrl() . '?' . http_build_query($q));
        $this->assertSame(400, $r->status, $r->describe());
        $this->assertSame('text/html', $r->contentType());
        $this->assertFileDoesNotExist($this->tokenPath);
        $this->assertSame(1, $trap->stats()['connections'], 'the trap saw no connection but this stats call: the client secret was not sent');
        $this->assertSame([], $this->emu()->stats()['token_calls']);
        $this->assertFalse($this->assertJsonAnswer($this->admin('GET', '/oauth/status'), 200)['authorized'] ?? null);
    }

    public function testAccessDeniedIsShown(): void
    {
        $flow = $this->consent('deny');
        $this->assertStringContainsString('error=access_denied', $flow['callbackUrl']);
        $r = $this->admin('GET', $flow['callbackUrl']);
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertSame('text/html', $r->contentType());
        $this->assertMatchesRegularExpression('/access was denied/i', $r->body);
        $this->assertStringNotContainsString('Connected', $r->body);
        $this->assertFileDoesNotExist($this->tokenPath);
        $this->assertSame([], $this->emu()->stats()['token_calls']);
    }

    public function testAdminCredentialIsRequired(): void
    {
        // Each route from its own client address (through a trusted proxy):
        // 12 wrong credentials from one address would be throttled (429).
        $this->configure(['GATEWAY_TRUSTED_PROXIES' => '127.0.0.1']);
        $routes = ['/oauth/authorize', '/oauth/callback?code=x&state=y&referer=localhost', '/oauth/status', '/metrics'];
        $wrong = [
            'no credential' => [],
            'wrong password' => ['basic' => [self::ADMIN_USER, self::ADMIN_PASSWORD . 'x']],
            'wrong user' => ['basic' => ['root', self::ADMIN_PASSWORD]],
            'empty password' => ['basic' => [self::ADMIN_USER, '']],
            'an API key' => ['bearer' => self::API_KEY],
        ];
        foreach ($routes as $i => $route) {
            foreach ($wrong as $case => $opts) {
                $r = $this->request('GET', $route, $opts + ['headers' => ['X-Forwarded-For' => '192.0.2.' . ($i + 1)]]);
                $this->assertSame(401, $r->status, "$route, $case: " . $r->describe());
                $this->assertMatchesRegularExpression('/^Basic realm="amoCRM gateway"/', (string) $r->header('www-authenticate'), "$route, $case");
                $this->assertNull($r->header('set-cookie'), "$route, $case: no state cookie without the credential");
            }
        }
        $this->assertSame(200, $this->admin('GET', '/oauth/status')->status);
        $this->assertSame(1, $this->emu()->stats()['requests'], 'nothing reached amoCRM (1: this stats call)');
    }

    // ---- leads ----------------------------------------------------------

    /** @return array<string, mixed> a lead as a website sends it */
    private function leadInput(string $phone = '+7 (900) 123-45-67'): array
    {
        return [
            'name' => 'Заявка: кухня на заказ',
            'price' => 125000,
            'tags' => ['site', 'kitchen'],
            'contact' => ['name' => 'Иван Петров', 'phone' => $phone, 'email' => 'ivan.petrov@example.com'],
            'company' => 'ООО Ромашка',
            'comment' => "Перезвонить после 18:00\nудобно в WhatsApp",
            'utm_source' => 'yandex',
            'utm_medium' => 'cpc',
            'utm_campaign' => 'kitchens-autumn',
            'fields' => ['position' => 'Директор'],
        ];
    }

    /** Checks the emulator holds lead + contact + company + note as the input said. */
    private function assertLeadStored(array $created, string $name, string $contactName, string $phoneDigits, string $email, ?string $company, ?string $comment, array $utm): void
    {
        $lead = $this->entity('leads', $created['id']);
        $this->assertNotNull($lead, 'the lead exists in amoCRM');
        $this->assertSame($name, $lead['name']);
        $this->assertSame(1001, $lead['pipeline_id'], 'GATEWAY_DEFAULT_PIPELINE_ID');
        $this->assertSame(10001, $lead['status_id'], 'GATEWAY_DEFAULT_STATUS_ID');
        $this->assertSame(1001, $lead['responsible_user_id'], 'GATEWAY_DEFAULT_RESPONSIBLE_USER_ID');
        $fields = self::customFields($lead);
        foreach ($utm as $code => $value) {
            $this->assertSame([$value], $fields[$code] ?? null, "$code is mapped into the lead's custom field");
        }

        $contact = $this->entity('contacts', $created['contact_id']);
        $this->assertNotNull($contact, 'the contact exists');
        $this->assertStringContainsString($contactName, $contact['name'] . ' ' . ($contact['first_name'] ?? '') . ' ' . ($contact['last_name'] ?? ''));
        $cf = self::customFields($contact);
        $this->assertSame($phoneDigits, preg_replace('/\D/', '', (string) ($cf['PHONE'][0] ?? '')), 'the phone is on the contact');
        $this->assertSame([$email], $cf['EMAIL'] ?? null, 'the email is on the contact');

        $links = $this->emu()->control('GET', 'links');
        $linked = static function (string $to, ?int $id) use ($links, $created): bool {
            foreach ($links as $l) {
                $pair = [$l['entity_type'], $l['entity_id'], $l['to_entity_type'], $l['to_entity_id']];
                if ($pair === ['leads', $created['id'], $to, $id] || $pair === [$to, $id, 'leads', $created['id']]) {
                    return true;
                }
            }
            return false;
        };
        $this->assertTrue($linked('contacts', $created['contact_id']), 'the contact is linked to the lead');
        if ($company !== null) {
            $c = $this->entity('companies', $created['company_id']);
            $this->assertNotNull($c, 'the company exists');
            $this->assertSame($company, $c['name']);
            $this->assertTrue($linked('companies', $created['company_id']), 'the company is linked to the lead');
        } else {
            $this->assertNull($created['company_id']);
        }
        $notes = array_values(array_filter($this->entities('notes'), static fn ($n) => ($n['entity_id'] ?? null) === $created['id']));
        if ($comment !== null) {
            $this->assertCount(1, $notes, 'one note on the lead');
            $this->assertSame('common', $notes[0]['note_type']);
            $this->assertSame($comment, $notes[0]['params']['text']);
            $this->assertSame($notes[0]['id'], $created['note_id']);
        } else {
            $this->assertSame([], $notes);
            $this->assertNull($created['note_id']);
        }
    }

    private function assertCreated(HttpResponse $r): array
    {
        $j = $this->assertJsonAnswer($r, 201);
        foreach (['id', 'contact_id', 'company_id', 'merged', 'note_id'] as $k) {
            $this->assertArrayHasKey($k, $j, $r->describe());
        }
        $this->assertIsInt($j['id']);
        $this->assertIsBool($j['merged']);
        return $j;
    }

    public function testCreateLeadFromJson(): void
    {
        $this->seedTokens();
        $in = $this->leadInput();
        $created = $this->assertCreated($this->api('POST', '/api/leads', ['json' => $in]));
        $this->assertSame(['POST' => 2], $this->emu()->stats()['api_requests_by_method'], 'one leads/complex call and one note');
        $this->assertFalse($created['merged']);
        $this->assertIsInt($created['contact_id']);
        $this->assertIsInt($created['company_id']);
        $this->assertIsInt($created['note_id']);
        $this->assertLeadStored($created, $in['name'], 'Иван Петров', '79001234567', 'ivan.petrov@example.com', 'ООО Ромашка', $in['comment'],
            ['UTM_SOURCE' => 'yandex', 'UTM_MEDIUM' => 'cpc', 'UTM_CAMPAIGN' => 'kitchens-autumn']);
        $lead = $this->entity('leads', $created['id']);
        $this->assertSame(125000, $lead['price']);
        $tags = array_map(static fn ($t) => $t['name'], $lead['_embedded']['tags'] ?? []);
        sort($tags);
        $this->assertSame(['kitchen', 'site'], $tags);
        $contact = $this->entity('contacts', $created['contact_id']);
        $this->assertSame(['Директор'], self::customFields($contact)['POSITION'] ?? null, 'fields.position → the contact field of the map');
        $this->assertCount(1, $this->entities('leads'));

        // first_name/last_name, a company as an object, tags as a string, no UTM.
        $created = $this->assertCreated($this->api('POST', '/api/leads', ['json' => [
            'contact' => ['first_name' => 'Ольга', 'last_name' => 'Иванова', 'email' => 'olga@example.com'],
            'company' => ['name' => 'АО Вектор'], 'tags' => 'a, b', 'pipeline_id' => 1001, 'status_id' => 10002, 'responsible_user_id' => 1002,
        ]]));
        $contact = $this->entity('contacts', $created['contact_id']);
        $this->assertSame('Ольга', $contact['first_name'] ?? null);
        $this->assertSame('Иванова', $contact['last_name'] ?? null);
        $this->assertSame('АО Вектор', $this->entity('companies', $created['company_id'])['name'] ?? null);
        $lead = $this->entity('leads', $created['id']);
        $this->assertSame([10002, 1002], [$lead['status_id'], $lead['responsible_user_id']], 'the input wins over the .env defaults');
        $this->assertSame([], self::customFields($lead));
        $this->assertNull($created['note_id']);
    }

    public function testCreateLeadFromAFormPost(): void
    {
        $this->seedTokens();
        // A plain HTML form with flat names, as website builders post it.
        $form = [
            'name' => 'Заявка с лендинга',
            'contact_name' => 'Мария',
            'phone' => '8 (912) 000-11-22',
            'email' => 'maria@example.org',
            'company' => 'ИП Смирнова',
            'comment' => 'Хочу замер',
            'utm_source' => 'vk',
            'utm_campaign' => 'promo',
            'tags' => 'form, landing',
        ];
        $created = $this->assertCreated($this->api('POST', '/api/leads', ['form' => $form]));
        $this->assertFalse($created['merged']);
        $this->assertLeadStored($created, 'Заявка с лендинга', 'Мария', '89120001122', 'maria@example.org', 'ИП Смирнова', 'Хочу замер',
            ['UTM_SOURCE' => 'vk', 'UTM_CAMPAIGN' => 'promo']);
        $tags = array_map(static fn ($t) => $t['name'], $this->entity('leads', $created['id'])['_embedded']['tags'] ?? []);
        sort($tags);
        $this->assertSame(['form', 'landing'], $tags, 'a comma-separated tags string');

        // Bracketed names too, and a lead without comment and company.
        $created = $this->assertCreated($this->api('POST', '/api/leads', ['form' =>
            'contact%5Bname%5D=%D0%9F%D1%91%D1%82%D1%80&contact%5Bphone%5D=%2B79995554433&contact%5Bemail%5D=petr%40example.net']));
        $this->assertLeadStored($created, 'Заявка с сайта', 'Пётр', '79995554433', 'petr@example.net', null, null, []);
    }

    public function testTheSamePhoneTwiceIsMerged(): void
    {
        $this->seedTokens();
        $first = $this->assertCreated($this->api('POST', '/api/leads', ['json' => ['contact' => ['name' => 'Анна', 'phone' => '+7 916 555-44-33']]]));
        $this->assertFalse($first['merged']);
        $second = $this->assertCreated($this->api('POST', '/api/leads', ['form' => ['contact_name' => 'Анна К.', 'phone' => '8 916 555 44 33']]));
        $this->assertTrue($second['merged'], 'amoCRM found the contact by phone');
        $this->assertSame($first['contact_id'], $second['contact_id']);
        $this->assertNotSame($first['id'], $second['id']);
        $this->assertCount(1, $this->entities('contacts'));
        $this->assertCount(2, $this->entities('leads'));
    }

    public function testBadInputIsRefusedNamingTheField(): void
    {
        $this->seedTokens();
        $phone = ['phone' => '+79001112233'];
        $cases = [
            [['contact' => ['name' => 'Иван', 'email' => 'not-an-email']], 'contact.email'],
            [['contact' => ['name' => 'Иван', 'phone' => '12']], 'contact.phone'],
            [['contact' => ['name' => 'Иван', 'phone' => '+7 900 123 45 67 89 01 23 45 67 89']], 'contact.phone'], // 22 digits
            [['contact' => ['name' => 'Иван', 'phone' => 'call me maybe']], 'contact.phone'],
            [[], 'contact*'],
            [['contact' => []], 'contact*'],
            [['contact' => ['name' => '', 'phone' => '', 'email' => '']], 'contact*'],
            [['price' => -1, 'contact' => $phone], 'price'],
            [['price' => 'many', 'contact' => $phone], 'price'],
            [['status_id' => 0, 'contact' => $phone], 'status_id'],
            [['name' => str_repeat('я', 256), 'contact' => $phone], 'name'],
            [['fields' => ['no_such_field' => 'x'], 'contact' => $phone], 'fields*'],
            [['comment' => str_repeat('x', 10001), 'contact' => $phone], 'comment'],
        ];
        foreach ($cases as [$body, $field]) {
            $r = $this->api('POST', '/api/leads', ['json' => $body]);
            $p = $this->assertProblem($r, 422, $field);
            $this->assertNotEmpty($p['detail'] ?? '', $r->describe());
        }
        $p = $this->assertProblem($this->api('POST', '/api/leads', ['form' => ['contact_name' => 'Иван', 'email' => 'ivan@']]), 422, 'contact.email');
        $this->assertNotEmpty($p['detail'] ?? '');
        // A website form submitted with every field left empty is not a lead.
        $this->assertProblem($this->api('POST', '/api/leads', ['form' => ['name' => '', 'contact_name' => '', 'phone' => '', 'email' => '', 'comment' => '']]), 422, 'contact*');
        $this->assertProblem($this->api('POST', '/api/leads', ['form' => '']), 422, 'contact*');

        $this->assertProblem($this->api('POST', '/api/leads', ['body' => '{"name": "Заявка", ', 'headers' => ['Content-Type' => 'application/json']]), 400);
        $this->assertProblem($this->api('POST', '/api/leads', ['body' => '[1, 2]', 'headers' => ['Content-Type' => 'application/json']]), 400);
        $big = ['contact' => $phone, 'comment' => str_repeat('ж', 40000)]; // 80 kB of UTF-8
        $r = $this->api('POST', '/api/leads', ['json' => $big]);
        $this->assertSame(413, $r->status, $r->describe());
        $this->assertSame('application/problem+json', $r->contentType(), $r->describe());
        $this->assertProblem($this->api('POST', '/api/leads', ['body' => 'name=x', 'headers' => ['Content-Type' => 'text/plain']]), 415);
        $this->assertProblem($this->api('POST', '/api/leads', ['body' => '<lead/>', 'headers' => ['Content-Type' => 'application/xml']]), 415);

        foreach (['no key' => [], 'wrong key' => ['bearer' => 'site-key-0000000000000000'], 'admin credential' => ['basic' => [self::ADMIN_USER, self::ADMIN_PASSWORD]]] as $case => $opts) {
            $r = $this->request('POST', '/api/leads', $opts + ['json' => $this->leadInput()]);
            $this->assertProblem($r, 401);
            $this->assertMatchesRegularExpression('/^Bearer/', (string) $r->header('www-authenticate'), $case);
        }
        $this->assertSame(201, $this->request('POST', '/api/leads', ['bearer' => self::OTHER_API_KEY, 'json' => ['contact' => $phone]])->status, 'the second key of GATEWAY_API_KEYS works');
        $this->assertCount(1, $this->entities('leads'), 'only the valid request created a lead');
    }

    public function testTheBodyLimitIsConfigurable(): void
    {
        $this->configure(['GATEWAY_MAX_BODY' => '2048']);
        $this->seedTokens();
        $r = $this->api('POST', '/api/leads', ['json' => ['contact' => ['phone' => '+79001112233'], 'comment' => str_repeat('x', 3000)]]);
        $this->assertProblem($r, 413);
        $r = $this->api('POST', '/api/leads', ['form' => ['phone' => '+79001112233', 'comment' => str_repeat('x', 3000)]]);
        $this->assertProblem($r, 413);
        $this->assertSame([], $this->emu()->stats()['api_calls']);
        $this->assertSame(201, $this->api('POST', '/api/leads', ['json' => ['contact' => ['phone' => '+79001112233'], 'comment' => str_repeat('x', 1500)]])->status);
    }

    public function testIdempotencyKeyReplaysTheFirstAnswer(): void
    {
        $this->seedTokens();
        $key = 'form-' . bin2hex(random_bytes(8));
        $in = $this->leadInput();
        $first = $this->api('POST', '/api/leads', ['json' => $in, 'headers' => ['Idempotency-Key' => $key]]);
        $created = $this->assertCreated($first);
        $this->assertNull($first->header('idempotent-replayed'));
        $calls = $this->apiCallCount();

        $again = $this->api('POST', '/api/leads', ['json' => $in, 'headers' => ['Idempotency-Key' => $key]]);
        $this->assertSame(201, $again->status, $again->describe());
        $this->assertSame('true', $again->header('idempotent-replayed'));
        $this->assertSame($created, $again->json(), 'the same answer');
        $this->assertSame($calls, $this->apiCallCount(), 'a replay makes no amoCRM call');

        $other = $this->leadInput();
        $other['price'] = 1;
        $this->assertProblem($this->api('POST', '/api/leads', ['json' => $other, 'headers' => ['Idempotency-Key' => $key]]), 422);

        // Another key is another lead.
        $this->assertCreated($this->api('POST', '/api/leads', ['json' => $in, 'headers' => ['Idempotency-Key' => $key . '-2']]));
        $this->assertCount(2, $this->entities('leads'));
        $this->assertCount(2, array_filter($this->entities('notes'), static fn ($n) => $n['note_type'] === 'common'));
    }

    public function testConcurrentDuplicatesCreateOneLead(): void
    {
        $this->seedTokens();
        // amoCRM takes a while with the first one: the duplicate arrives meanwhile.
        $this->emu()->fault(['path' => '/api/v4/leads/complex', 'action' => 'delay', 'delay_ms' => 800, 'times' => 1]);
        $opts = ['json' => $this->leadInput(), 'headers' => ['Idempotency-Key' => 'double-click-1'], 'bearer' => self::API_KEY];
        $answers = $this->http()->concurrently([['POST', '/api/leads', $opts], ['POST', '/api/leads', $opts], ['POST', '/api/leads', $opts]]);
        $this->assertCount(1, $this->entities('leads'), 'one lead for one key');
        $bodies = [];
        foreach ($answers as $r) {
            $this->assertContains($r->status, [201, 409], 'a duplicate is replayed (201) or told to retry (409): ' . $r->describe());
            if ($r->status === 201) {
                $bodies[] = $r->json();
            }
        }
        $this->assertNotEmpty($bodies);
        $this->assertCount(1, array_unique(array_map('json_encode', $bodies)), 'every 201 carries the same lead');
        $this->assertSame(2, $this->emu()->stats()['api_requests_by_method']['POST'] ?? 0, 'one leads/complex and one note');
    }

    public function testGetAndPatchALead(): void
    {
        $this->seedTokens();
        $created = $this->assertCreated($this->api('POST', '/api/leads', ['json' => $this->leadInput()]));
        $lead = $this->assertJsonAnswer($this->api('GET', '/api/leads/' . $created['id']), 200);
        $this->assertSame($created['id'], $lead['id']);
        $this->assertSame('Заявка: кухня на заказ', $lead['name']);
        $contacts = array_map(static fn ($c) => $c['id'], $lead['_embedded']['contacts'] ?? []);
        $this->assertSame([$created['contact_id']], $contacts, 'the lead comes with its contacts');

        $p = $this->assertProblem($this->api('GET', '/api/leads/999999999'), 404);
        $this->assertStringContainsString('999999999', (string) ($p['detail'] ?? ''));
        $this->assertProblem($this->api('GET', '/api/leads/0'), 400); // AmoConfigException from a bad id

        $patched = $this->assertJsonAnswer($this->api('PATCH', '/api/leads/' . $created['id'], ['json' => ['status_id' => 142, 'price' => 130000]]), 200);
        $this->assertSame($created['id'], $patched['id']);
        $lead = $this->assertJsonAnswer($this->api('GET', '/api/leads/' . $created['id']), 200);
        $this->assertSame(142, $lead['status_id'], 'the lead is won');
        $this->assertSame(130000, $lead['price']);
        $this->assertNotNull($lead['closed_at']);

        $this->assertSame(200, $this->api('PATCH', '/api/leads/' . $created['id'], ['json' => ['tags' => ['vip'], 'fields' => ['utm_source' => 'email']]])->status);
        $lead = $this->entity('leads', $created['id']);
        $this->assertSame(['email'], self::customFields($lead)['UTM_SOURCE'] ?? null, 'fields go through the field map');
        $this->assertSame(['cpc'], self::customFields($lead)['UTM_MEDIUM'] ?? null, 'other fields stay');
        $this->assertContains('vip', array_map(static fn ($t) => $t['name'], $lead['_embedded']['tags'] ?? []));
        $this->assertContains('site', array_map(static fn ($t) => $t['name'], $lead['_embedded']['tags'] ?? []), 'tags are added');

        $this->assertProblem($this->api('PATCH', '/api/leads/' . $created['id'], ['json' => ['price' => -5]]), 422, 'price');
        $this->assertProblem($this->api('PATCH', '/api/leads/' . $created['id'], ['json' => ['fields' => ['nope' => 1]]]), 422, 'fields*');
        $this->assertProblem($this->api('PATCH', '/api/leads/' . $created['id'], ['body' => 'status_id=142', 'headers' => ['Content-Type' => 'text/plain']]), 415);
        $this->assertProblem($this->api('PATCH', '/api/leads/' . $created['id'], ['form' => ['status_id' => '142']]), 415); // PATCH takes JSON
        $this->assertProblem($this->api('PATCH', '/api/leads/999999999', ['json' => ['status_id' => 142]]), 404);
        $this->assertSame(401, $this->request('GET', '/api/leads/' . $created['id'])->status);
    }

    // ---- amoCRM failures --------------------------------------------------

    public function testA429StormBecomes503WithRetryAfter(): void
    {
        $this->seedTokens();
        $this->emu()->fault(['path' => '/api/v4/', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html', 'body' => self::TOO_MANY_PAGE]);
        foreach ([['GET', '/api/leads/1000001', []], ['POST', '/api/leads', ['json' => $this->leadInput()]], ['GET', '/api/info/pipelines', []]] as [$m, $path, $opts]) {
            $r = $this->api($m, $path, $opts);
            $this->assertProblem($r, 503);
            $this->assertSame('2', $r->header('retry-after'), "$m $path");
        }
        $this->assertGreaterThanOrEqual(3, $this->emu()->stats()['faults']['respond'] ?? 0);
        $this->assertSame([], $this->entities('leads'));
    }

    public function testAnAccountBlockBecomes503(): void
    {
        $this->seedTokens();
        $this->emu()->fault(['path' => '/api/v4/', 'action' => 'respond', 'status' => 403, 'content_type' => 'text/html', 'body' => self::BLOCK_PAGE]);
        $r = $this->api('GET', '/api/leads/1000001');
        $this->assertProblem($r, 503);
        $this->assertSame('600', $r->header('retry-after'));
        $this->assertSame(1, $this->emu()->stats()['faults']['respond'] ?? 0, 'a block is not retried');
        $r = $this->api('POST', '/api/leads', ['json' => $this->leadInput()]);
        $this->assertProblem($r, 503);
        $this->assertStringNotContainsString('<html', $r->body, 'amoCRM\'s HTML is not passed through');
    }

    public function testA502FromAmoCrmBecomes502WithATitleAndNoSecret(): void
    {
        $pair = $this->seedTokens(-60); // expired: the first call refreshes
        $this->emu()->fault(['path' => '/api/v4/leads', 'action' => 'respond', 'status' => 502, 'content_type' => 'text/html',
            'body' => '<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>']);
        foreach ([['GET', '/api/leads/1000001', []], ['POST', '/api/leads', ['json' => $this->leadInput()]], ['PATCH', '/api/leads/1000001', ['json' => ['price' => 1]]]] as [$m, $path, $opts]) {
            $r = $this->api($m, $path, $opts);
            $p = $this->assertProblem($r, 502);
            $this->assertIsString($p['title']);
            $this->assertNotSame('', trim($p['title']), $r->describe());
        }
        $this->assertNotSame($pair['access_token'], $this->storedPair()['access_token'], 'the expired pair was refreshed');
        $this->assertGreaterThanOrEqual(1, $this->emu()->tokenCalls('refresh_token/ok'));
        // Every answer of this test, refresh included: no token, no client secret.
        $this->assertNoSecretInAnswers();
        $this->emu()->control('DELETE', 'faults');
        $this->assertSame(404, $this->api('GET', '/api/leads/1000001')->status, 'amoCRM is back: a missing lead is a 404 again');
    }

    public function testAmoCrmValidationErrorsAre422WithErrors(): void
    {
        $this->seedTokens();
        $r = $this->api('POST', '/api/leads', ['json' => ['pipeline_id' => 1001, 'status_id' => 987654, 'contact' => ['phone' => '+79001112233']]]);
        $p = $this->assertProblem($r, 422);
        $this->assertIsArray($p['errors'] ?? null, $r->describe());
        $this->assertNotEmpty($p['errors']);
        $this->assertStringContainsString('status_id', json_encode($p['errors']), 'amoCRM\'s validation errors are passed on');
        $this->assertSame([], $this->entities('leads'));
    }

    public function testAmoCrmUnreachableIs502(): void
    {
        $this->seedTokens();
        $this->emu()->fault(['path' => '/api/v4/', 'action' => 'drop']);
        $r = $this->api('GET', '/api/leads/1000001');
        $p = $this->assertProblem($r, 502);
        $this->assertNotSame('', trim((string) $p['title']));
        $before = $this->emu()->stats()['faults']['drop'] ?? 0;
        $r = $this->api('POST', '/api/leads', ['json' => $this->leadInput()]);
        $this->assertProblem($r, 502);
        $this->assertSame($before + 1, $this->emu()->stats()['faults']['drop'] ?? 0, 'a POST that may have reached amoCRM is not sent twice');
        $this->assertSame([], $this->entities('leads'));
    }

    public function testAnExpiredTokenIsRefreshedOnceForConcurrentRequests(): void
    {
        $pair = $this->seedTokens(-60);
        $this->server();
        $req = ['GET', '/api/leads/1000001', ['bearer' => self::API_KEY]];
        foreach ($this->http()->concurrently(array_fill(0, 8, $req)) as $r) {
            $this->assertProblem($r, 404); // amoCRM answered (204): no lead
        }
        $this->assertSame(['refresh_token/ok' => 1], $this->emu()->stats()['token_calls'], 'one refresh for all workers');
        $this->assertNotSame($pair['refresh_token'], $this->storedPair()['refresh_token']);
        $this->assertSame(8, $this->apiCallCount(), 'one amoCRM call per request: none was answered 401 and repeated');
    }

    public function testNotAuthorizedIsA503SayingWhereToAuthorize(): void
    {
        $r = $this->api('GET', '/api/info/account');
        $p = $this->assertProblem($r, 503);
        $this->assertSame('60', $r->header('retry-after'));
        $this->assertStringContainsString('/oauth/authorize', (string) ($p['detail'] ?? ''));
        $this->assertSame(1, $this->emu()->stats()['requests'], 'no amoCRM call without a token (1: this stats call)');
    }

    // ---- reference data ---------------------------------------------------

    public function testInfoRoutesAnswerAmoCrmDataAndCacheIt(): void
    {
        $this->seedTokens();
        $checks = [
            '/api/info/account' => fn (array $j) => $this->assertSame(31000001, $j['id'] ?? null),
            '/api/info/pipelines' => fn (array $j) => $this->assertTrue(self::hasPair($j, 'id', 1001) && self::hasPair($j, 'name', 'Воронка'), 'the main pipeline'),
            '/api/info/users' => fn (array $j) => $this->assertTrue(self::hasPair($j, 'id', 1001) && self::hasPair($j, 'id', 1002), 'both users'),
            '/api/info/custom-fields/leads' => fn (array $j) => $this->assertTrue(self::hasPair($j, 'code', 'UTM_SOURCE'), 'UTM_SOURCE'),
            '/api/info/custom-fields/contacts' => fn (array $j) => $this->assertTrue(self::hasPair($j, 'code', 'PHONE') && self::hasPair($j, 'code', 'EMAIL'), 'PHONE, EMAIL'),
            '/api/info/custom-fields/companies' => fn (array $j) => $this->assertTrue(self::hasPair($j, 'code', 'WEB'), 'WEB'),
        ];
        foreach ($checks as $path => $check) {
            $before = $this->apiCallCount();
            $r = $this->api('GET', $path);
            $check($this->assertJsonAnswer($r, 200));
            $this->assertSame('MISS', $r->header('x-cache'), $path);
            $this->assertGreaterThan($before, $this->apiCallCount(), "$path asked amoCRM");

            $calls = $this->apiCallCount();
            $again = $this->api('GET', $path);
            $this->assertSame(200, $again->status);
            $this->assertSame('HIT', $again->header('x-cache'), $path);
            $this->assertSame($r->json(), $again->json(), "$path: the cached answer is the same");
            $this->assertSame($calls, $this->apiCallCount(), "$path: a HIT makes no amoCRM call");
        }
        $r = $this->api('GET', '/api/info/custom-fields/tasks');
        $this->assertContains($r->status, [400, 404], $r->describe());
        $this->assertSame(401, $this->request('GET', '/api/info/account')->status);
    }

    public function testConcurrentCacheMissesAskAmoCrmOnce(): void
    {
        $this->seedTokens();
        $this->server();
        $this->emu()->fault(['path' => '/api/v4/account', 'action' => 'delay', 'delay_ms' => 500, 'times' => 1]);
        $req = ['GET', '/api/info/account', ['bearer' => self::API_KEY]];
        $answers = $this->http()->concurrently([$req, $req, $req, $req]);
        $caches = [];
        foreach ($answers as $r) {
            $this->assertSame(31000001, $this->assertJsonAnswer($r, 200)['id'] ?? null);
            $caches[] = $r->header('x-cache');
        }
        sort($caches);
        $this->assertSame(['HIT', 'HIT', 'HIT', 'MISS'], $caches, 'one worker fetched, the others waited for its answer');
        $this->assertSame(1, $this->apiCallCount(), 'amoCRM was asked once');
    }

    public function testInfoCacheTtlZeroAsksAmoCrmEveryTime(): void
    {
        $this->configure(['GATEWAY_INFO_CACHE_TTL' => '0']);
        $this->seedTokens();
        $calls = $this->apiCallCount();
        for ($i = 0; $i < 3; $i++) {
            $r = $this->api('GET', '/api/info/account');
            $this->assertSame(200, $r->status);
            $this->assertNotSame('HIT', $r->header('x-cache'));
        }
        $this->assertSame($calls + 3, $this->apiCallCount());
    }

    /** Whether $key => $value occurs anywhere in a nested array. */
    private static function hasPair(array $data, string $key, mixed $value): bool
    {
        foreach ($data as $k => $v) {
            if ($k === $key && $v === $value) {
                return true;
            }
            if (is_array($v) && self::hasPair($v, $key, $value)) {
                return true;
            }
        }
        return false;
    }

    // ---- webhooks -----------------------------------------------------------

    private function webhookBody(int $leadId = 1000123): string
    {
        return http_build_query([
            'leads' => ['status' => [['id' => (string) $leadId, 'status_id' => '142', 'pipeline_id' => '1001', 'old_status_id' => '10001']]],
            'account' => ['subdomain' => 'emulator', 'id' => '31000001', '_links' => ['self' => 'https://emulator.amocrm.ru']],
        ]);
    }

    /** @return array<string, mixed> the one delivery in $state, once it is there */
    private function delivery(string $state): array
    {
        $file = $this->eventually(fn () => $this->spool($state)[0] ?? null, "a delivery in webhooks/$state/");
        $d = json_decode((string) file_get_contents($file), true);
        $this->assertIsArray($d, $file);
        return $d;
    }

    public function testAWebhookIsStoredAndHandled(): void
    {
        $body = $this->webhookBody();
        $r = $this->request('POST', '/webhooks/amocrm/' . $this->webhookSecret, ['form' => $body]);
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertSame('ok', trim($r->body));
        $this->assertLessThan(2.0, $r->seconds, 'amoCRM waits 2 s for the answer');

        $d = $this->delivery('done');
        $this->assertSame([], $this->spool('pending'));
        $this->assertSame([], $this->spool('failed'));
        foreach (['id', 'received_at', 'remote_addr', 'body', 'parsed'] as $k) {
            $this->assertArrayHasKey($k, $d);
        }
        $this->assertSame($body, $d['body'], 'the raw body is kept');
        $this->assertSame('127.0.0.1', $d['remote_addr']);
        $this->assertEqualsWithDelta(time(), $d['received_at'], 30);
        $this->assertSame('1000123', $d['parsed']['leads']['status'][0]['id']);
        $this->assertSame('142', $d['parsed']['leads']['status'][0]['status_id']);
        $this->assertSame('emulator', $d['parsed']['account']['subdomain']);
        $this->assertSame('31000001', $d['parsed']['account']['id']);

        $lines = $this->eventually(fn () => is_file($this->jsonl) ? array_values(array_filter(explode("\n", (string) file_get_contents($this->jsonl)))) : null, 'the jsonl handler\'s file');
        $this->assertCount(1, $lines);
        $line = json_decode($lines[0], true);
        $this->assertIsArray($line);
        $this->assertStringContainsString('"1000123"', $lines[0]);
        $this->assertSame($d['id'], $line['id'] ?? null, 'the handler got this delivery');
        $this->assertSame(1, $this->emu()->stats()['requests'], 'a webhook makes no amoCRM call (1: this stats call)');
    }

    public function testAWebhookWithTheWrongSecretIsNotFound(): void
    {
        foreach (['wrong' . $this->webhookSecret, substr($this->webhookSecret, 0, -1), ''] as $secret) {
            $r = $this->request('POST', '/webhooks/amocrm/' . $secret, ['form' => $this->webhookBody()]);
            $this->assertSame(404, $r->status, $r->describe());
            $this->assertStringNotContainsString($this->webhookSecret, $r->body);
        }
        $this->assertSame([], array_merge($this->spool('pending'), $this->spool('done'), $this->spool('failed')));
        $this->assertFileDoesNotExist($this->jsonl);
    }

    public function testAFailingHandlerKeepsTheDeliveryForReplay(): void
    {
        $unwritable = $this->dir . '/a-directory';
        mkdir($unwritable);
        $this->configure(['GATEWAY_WEBHOOK_HANDLERS' => 'jsonl:' . $unwritable]);
        $body = $this->webhookBody(1000777);
        $r = $this->request('POST', '/webhooks/amocrm/' . $this->webhookSecret, ['form' => $body]);
        $this->assertSame(200, $r->status, 'amoCRM still gets its 200: ' . $r->describe());

        $d = $this->delivery('failed');
        $this->assertSame('1000777', $d['parsed']['leads']['status'][0]['id']);
        $this->assertNotEmpty($d['errors'] ?? null, 'the error is recorded with the delivery');
        $this->assertSame([], $this->spool('done'));

        $failed = $this->assertMetricsText();
        $this->assertMatchesRegularExpression('/^gateway_webhooks_failed 1$/m', $failed);

        $run = $this->cli(['webhooks:replay']);
        $this->assertSame(1, $run['exit'], 'the handler still fails: ' . $run['out'] . $run['err']);
        $this->assertCount(1, $this->spool('failed'));

        // Fix the .env, then replay from the CLI.
        $this->configure(['GATEWAY_WEBHOOK_HANDLERS' => 'jsonl:' . $this->jsonl]);
        $run = $this->cli(['webhooks:replay']);
        $this->assertSame(0, $run['exit'], $run['out'] . $run['err']);
        $this->assertSame([], $this->spool('failed'));
        $this->assertCount(1, $this->spool('done'));
        $this->assertStringContainsString('"1000777"', (string) file_get_contents($this->jsonl));
        $run = $this->cli(['webhooks:replay']);
        $this->assertSame(0, $run['exit'], 'nothing left to replay');
        $this->assertSame(1, substr_count((string) file_get_contents($this->jsonl), "\n"), 'delivered once');
    }

    // ---- status -------------------------------------------------------------

    public function testHealthMakesNoAmoCrmCall(): void
    {
        $r = $this->request('GET', '/health');
        $this->assertSame(['status' => 'ok'], $this->assertJsonAnswer($r, 200));
        $this->seedTokens(-60); // even an expired pair is not refreshed by /health
        $this->assertSame(200, $this->request('GET', '/health')->status);
        $stats = $this->emu()->stats();
        $this->assertSame([], $stats['api_calls']);
        $this->assertSame([], $stats['token_calls']);
    }

    public function testReadyFollowsTheAuthorization(): void
    {
        $r = $this->request('GET', '/ready');
        $j = $this->assertJsonAnswer($r, 503);
        $this->assertSame('not_ready', $j['status']);
        $this->assertNotEmpty($j['reason']);

        $this->seedTokens();
        $j = $this->assertJsonAnswer($this->request('GET', '/ready'), 200);
        $this->assertSame('ready', $j['status']);
        $this->assertGreaterThan(80000, $j['expires_in']);

        // Expiring: /ready refreshes it now (it can), and stays ready.
        $this->seedTokens(30);
        $j = $this->assertJsonAnswer($this->request('GET', '/ready'), 200);
        $this->assertGreaterThan(80000, $j['expires_in']);
        $this->assertSame(1, $this->emu()->tokenCalls('refresh_token/ok'));

        // A pair that can no longer be refreshed: not ready.
        $pair = $this->seedTokens(-60, 91 * 86400);
        $this->emu()->control('POST', 'clock', ['advance' => 91 * 86400]);
        $j = $this->assertJsonAnswer($this->request('GET', '/ready'), 503);
        $this->assertSame('not_ready', $j['status']);
        $this->assertSame($pair['refresh_token'], $this->storedPair()['refresh_token'], 'the file is kept');
    }

    /** GET /metrics as the admin; checks the text format. */
    private function assertMetricsText(): string
    {
        $r = $this->admin('GET', '/metrics');
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertSame('text/plain', $r->contentType());
        $this->assertStringContainsString('version=0.0.4', (string) $r->header('content-type'));
        $typed = [];
        foreach (explode("\n", rtrim($r->body, "\n")) as $line) {
            if (preg_match('/^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/', $line, $m)) {
                $typed[$m[1]] = true;
                continue;
            }
            if (str_starts_with($line, '# HELP ') || $line === '') {
                continue;
            }
            $this->assertMatchesRegularExpression('/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.eE+-]+$/', $line, 'a Prometheus sample line');
            preg_match('/^[a-zA-Z_:][a-zA-Z0-9_:]*/', $line, $m);
            $this->assertArrayHasKey($m[0], $typed, "$m[0] has a # TYPE line");
        }
        return $r->body;
    }

    private static function sample(string $text, string $metric): ?float
    {
        return preg_match('/^' . preg_quote($metric, '/') . ' (\S+)$/m', $text, $m) ? (float) $m[1] : null;
    }

    public function testMetricsCountTokenAndApiTraffic(): void
    {
        $this->seedTokens(-60);
        $this->assertSame(200, $this->api('GET', '/api/info/account')->status); // a refresh, then a 200
        $this->emu()->fault(['path' => '/api/v4/users', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html', 'body' => self::TOO_MANY_PAGE, 'times' => 1]);
        $this->assertSame(200, $this->api('GET', '/api/info/users')->status); // a 429, retried, then a 200
        $this->assertSame(404, $this->api('GET', '/api/leads/999999999')->status); // a 204

        $text = $this->assertMetricsText();
        // The names the README documents.
        foreach (['amocrm_authorized', 'amocrm_token_expires_in_seconds', 'amocrm_refresh_token_expires_in_seconds', 'amocrm_token_warning', 'amocrm_refreshes_total',
                  'amocrm_refresh_failures_total', 'amocrm_api_calls_total', 'amocrm_rate_limited_total', 'amocrm_rate_limit_waits_total',
                  'amocrm_rate_limit_wait_seconds_total', 'amocrm_retries_total', 'amocrm_relocations_total', 'gateway_webhooks_pending', 'gateway_webhooks_failed'] as $name) {
            $this->assertMatchesRegularExpression('/^# TYPE ' . $name . ' (counter|gauge)$/m', $text, $name);
        }
        $this->assertSame(1.0, self::sample($text, 'amocrm_retries_total{account="default"}'), $text);
        $this->assertGreaterThan(85 * 86400, self::sample($text, 'amocrm_refresh_token_expires_in_seconds{account="default"}'), 'the refresh just renewed it');
        $expires = self::sample($text, 'amocrm_token_expires_in_seconds{account="default"}');
        $this->assertNotNull($expires, $text);
        $this->assertGreaterThan(80000, $expires);
        $this->assertSame(1.0, self::sample($text, 'amocrm_refreshes_total{account="default"}'), $text);
        $this->assertSame(2.0, self::sample($text, 'amocrm_api_calls_total{account="default",status="200"}'), $text);
        $this->assertSame(1.0, self::sample($text, 'amocrm_api_calls_total{account="default",status="429"}'), $text);
        $this->assertSame(1.0, self::sample($text, 'amocrm_api_calls_total{account="default",status="204"}'), $text);
        $this->assertSame(1.0, self::sample($text, 'amocrm_rate_limited_total{account="default"}'), $text);
        $this->assertNotNull(self::sample($text, 'amocrm_rate_limit_waits_total{account="default"}'), $text);
        $this->assertSame(1.0, self::sample($text, 'amocrm_authorized{account="default"}'), $text);
        $this->assertSame(0.0, self::sample($text, 'gateway_webhooks_failed'), $text);
    }

    // ---- configuration --------------------------------------------------------

    public function testABadEnvMakesEveryRouteAnswer500AndTheLogNamesTheKey(): void
    {
        $this->configure(['GATEWAY_SECRET' => 'too-short-secret']);
        foreach ([['GET', '/health'], ['GET', '/ready'], ['POST', '/api/leads'], ['GET', '/oauth/status'], ['POST', '/webhooks/amocrm/' . $this->webhookSecret]] as [$m, $path]) {
            $r = $this->request($m, $path, ['basic' => [self::ADMIN_USER, self::ADMIN_PASSWORD]]);
            $p = $this->assertProblem($r, 500);
            $this->assertNotEmpty($p['detail'] ?? '', "$m $path: the answer says what kind of problem it is");
            // Anyone may call /health: the answer names no key, no file, no value.
            $this->assertStringNotContainsString('GATEWAY_', $r->body, "$m $path");
            $this->assertStringNotContainsString($this->dir, $r->body, "$m $path: no path");
            $this->assertStringNotContainsString('too-short-secret', $r->body, 'the value is never shown');
        }
        $this->assertLogged('/configuration: .*GATEWAY_SECRET/', 'the key');
        $this->assertStringNotContainsString('too-short-secret', $this->server()->errorLog(), 'the log does not show the value either');

        // A missing .env: the answer shows no path, the log does.
        unlink($this->envFile);
        $r = $this->request('GET', '/health');
        $this->assertProblem($r, 500);
        $this->assertStringNotContainsString($this->dir, $r->body);
        $this->assertLogged('/configuration: .*' . preg_quote($this->envFile, '/') . '/', 'the .env path');

        // Fixed: the next request works, no restart needed.
        $this->configure(['GATEWAY_SECRET' => $this->gatewaySecret]);
        $this->assertSame(200, $this->request('GET', '/health')->status);
    }

    public function testUnknownRoutesAndMethods(): void
    {
        $this->assertProblem($this->request('GET', '/nope'), 404);
        $this->assertProblem($this->api('GET', '/api/nope'), 404);
        $r = $this->api('DELETE', '/api/leads/1000001');
        $this->assertProblem($r, 405);
        $r = $this->request('GET', '/webhooks/amocrm/' . $this->webhookSecret);
        $this->assertContains($r->status, [404, 405], $r->describe());
        $this->assertSame([], $this->emu()->stats()['api_calls']);
    }

    // ---- files ----------------------------------------------------------

    /** A multipart/form-data body as a browser posts it: a text field and $file under the name `file`. */
    private static function multipart(string $file, string $filename = 'Договор.pdf', string $type = 'application/pdf', string $boundary = '----WebKitFormBoundary7MA4YWxkTrZu0gW'): array
    {
        $body = "--$boundary\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nскан договора\r\n"
            . "--$boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"$filename\"\r\nContent-Type: $type\r\n\r\n"
            . $file . "\r\n--$boundary--\r\n";
        return ['body' => $body, 'headers' => ['Content-Type' => "multipart/form-data; boundary=$boundary"], 'timeout' => 60];
    }

    private function leadForFiles(): int
    {
        return $this->assertCreated($this->api('POST', '/api/leads', ['json' => ['contact' => ['phone' => '+79001112233']]]))['id'];
    }

    private function uploadsLeft(): array
    {
        return glob($this->dataDir . '/uploads/*') ?: [];
    }

    public function testAFileFromAFormArrivesWholeAndIsAttached(): void
    {
        $this->seedTokens();
        $lead = $this->leadForFiles();
        // Three of the drive's 512 KiB parts and a tail, bytes of every value.
        $file = random_bytes(3 * 512 * 1024 + 12345);
        $r = $this->api('POST', "/api/leads/$lead/files", self::multipart($file));
        $j = $this->assertJsonAnswer($r, 201);
        $this->assertSame(['Договор.pdf', strlen($file), $lead], [$j['name'], $j['size'], $j['lead_id']], $r->describe());
        $drive = $this->emu()->control('GET', 'drive');
        $stored = array_values(array_filter($drive['files'], static fn (array $f): bool => $f['uuid'] === $j['uuid']));
        $this->assertCount(1, $stored);
        $this->assertSame(hash('sha256', $file), $stored[0]['sha256'], 'the file arrived whole');
        $this->assertSame('application/pdf', $stored[0]['content_type']);
        $this->assertSame(4, $stored[0]['parts']);
        $this->assertSame([['entity_type' => 'leads', 'entity_id' => $lead, 'file_uuid' => $j['uuid']]], $drive['entity_files']);
        $this->assertSame([], $this->uploadsLeft(), 'the temp file is removed');
    }

    public function testAFileOverTheLimitIs413AndNothingIsUploaded(): void
    {
        $this->configure(['GATEWAY_FILE_MAX_BYTES' => '100000']);
        $this->seedTokens();
        $lead = $this->leadForFiles();
        // Declared too large (Content-Length over the file limit plus GATEWAY_MAX_BODY): refused unread.
        $this->assertProblem($this->api('POST', "/api/leads/$lead/files", self::multipart(random_bytes(200000))), 413);
        // Within the body limit, the file itself too large: refused while it is read.
        $p = $this->assertProblem($this->api('POST', "/api/leads/$lead/files", self::multipart(random_bytes(100001))), 413, 'file');
        $this->assertStringContainsString('100000 bytes', $p['detail']);
        $this->assertSame(0, $this->emu()->control('GET', 'drive')['stats']['sessions_opened'], 'nothing reached the drive');
        $this->assertSame([], $this->uploadsLeft(), 'no temp file is left');
        // Exactly at the limit: taken.
        $this->assertSame(201, $this->api('POST', "/api/leads/$lead/files", self::multipart(random_bytes(100000)))->status);
        $this->assertSame([], $this->uploadsLeft());
    }

    public function testFileUploadsAreRefusedWithoutCredentialsForAMissingLeadAndWithoutAFile(): void
    {
        $this->seedTokens();
        $lead = $this->leadForFiles();
        $form = self::multipart('hello');
        $this->assertProblem($this->request('POST', "/api/leads/$lead/files", $form), 401);
        $this->assertProblem($this->request('POST', "/api/leads/$lead/files", $form + ['bearer' => 'not-a-key-of-this-gateway']), 401);
        $p = $this->assertProblem($this->api('POST', '/api/leads/999999/files', $form), 404);
        $this->assertStringContainsString('999999', $p['detail']);
        $this->assertProblem($this->api('POST', "/api/leads/$lead/files", ['json' => ['file' => 'x']]), 415);
        $noFile = "--b\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nx\r\n--b--\r\n";
        $this->assertProblem($this->api('POST', "/api/leads/$lead/files", ['body' => $noFile, 'headers' => ['Content-Type' => 'multipart/form-data; boundary=b']]), 422, 'file');
        $this->assertProblem($this->api('POST', "/api/leads/$lead/files", ['body' => substr($noFile, 0, 30), 'headers' => ['Content-Type' => 'multipart/form-data; boundary=b']]), 400);
        $this->assertProblem($this->api('POST', "/api/leads/$lead/files", self::multipart('')), 422, 'file');
        $this->assertProblem($this->api('GET', "/api/leads/$lead/files"), 405);
        $this->assertSame(0, $this->emu()->control('GET', 'drive')['stats']['sessions_opened']);
        $this->assertSame([], $this->uploadsLeft());
        // A path in the name the browser sent is not kept.
        $j = $this->assertJsonAnswer($this->api('POST', "/api/leads/$lead/files", self::multipart('x', '..\\..\\etc\\passwd', 'text/plain\r\nX-A: b')), 201);
        $this->assertSame('passwd', $j['name']);
    }
}
