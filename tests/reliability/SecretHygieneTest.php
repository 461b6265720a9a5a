<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\Gateway\GatewayServer;
use AmoCRM\Tests\Gateway\GatewayTestCase;
use AmoCRM\Tests\Gateway\HttpResponse;
use AmoCRM\Tests\Gateway\NginxFpmServer;
use AmoCRM\Tests\Gateway\PhpBuiltinServer;
use AmoCRM\Tests\Gateway\Proc;
use AmoCRM\Tests\PhpProcess;
use PHPUnit\Framework\Attributes\DataProvider;

/**
 * Secret hygiene (issue 8, item 7): recognisable values are planted for
 * every secret — the client secret, two API keys, the admin password, the
 * webhook secret, the gateway's signing secret, a long-lived token — and
 * the emulator's own access and refresh tokens are collected as they are
 * minted; then every route, every CLI command and every exception of the
 * extension is driven through success and failure, and everything the
 * gateway, its servers, its CLI and the extension said or wrote is searched:
 * every HTTP answer (head and body), every stdout and stderr, the php-fpm,
 * nginx and php -S logs, every file under the data dir (spool, cache,
 * idempotency, throttle, OAuth states) and beside the token file (.lock,
 * .shm, .refused). Not searched: the .env files and the token
 * file, which must hold them. Zero hits.
 *
 * A hit is the whole value, its base64 (an echoed Basic credential), or the
 * first 15 characters of any token (the emulator's access tokens all start
 * `eyJ0eXAiOiJKV1Q`, its refresh tokens `def50200` and hex): what PHP's
 * getTraceAsString() keeps of a string argument. Wrong credentials are sent
 * as a real secret with a character appended, so a gateway that echoed or
 * logged a guess would be caught too.
 *
 * What the product guarantees about exceptions, whatever
 * zend.exception_ignore_args says (it is On in php.ini-production, Off
 * under `php -n`): the extension's parameters that take a secret
 * (AmoClient::configure's options, importTokens's pair) and the gateway's
 * (the .env text and values, the client configuration, the webhook secret)
 * are #[\SensitiveParameter], so a trace shows a SensitiveParameterValue in
 * their place; and the gateway's entry points (php/public/index.php,
 * php/bin/amocrm) turn zend.exception_ignore_args on, so no exception made in
 * a gateway process carries arguments at all. var_dump, print_r,
 * var_export, json_encode, serialize and debug_zval_dump of every exception
 * and of every AmoClient object are searched.
 */
final class SecretHygieneTest extends GatewayTestCase
{
    private const JWT_PREFIX = 'eyJ0eXAiOiJKV1Q';

    private string $kind = 'nginx';
    private bool $servedRoutes = false;
    /** The random part of every planted value. */
    private string $random = '';
    /** @var array<string, string> what => planted value */
    private array $planted = [];
    /** @var array<string, true> every token the emulator minted that this test saw */
    private array $tokens = [];
    /** @var array<string, string> artefact => its text (answers, outputs) */
    private array $said = [];
    /** @var list<string> files that must hold secrets: not searched */
    private array $holders = [];
    /**
     * Authorization codes seen (the emulator's start `def50200` too): not
     * secrets here. They travel in the callback's URL by OAuth's design (so
     * in an access log), are single-use, and die in 20 minutes.
     * @var array<string, true>
     */
    private array $codes = [];
    /** @var list<string> the cases driven */
    private array $cases = [];

    public static function setUpBeforeClass(): void
    {
        Results::section('80-secrets', 'Secret hygiene', 'Recognisable values were planted for the client secret, two API keys, the admin '
            . 'password, the webhook secret, the gateway\'s signing secret and a long-lived token; the emulator\'s access and refresh '
            . 'tokens were collected as it minted them. Every route (both web servers), every CLI command and every exception of the '
            . 'extension was driven through success and failure (wrong and throttled credentials, bad input, amoCRM errors and '
            . 'faults, a corrupt token file, a refused refresh token, a bad .env), and everything said or written was searched for '
            . 'each value, its base64, and the first 15 characters of any token (what a stack trace keeps of a string argument). '
            . 'The .env files and the token file, which must hold them, are not searched. Exceptions were rendered with var_dump, '
            . 'print_r, var_export, json_encode, serialize, debug_zval_dump, getTraceAsString and every accessor, under `php -n` '
            . '(zend.exception_ignore_args off, so traces carry arguments).',
            ['what was driven', 'cases', 'artefacts searched', 'hits']);
    }

    protected function setUp(): void
    {
        parent::setUp();
        $r = $this->random = bin2hex(random_bytes(8));
        $this->planted = [
            'client secret' => "PLANTED-CLIENT-SECRET-$r",
            'API key (site)' => "PLANTED-APIKEY-SITE-$r",
            'API key (crm)' => "PLANTED-APIKEY-CRM-$r",
            'admin password' => "PLANTED-ADMIN-PASSWORD-$r",
            'webhook secret' => "PLANTED-WEBHOOK-SECRET-$r",
            'gateway secret' => "PLANTED-GATEWAY-SECRET-$r-signing",
            'long-lived token' => "PLANTED-LONG-LIVED-TOKEN-$r",
        ];
        $this->configure([
            'AMOCRM_CLIENT_SECRET' => $this->planted['client secret'],
            'GATEWAY_API_KEYS' => $this->planted['API key (site)'] . ',' . $this->planted['API key (crm)'],
            'GATEWAY_ADMIN_PASSWORD' => $this->planted['admin password'],
            'GATEWAY_WEBHOOK_SECRET' => $this->planted['webhook secret'],
            'GATEWAY_SECRET' => $this->planted['gateway secret'],
            // On, so that the shared rate-limit log is written (and searched); high, so that the test is quick.
            'AMOCRM_RATE_LIMIT' => '50',
            'AMOCRM_MAX_RETRIES' => '1',
            'AMOCRM_RETRY_BACKOFF_MS' => '10',
        ], ['--client-secret', $this->planted['client secret'], '--rate-limit', '0']);
        $this->holders = [$this->envFile, $this->tokenPath];
    }

    protected function createServer(): GatewayServer
    {
        return $this->kind === 'nginx'
            ? new NginxFpmServer($this->root, $this->port, $this->envFile, $this->dir, 4)
            : new PhpBuiltinServer($this->root, $this->port, $this->envFile, $this->dir);
    }

    /** The planted API key. */
    protected function api(string $method, string $path, array $opts = []): HttpResponse
    {
        return $this->request($method, $path, $opts + ['bearer' => $this->planted['API key (site)']]);
    }

    /** The planted admin password. */
    protected function admin(string $method, string $path, array $opts = []): HttpResponse
    {
        return $this->request($method, $path, $opts + ['basic' => [self::ADMIN_USER, $this->planted['admin password']]]);
    }

    /** @return array<string, array{0: string}> */
    public static function servers(): array
    {
        if (!NginxFpmServer::available()) {
            return ['php -S' => ['php -S']];
        }
        return ['nginx + php-fpm' => ['nginx'], 'php -S' => ['php -S']];
    }

    /** @dataProvider servers */
    #[DataProvider('servers')]
    public function testEveryRouteThroughSuccessAndFailureLeaksNoSecret(string $kind): void
    {
        $this->kind = $kind;
        $this->servedRoutes = true;
        $this->server();
        $wh = '/webhooks/amocrm/' . $this->planted['webhook secret'];

        // Not authorized yet.
        $this->expect('GET /health', $this->request('GET', '/health'), 200);
        $this->expect('HEAD /health', $this->request('HEAD', '/health'), 200);
        $this->expect('GET /ready, not authorized', $this->request('GET', '/ready'), 503);
        $this->expect('GET /oauth/status, not authorized', $this->admin('GET', '/oauth/status'), 200);
        $this->expect('GET /metrics, not authorized', $this->admin('GET', '/metrics'), 200);
        $this->expect('POST /api/leads, not authorized', $this->api('POST', '/api/leads', ['json' => ['name' => 'x']]), 503);
        $this->expect('GET /api/leads/1, not authorized', $this->api('GET', '/api/leads/1'), 503);
        $this->expect('GET /api/info/account, not authorized', $this->api('GET', '/api/info/account'), 503);
        $this->expect('GET /oauth/authorize without a credential', $this->request('GET', '/oauth/authorize'), 401);
        $this->expect('GET /oauth/authorize with a wrong password', $this->wrongAdmin('GET', '/oauth/authorize'), 401);
        $this->expect('GET /api/leads/1 without a key', $this->request('GET', '/api/leads/1'), 401);
        $this->expect('GET /api/leads/1 with a wrong key', $this->wrongKey('GET', '/api/leads/1'), 401);
        $this->expect('POST /webhooks/amocrm/{wrong secret}', $this->request('POST', $wh . 'x', ['json' => ['x' => 1]]), 404);
        $this->expect('GET /no-such-route', $this->request('GET', '/no-such-route'), 404);
        $this->expect('DELETE /api/leads', $this->api('DELETE', '/api/leads'), 405);
        $this->expect('GET /webhooks/amocrm/{secret}', $this->request('GET', $wh), 405);
        $this->expect('POST /webhooks/amocrm/{secret}/more', $this->request('POST', $wh . '/more', ['json' => ['x' => 1]]), 404);

        // The OAuth flow and its failures.
        $this->expect('GET /oauth/callback: the consent flow', $this->authorizeThroughConsent(), 200);
        $flow = $this->consent('allow');
        $this->expect('GET /oauth/callback with a forged state', $this->admin('GET', (string) preg_replace('/([?&]state=)[^&]+/', '$1forged', $flow['callbackUrl'])), 400);
        $this->expect('GET /oauth/callback with a referer outside allowed_domains', $this->admin('GET', (string) preg_replace('/([?&]referer=)[^&]+/', '$1evil.example.com', $flow['callbackUrl'])), 400);
        $flow = $this->consent('allow');
        $this->expect('GET /oauth/callback with a code amoCRM refuses', $this->admin('GET', (string) preg_replace('/([?&]code=)[^&]+/', '$1refused-code', $flow['callbackUrl'])), 400);
        $flow = $this->consent('allow');
        $this->expect('HEAD /oauth/callback', $this->admin('HEAD', $flow['callbackUrl']), 200);
        $this->expect('GET /oauth/callback: the second consent', $this->admin('GET', $flow['callbackUrl']), 200);
        $this->expect('GET /oauth/callback replayed', $this->admin('GET', $flow['callbackUrl']), 400);
        $flow = $this->consent('deny');
        $this->expect('GET /oauth/callback, access denied', $this->admin('GET', $flow['callbackUrl']), 200);

        // Authorized: every route, success and bad input.
        $this->expect('GET /ready', $this->request('GET', '/ready'), 200);
        $this->expect('GET /oauth/status', $this->admin('GET', '/oauth/status'), 200);
        $this->expect('HEAD /oauth/status', $this->admin('HEAD', '/oauth/status'), 200);
        $this->expect('GET /metrics', $this->admin('GET', '/metrics'), 200);
        $lead = $this->expect('POST /api/leads (JSON, comment)', $this->api('POST', '/api/leads', ['json' => [
            'name' => 'hygiene', 'price' => 10, 'tags' => ['a'], 'utm_source' => 'g', 'company' => 'ООО',
            'contact' => ['name' => 'Иван', 'phone' => '+7 900 111-22-33', 'email' => 'i@example.com'], 'comment' => 'call back',
        ]]), 201)->json();
        $id = (int) $lead['id'];
        $this->expect('POST /api/leads (form)', $this->api('POST', '/api/leads', ['form' => ['name' => 'form', 'phone' => '+79001112234']]), 201);
        $this->expect('POST /api/leads (the other API key)', $this->request('POST', '/api/leads', ['bearer' => $this->planted['API key (crm)'], 'json' => ['name' => 'crm']]), 201);
        $key = ['headers' => ['Idempotency-Key' => 'hygiene-1']];
        $this->expect('POST /api/leads with Idempotency-Key', $this->api('POST', '/api/leads', $key + ['json' => ['name' => 'idem']]), 201);
        $this->expect('POST /api/leads, the key replayed', $this->api('POST', '/api/leads', $key + ['json' => ['name' => 'idem']]), 201);
        $this->expect('POST /api/leads, the key with another lead', $this->api('POST', '/api/leads', $key + ['json' => ['name' => 'other']]), 422);
        $this->expect('POST /api/leads, a key too long', $this->api('POST', '/api/leads', ['headers' => ['Idempotency-Key' => str_repeat('k', 300)], 'json' => ['name' => 'x']]), 400);
        $this->expect('POST /api/leads, not JSON', $this->api('POST', '/api/leads', ['body' => '{"name":', 'headers' => ['Content-Type' => 'application/json']]), 400);
        $this->expect('POST /api/leads, a bad email', $this->api('POST', '/api/leads', ['json' => ['contact' => ['email' => 'not-an-email']]]), 422);
        $this->expect('POST /api/leads, text/plain', $this->api('POST', '/api/leads', ['body' => 'name=x', 'headers' => ['Content-Type' => 'text/plain']]), 415);
        $this->expect('POST /api/leads, 70 KB', $this->api('POST', '/api/leads', ['json' => ['name' => 'x', 'comment' => str_repeat('z', 70000)]]), 413);
        $this->expect('POST /api/leads, a status amoCRM refuses', $this->api('POST', '/api/leads', ['json' => ['name' => 'x', 'status_id' => 999999, 'pipeline_id' => 1001]]), 422);
        $this->expect('GET /api/leads/{id}', $this->api('GET', "/api/leads/$id"), 200);
        $this->expect('GET /api/leads/{missing}', $this->api('GET', '/api/leads/999999999'), 404);
        $this->expect('PATCH /api/leads/{id}', $this->api('PATCH', "/api/leads/$id", ['json' => ['status_id' => 142]]), 200);
        $this->expect('PATCH /api/leads/{missing}', $this->api('PATCH', '/api/leads/999999999', ['json' => ['price' => 1]]), 404);
        $this->expect('PATCH /api/leads/{id}, a bad price', $this->api('PATCH', "/api/leads/$id", ['json' => ['price' => -1]]), 422);
        foreach (['account', 'pipelines', 'users', 'custom-fields/leads', 'custom-fields/contacts'] as $info) {
            $this->expect("GET /api/info/$info (miss)", $this->api('GET', "/api/info/$info"), 200);
            $this->expect("GET /api/info/$info (hit)", $this->api('GET', "/api/info/$info"), 200);
        }
        $this->expect('GET /api/info/custom-fields/{unknown}', $this->api('GET', '/api/info/custom-fields/tasks'), 404);
        $this->expect('POST /webhooks/amocrm/{secret} (JSON)', $this->request('POST', $wh, ['json' => ['leads' => ['add' => [['id' => $id]]]]]), 200);
        $this->expect('POST /webhooks/amocrm/{secret} (form)', $this->request('POST', $wh, ['form' => 'leads%5Bstatus%5D%5B0%5D%5Bid%5D=' . $id . '&account%5Bsubdomain%5D=x']), 200);
        $this->expect('POST /webhooks/amocrm/{secret} (not UTF-8)', $this->request('POST', $wh, ['form' => "leads%5Badd%5D%5B0%5D%5Bname%5D=\xC7\xE0\xFF"]), 200);
        $this->expect('POST /webhooks/amocrm/{secret} (JSON that does not parse)', $this->request('POST', $wh, ['body' => '{"leads":', 'headers' => ['Content-Type' => 'application/json']]), 200);
        $this->expect('POST /webhooks/amocrm/{secret} (2 MB)', $this->request('POST', $wh, ['form' => 'x=' . str_repeat('y', 2 * 1024 * 1024)]), 413);

        // amoCRM failing, through the emulator's faults.
        $emu = $this->emu();
        $emu->fault(['path' => '/api/v4/leads/complex', 'action' => 'respond', 'status' => 500, 'body' => ['title' => 'Internal'], 'times' => 1]);
        $k2 = ['headers' => ['Idempotency-Key' => 'hygiene-2']];
        $this->expect('POST /api/leads, amoCRM answers 500 (outcome unknown)', $this->api('POST', '/api/leads', $k2 + ['json' => ['name' => 'unknown']]), 502);
        $emu->fault(['path' => '/api/v4/leads', 'method' => 'GET', 'action' => 'respond', 'status' => 500, 'times' => 1]);
        $this->expect('POST /api/leads repeated, the search fails', $this->api('POST', '/api/leads', $k2 + ['json' => ['name' => 'unknown']]), 503);
        $this->expect('POST /api/leads repeated, the search answers', $this->api('POST', '/api/leads', $k2 + ['json' => ['name' => 'unknown']]), 201);
        $emu->fault(['path' => '/api/v4/leads/complex', 'action' => 'drop', 'times' => 1]);
        $this->expect('POST /api/leads, the connection drops', $this->api('POST', '/api/leads', ['json' => ['name' => 'dropped']]), 502);
        $emu->fault(['path' => "/api/v4/leads/$id", 'action' => 'drop', 'times' => 2]);
        $this->expect('GET /api/leads/{id}, the connection drops', $this->api('GET', "/api/leads/$id"), 502);
        $emu->fault(['path' => "/api/v4/leads/$id", 'action' => 'truncate', 'times' => 2]);
        $this->expect('GET /api/leads/{id}, a cut answer', $this->api('GET', "/api/leads/$id"), 502);
        $emu->fault(['path' => "/api/v4/leads/$id", 'action' => 'respond', 'status' => 200, 'body' => 'not json', 'content_type' => 'text/html', 'times' => 1]);
        $this->expect('GET /api/leads/{id}, an answer that is not JSON', $this->api('GET', "/api/leads/$id"), 502);
        $emu->fault(['path' => '/api/v4/', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html', 'body' => '<html><head><title>429 Too Many Requests</title></head><body></body></html>', 'times' => 2]);
        $this->expect('GET /api/leads/{id}, amoCRM answers 429', $this->api('GET', "/api/leads/$id"), 503);
        $emu->fault(['path' => '/api/v4/', 'action' => 'respond', 'status' => 403, 'content_type' => 'text/html', 'body' => '<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>', 'times' => 1]);
        $this->expect('GET /api/leads/{id}, amoCRM blocks the account', $this->api('GET', "/api/leads/$id"), 503);
        $emu->fault(['path' => '/api/v4/', 'action' => 'respond', 'status' => 401, 'body' => ['title' => 'Unauthorized', 'status' => 401], 'times' => 2]);
        $this->expect('GET /api/leads/{id}, amoCRM answers 401 twice (one refresh)', $this->api('GET', "/api/leads/$id"), 503);
        $this->expect('GET /api/leads/{id} after the refresh', $this->api('GET', "/api/leads/$id"), 200);

        // The token file: due for a refresh, corrupt, refused.
        $pair = $this->storedPair();
        $this->writeTokenFile(['expires_at' => time() + 60] + $pair);
        $this->expect('GET /api/leads/{id}, the access token due: refreshed', $this->api('GET', "/api/leads/$id"), 200);
        $this->assertNotSame($pair['refresh_token'], $this->storedPair()['refresh_token'], 'the gateway refreshed');
        $good = (string) file_get_contents($this->tokenPath);
        file_put_contents($this->tokenPath, '{"access_token": "' . substr($this->storedPair()['access_token'], 0, 40));
        $this->expect('GET /api/leads/{id}, a corrupt token file', $this->api('GET', "/api/leads/$id"), 500);
        $this->expect('POST /api/leads, a corrupt token file', $this->api('POST', '/api/leads', ['json' => ['name' => 'x']]), 500);
        $this->expect('GET /oauth/status, a corrupt token file', $this->admin('GET', '/oauth/status'), 500);
        $this->expect('GET /ready, a corrupt token file', $this->request('GET', '/ready'), 503);
        $this->expect('GET /metrics, a corrupt token file', $this->admin('GET', '/metrics'), 200, 500);
        file_put_contents($this->tokenPath, $good);
        $pair = $this->storedPair();
        $child = $this->refreshDirectly($pair['refresh_token']);
        $this->refreshDirectly($child['refresh_token']); // spends the child: the stored refresh token is revoked
        $this->writeTokenFile(['expires_at' => time() - 60] + $pair);
        $this->expect('GET /api/leads/{id}, the refresh token refused', $this->api('GET', "/api/leads/$id"), 503);
        $this->expect('GET /api/leads/{id}, refused before (no token call)', $this->api('GET', "/api/leads/$id"), 503);
        $this->expect('GET /ready, the refresh token refused', $this->request('GET', '/ready'), 503);
        $this->expect('GET /oauth/status, the refresh token refused', $this->admin('GET', '/oauth/status'), 200);
        $this->assertFileExists($this->tokenPath . '.refused');
        $this->said['tokens.json.refused (before the new pair removes it)'] = (string) file_get_contents($this->tokenPath . '.refused');
        $this->expect('GET /oauth/callback: re-authorized', $this->authorizeThroughConsent(), 200);
        $this->expect('GET /api/leads/{id}, re-authorized', $this->api('GET', "/api/leads/$id"), 200);

        // A bad .env: every route is a generic 500, the log names the key.
        foreach (['GATEWAY_SECRET' => 'short', 'AMOCRM_RATE_LIMIT' => 'abc', 'GATEWAY_API_KEYS' => 'short,' . $this->planted['API key (site)']] as $k => $v) {
            $this->writeEnv([$k => $v] + $this->envValues());
            $this->expect("GET /health, .env with a bad $k", $this->request('GET', '/health'), 500);
            $this->expect("GET /api/leads/{id}, .env with a bad $k", $this->api('GET', "/api/leads/$id"), 500);
        }
        $this->writeEnv();
        $this->expect('GET /api/leads/{id}, the .env repaired', $this->api('GET', "/api/leads/$id"), 200);

        // Throttled guessing, last: it locks this address out for a minute.
        foreach ([
            'API key' => fn () => $this->wrongKey('GET', "/api/leads/$id"),
            'admin credential' => fn () => $this->wrongAdmin('GET', '/oauth/status'),
            'webhook secret' => fn () => $this->request('POST', $wh . 'x', ['json' => ['x' => 1]]),
        ] as $what => $guess) {
            $statuses = [];
            for ($i = 0; $i < 12 && !in_array(429, $statuses, true); $i++) {
                $statuses[] = $guess()->status;
            }
            $this->assertContains(429, $statuses, "wrong $what guesses are throttled");
            $this->cases[] = "wrong $what ×" . count($statuses) . ' until 429';
        }
        $this->expect('GET /api/leads/{id} with the right key while throttled', $this->api('GET', "/api/leads/$id"), 429);
        $this->expect('GET /oauth/status with the right password while throttled', $this->admin('GET', '/oauth/status'), 429);
        $this->expect('POST /webhooks/amocrm/{secret} while throttled', $this->request('POST', $wh, ['json' => ['x' => 1]]), 429);
        if ($kind === 'nginx') {
            usleep(300000); // the deferred handlers of the last deliveries
        }

        foreach (['.lock', '.shm'] as $beside) {
            $this->assertFileExists($this->tokenPath . $beside, 'searched: the file beside the token file');
        }
        foreach (['cache', 'idempotency', 'throttle', 'oauth-states', 'webhooks/done', 'webhooks/failed'] as $sub) {
            $this->assertNotEmpty(glob($this->dataDir . "/$sub/*") ?: [], "searched: the data dir's $sub/");
        }
        $answers = 0;
        foreach ($this->http()->log as $r) {
            $head = '';
            foreach ($r->headers as $k => $vs) {
                $head .= "$k: " . implode("\n$k: ", $vs) . "\n";
            }
            $this->said["answer #$answers: {$r->method} " . $this->mask($r->url) . " → {$r->status}"] = $head . "\n" . $r->body;
            $answers++;
        }
        $label = $kind === 'nginx' ? 'nginx + php-fpm' : 'php -S';
        $this->report(
            "every route through $label: success, bad input, wrong and throttled credentials, OAuth failures, amoCRM faults, corrupt / refused tokens, bad .env",
            "$answers answers (head and body), the server's logs, the data dir, beside the token file"
        );
    }

    public function testEveryCliCommandThroughSuccessAndFailureLeaksNoSecret(): void
    {
        $importFile = sys_get_temp_dir() . '/amocrm-import-' . bin2hex(random_bytes(6)) . '.json';
        $this->holders[] = $importFile;
        $badEnv = $this->dir . '/bad.env';
        $this->holders[] = $badEnv;
        try {
            $this->runCli('help', ['help'], 0);
            $this->runCli('no command', [], 64);
            $this->runCli('an unknown command', ['rotate'], 64);
            $this->runCli('status with an unknown option', ['status', '--verbose'], 64);
            $this->runCli('status, not authorized', ['status'], 2);
            $this->runCli('refresh, not authorized', ['refresh'], 2);
            $this->runCli('authorize-url', ['authorize-url'], 0);
            $this->runCli('exchange without arguments', ['exchange'], 64);
            $this->runCli('exchange with a code amoCRM refuses', ['exchange', 'refused-code', $this->emu()->referer()], 2);
            $this->runCli('exchange with a referer outside allowed_domains', ['exchange', 'some-code', 'evil.example.com'], 1);
            $code = $this->emu()->code();
            $this->codes[$code] = true;
            $this->runCli('exchange', ['exchange', $code, $this->emu()->referer()], 0);
            $this->runCli('status', ['status'], 0);
            $this->runCli('refresh, not due', ['refresh'], 0);
            $this->runCli('refresh --force', ['refresh', '--force'], 0);
            $this->runCli('keepalive', ['keepalive'], 0);
            $this->writeTokenFile(['updated_at' => time() - 2 * 86400] + $this->storedPair());
            $this->runCli('keepalive --max-age=1, a pair of 2 days', ['keepalive', '--max-age=1'], 0);
            $this->runCli('keepalive with a bad --max-age', ['keepalive', '--max-age=0'], 64);
            $minted = $this->emu()->mintTokens();
            $this->noteToken($minted['access_token']);
            $this->noteToken($minted['refresh_token']);
            $pair = ['access_token' => $minted['access_token'], 'refresh_token' => $minted['refresh_token'],
                'expires_at' => time() + 86400, 'base_domain' => $this->emu()->referer(), 'updated_at' => time()];
            file_put_contents($importFile, json_encode($pair));
            $this->runCli('import', ['import', $importFile], 0);
            file_put_contents($importFile, json_encode(['base_domain' => 'evil.example.com'] + $pair));
            $this->runCli('import, a host outside allowed_domains', ['import', $importFile], 1);
            file_put_contents($importFile, json_encode(['expires_at' => 99999999999] + $pair));
            $this->runCli('import, an expires_at out of range', ['import', $importFile], 1);
            file_put_contents($importFile, json_encode(['access_token' => $pair['access_token'] . "\x01"] + $pair));
            $this->runCli('import, a token with a control character', ['import', $importFile], 1);
            file_put_contents($importFile, substr(json_encode($pair), 0, 60));
            $this->runCli('import, a cut file', ['import', $importFile], 1);
            $this->runCli('import, a missing file', ['import', $importFile . '.missing'], 1);
            $this->runCli('import without a file', ['import'], 64);
            $this->emu()->fault(['path' => '/oauth2/access_token', 'action' => 'drop', 'times' => 2]);
            $this->runCli('refresh --force, amoCRM unreachable', ['refresh', '--force'], 1);
            $this->emu()->control('DELETE', 'faults');
            $this->emu()->fault(['path' => '/oauth2/access_token', 'action' => 'respond', 'status' => 500, 'body' => ['hint' => 'oops'], 'times' => 1]);
            $this->runCli('refresh --force, amoCRM answers 500', ['refresh', '--force'], 1);
            $this->emu()->control('DELETE', 'faults');
            // Deliveries to replay: one that parses, one that does not.
            $failed = $this->dataDir . '/webhooks/failed';
            mkdir($failed, 0700, true);
            file_put_contents("$failed/1-a.json", json_encode(['id' => '1-a', 'received_at' => time(), 'remote_addr' => '127.0.0.1', 'content_type' => 'application/json', 'body' => '{"leads":{"add":[{"id":1}]}}']));
            file_put_contents("$failed/1-b.json", json_encode(['id' => '1-b', 'received_at' => time(), 'remote_addr' => '127.0.0.1', 'content_type' => 'application/json', 'body' => '{"leads":']));
            $this->runCli('webhooks:replay, one still failing', ['webhooks:replay'], 1);
            $this->runCli('webhooks:replay --all', ['webhooks:replay', '--all'], 1);
            // A refused refresh token.
            $pair = $this->storedPair();
            $child = $this->refreshDirectly($pair['refresh_token']);
            $this->refreshDirectly($child['refresh_token']);
            $this->runCli('refresh --force, the refresh token refused', ['refresh', '--force'], 2);
            $this->runCli('status, the refresh token refused', ['status'], 2);
            $this->runCli('keepalive, the refresh token refused', ['keepalive'], 2);
            $this->assertFileExists($this->tokenPath . '.refused');
            // A corrupt token file.
            file_put_contents($this->tokenPath, '{"access_token": "' . substr($pair['access_token'], 0, 40));
            $this->runCli('status, a corrupt token file', ['status'], 1);
            $this->runCli('refresh, a corrupt token file', ['refresh', '--force'], 1);
            $this->writeTokenFile($pair);
            // Bad .env files: 78, naming the key.
            foreach (['GATEWAY_SECRET' => 'short', 'AMOCRM_RATE_LIMIT' => 'abc', 'GATEWAY_WEBHOOK_SECRET' => 'has spaces in it!'] as $k => $v) {
                file_put_contents($badEnv, implode("\n", array_map(static fn ($kk, $vv) => "$kk=$vv", array_keys([$k => $v] + $this->envValues()), [$k => $v] + $this->envValues())) . "\n");
                $r = $this->runCli("status, .env with a bad $k", ['status'], 78, $badEnv);
                $this->assertStringContainsStringIgnoringCase(preg_replace('/^AMOCRM_/', '', $k), $r['err'], 'the message names the key');
            }
            // A data dir that cannot be made: an error (exit 1), not PHP's fatal error.
            touch($this->dir . '/not-a-folder');
            file_put_contents($badEnv, implode("\n", array_map(static fn ($k, $v) => "$k=$v", array_keys(['GATEWAY_DATA_DIR' => $this->dir . '/not-a-folder/var'] + $this->envValues()), ['GATEWAY_DATA_DIR' => $this->dir . '/not-a-folder/var'] + $this->envValues())) . "\n");
            $r = $this->runCli('webhooks:replay, a data dir that cannot be made', ['webhooks:replay'], 1, $badEnv);
            $this->assertStringNotContainsString('Stack trace', $r['err'] . $r['out']);

            foreach (['.lock', '.shm', '.refused'] as $beside) {
                $this->assertFileExists($this->tokenPath . $beside, 'searched: the file beside the token file');
            }
            $this->report('every command of php/bin/amocrm: success, failure (amoCRM refusing, unreachable, 500), usage errors, bad .env, a corrupt token file, a refused refresh token',
                count($this->said) . ' runs (stdout and stderr), the data dir, beside the token file');
        } finally {
            @unlink($importFile);
        }
    }

    public function testTheExtensionsExceptionsObjectsAndInfoLeakNoSecret(): void
    {
        $folder = $this->dir . '/ext';
        mkdir($folder, 0700);
        $tokenPath = "$folder/tokens.json";
        $seen = "$folder/tokens-seen.json";
        $this->holders = [$this->envFile, $this->tokenPath, $tokenPath, $seen];
        $minted = $this->emu()->mintTokens();
        $pair = ['access_token' => $minted['access_token'], 'refresh_token' => $minted['refresh_token'],
            'expires_at' => time() + 86400, 'base_domain' => $this->emu()->referer(), 'updated_at' => time()];
        $this->noteToken($pair['access_token']);
        $this->noteToken($pair['refresh_token']);
        $env = [
            'AMOCRM_CLIENT_ID' => self::CLIENT_ID,
            'AMOCRM_CLIENT_SECRET' => $this->planted['client secret'],
            'AMOCRM_REDIRECT_URI' => $this->callbackUrl(),
            'AMOCRM_TOKEN_PATH' => $tokenPath,
            'AMOCRM_ALLOWED_DOMAINS' => 'localhost',
            'AMOCRM_INSECURE_HTTP' => '1',
            'AMOCRM_OAUTH_HOST' => 'localhost:' . $this->emu()->port,
            'AMOCRM_RATE_LIMIT' => '0',
            'AMOCRM_MAX_RETRIES' => '1',
            'AMOCRM_RETRY_BACKOFF_MS' => '10',
            'AMOCRM_CONNECT_TIMEOUT' => '2',
            'AMOCRM_TIMEOUT' => '5',
            'HYGIENE_PAIR' => json_encode($pair),
            'HYGIENE_EMULATOR' => $this->emu()->url(''),
            'HYGIENE_REFERER' => $this->emu()->referer(),
            'HYGIENE_SECRET' => $this->planted['client secret'],
            'HYGIENE_LLT' => $this->planted['long-lived token'],
            'HYGIENE_SEEN' => $seen,
        ];
        $r = PhpProcess::run(self::RENDER . self::EXTENSION_CASES, $env);
        $this->assertIsArray($r['result'], "the PHP process reported nothing:\n" . $this->mask($r['out'] . $r['err']));
        $this->assertTrue($r['result']['ok'] ?? false, $this->mask(json_encode($r['result'])));
        $this->said['AmoClient from PHP: stdout'] = $r['out'];
        $this->said['AmoClient from PHP: stderr'] = $r['err'];
        foreach (json_decode((string) @file_get_contents($seen), true) ?: [] as $t) {
            $this->noteToken((string) $t);
        }
        $done = $r['result']['result'];
        $this->assertGreaterThanOrEqual(20, $done['exceptions'], 'the cases threw');
        $this->assertCount(7, $done['classes'], 'every class of the AmoException family was thrown: ' . implode(', ', $done['classes']));
        foreach ($done['labels'] as $label) {
            $this->cases[] = "exception: $label";
        }
        $this->cases = array_merge($this->cases, $done['objects']);

        // phpinfo() and php --ri: the secrets from php.ini, configure() and the environment.
        $ini = ['amocrm.client_secret' => $this->planted['client secret'], 'amocrm.long_lived_token' => $this->planted['long-lived token'], 'amocrm.base_domain' => 'x.amocrm.ru'];
        $r = PhpProcess::run(<<<'PHP'
            AmoClient::configure(['client_secret' => getenv('HYGIENE_SECRET') . '-configured']);
            ob_start();
            phpinfo(INFO_GENERAL | INFO_CONFIGURATION | INFO_MODULES);
            echo ob_get_clean();
            return 'phpinfo';
            PHP, ['HYGIENE_SECRET' => $this->planted['client secret']], $ini);
        $this->assertSame('phpinfo', $r['result']['result'] ?? null, $this->mask($r['out'] . $r['err']));
        $this->assertStringContainsString('client_secret', $r['out'], 'phpinfo() shows the amocrm section');
        $this->said['phpinfo() (secrets from php.ini and configure())'] = $r['out'] . $r['err'];
        $this->cases[] = 'phpinfo()';
        $php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT')];
        foreach ([
            'php --ri amocrm (php.ini)' => [array_merge($php, ['-d', 'amocrm.client_secret=' . $this->planted['client secret'], '-d', 'amocrm.long_lived_token=' . $this->planted['long-lived token'], '-d', 'amocrm.base_domain=x.amocrm.ru', '--ri', 'amocrm']), []],
            'php --ri amocrm (environment)' => [array_merge($php, ['--ri', 'amocrm']), ['AMOCRM_CLIENT_SECRET' => $this->planted['client secret'], 'AMOCRM_LONG_LIVED_TOKEN' => $this->planted['long-lived token'], 'AMOCRM_BASE_DOMAIN' => 'x.amocrm.ru']],
            'php --ri amocrm (an invalid configuration)' => [array_merge($php, ['--ri', 'amocrm']), ['AMOCRM_CLIENT_SECRET' => $this->planted['client secret'], 'AMOCRM_LONG_LIVED_TOKEN' => $this->planted['long-lived token'], 'AMOCRM_RATE_LIMIT' => 'abc']],
        ] as $what => [$cmd, $extra]) {
            $out = Proc::run($cmd, ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'] + $extra, 30);
            $this->assertStringContainsString('amocrm support => enabled', $out['out'], $what);
            $this->said[$what] = $out['out'] . $out['err'];
            $this->cases[] = $what;
        }

        $this->report('AmoClient from PHP (php -n): every exception class, thrown by configure(), importTokens(), exchangeCode(), '
            . 'services and iterators against amoCRM errors and faults, a corrupt token file and a refused refresh token; the client, '
            . 'its services, iterators, tokenStatus() and metrics(); phpinfo(); php --ri amocrm',
            'stdout and stderr of ' . (count($this->said)) . ' processes, beside the token file');
    }

    /** The regression test of the extension's fix: PHP sees the attribute, and a trace holds its placeholder. */
    public function testTheExtensionsParametersThatTakeASecretAreSensitive(): void
    {
        $r = PhpProcess::run(<<<'PHP'
            $out = [];
            foreach ([['configure', 0], ['importTokens', 0], ['exchangeCode', 0]] as [$method, $i]) {
                $p = (new ReflectionMethod('AmoClient', $method))->getParameters()[$i];
                $out["AmoClient::$method \$" . $p->getName()] = array_map(static fn ($a) => $a->getName(), $p->getAttributes());
            }
            try {
                AmoClient::configure(['client_secret' => 'a secret', 'no_such_key' => '1']);
            } catch (AmoConfigException $e) {
                $out['the trace of configure()'] = get_debug_type($e->getTrace()[0]['args'][0] ?? null);
            }
            try {
                AmoClient::getInstance()->importTokens(['access_token' => 'a', 'refresh_token' => 'b', 'expires_at' => 1, 'base_domain' => 'evil.example.com']);
            } catch (AmoException $e) {
                $out['the trace of importTokens()'] = get_debug_type($e->getTrace()[0]['args'][0] ?? null);
            }
            return $out;
            PHP, ['AMOCRM_TOKEN_PATH' => $this->dir . '/never.json']);
        $this->assertSame([
            'AmoClient::configure $options' => ['SensitiveParameter'],
            'AmoClient::importTokens $pair' => ['SensitiveParameter'],
            'AmoClient::exchangeCode $code' => ['SensitiveParameter'],
            'the trace of configure()' => 'SensitiveParameterValue',
            'the trace of importTokens()' => 'SensitiveParameterValue',
        ], $r['result']['result'] ?? $r);
    }

    public function testTheGatewaysOwnExceptionsCarryNoSecret(): void
    {
        $this->seedTokens();
        $this->noteTokens();
        $code = self::RENDER . <<<'PHP'
            require getenv('HYGIENE_ROOT') . '/php/src/autoload.php';
            $n = 0;
            foreach (explode(',', getenv('HYGIENE_ENVS')) as $file) {
                try {
                    $config = AmoGateway\Config::load($file);
                    AmoGateway\App::configureClient($config);
                    $n++;
                    $render("loaded $file", 'ok');
                } catch (Throwable $e) {
                    $n++;
                    $render("Config::load / App::configureClient of $file", $e);
                }
            }
            try {
                AmoGateway\Config::parse("GATEWAY_SECRET=" . getenv('HYGIENE_SECRET') . "\nthis line is not KEY=value\n");
            } catch (Throwable $e) {
                $n++;
                $render('Config::parse of a bad line', $e);
            }
            return $n;
            PHP;
        $good = $this->envValues();
        $envs = [];
        foreach (['GATEWAY_SECRET' => 'short', 'GATEWAY_ADMIN_PASSWORD' => 'short', 'GATEWAY_API_KEYS' => 'short', 'GATEWAY_WEBHOOK_SECRET' => 'bad secret!',
                     'GATEWAY_INFO_CACHE_TTL' => '-1', 'AMOCRM_RATE_LIMIT' => 'abc', 'AMOCRM_NO_SUCH_KEY' => '1'] as $k => $v) {
            $file = $this->dir . '/bad-' . strtolower($k) . '.env';
            $this->holders[] = $file;
            file_put_contents($file, implode("\n", array_map(static fn ($kk, $vv) => "$kk=$vv", array_keys([$k => $v] + $good), [$k => $v] + $good)) . "\n");
            $envs[] = $file;
            $this->cases[] = "a .env with a bad $k";
        }
        $r = PhpProcess::run($code, ['HYGIENE_ROOT' => $this->root, 'HYGIENE_ENVS' => implode(',', $envs), 'HYGIENE_SECRET' => $this->planted['gateway secret']]);
        $this->assertSame(count($envs) + 1, $r['result']['result'] ?? null, $this->mask($r['out'] . $r['err']));
        $this->said['the gateway\'s exceptions from php -n: stdout'] = $r['out'];
        $this->said['the gateway\'s exceptions from php -n: stderr'] = $r['err'];

        // A gateway process makes no exception with arguments: bin/amocrm
        // turns zend.exception_ignore_args on (php -n has it off).
        $probe = $this->dir . '/probe.php';
        $seenIni = $this->dir . '/probe.out';
        file_put_contents($probe, '<?php function hygiene_probe($a) { return (new Exception())->getTrace(); }' . "\n"
            . 'register_shutdown_function(static function () { file_put_contents(' . var_export($seenIni, true) . ', json_encode(['
            . '"ini" => ini_get("zend.exception_ignore_args"), "args" => array_key_exists("args", hygiene_probe(1)[0])])); });' . "\n");
        $out = Proc::run([PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT'), '-d', 'auto_prepend_file=' . $probe, $this->root . '/php/bin/amocrm', 'status'],
            ['PATH' => getenv('PATH') ?: '/usr/bin:/bin', 'GATEWAY_ENV_FILE' => $this->envFile], 30);
        $this->said['php/bin/amocrm status (probe)'] = $out['out'] . $out['err'];
        $probed = json_decode((string) @file_get_contents($seenIni), true);
        $this->assertSame('1', $probed['ini'] ?? null, 'php/bin/amocrm turns zend.exception_ignore_args on');
        $this->assertFalse($probed['args'] ?? true, 'a trace made in php/bin/amocrm carries no arguments');
        $this->cases[] = 'php/bin/amocrm: zend.exception_ignore_args';
        $index = (string) file_get_contents($this->root . '/php/public/index.php');
        $this->assertMatchesRegularExpression("/ini_set\\('zend\\.exception_ignore_args', '1'\\)/", $index, 'php/public/index.php turns zend.exception_ignore_args on');
        $pool = (string) file_get_contents($this->root . '/php/deploy/php-fpm-pool.conf');
        $this->assertMatchesRegularExpression('/^php_admin_flag\[zend\.exception_ignore_args\]\s*=\s*on$/m', $pool, 'the FPM pool pins zend.exception_ignore_args on');

        $this->report('the gateway\'s own exceptions under php -n: Config::load and App::configureClient of .env files with a bad value beside the planted ones, Config::parse; php/bin/amocrm\'s zend.exception_ignore_args',
            count($this->said) . ' outputs (var_dump, print_r, var_export, json_encode, serialize, traces)');
    }

    // ---- driving --------------------------------------------------------

    private function expect(string $case, HttpResponse $r, int ...$statuses): HttpResponse
    {
        $this->assertContains($r->status, $statuses, "$case\n" . $this->mask($r->describe()));
        $this->cases[] = $case;
        $this->noteTokens();
        return $r;
    }

    /** A guess: the right key with one character more (a log of guesses would hold the key). */
    private function wrongKey(string $method, string $path): HttpResponse
    {
        return $this->request($method, $path, ['bearer' => $this->planted['API key (site)'] . 'x']);
    }

    private function wrongAdmin(string $method, string $path): HttpResponse
    {
        return $this->request($method, $path, ['basic' => [self::ADMIN_USER, $this->planted['admin password'] . 'x']]);
    }

    /** @return array{exit:int, out:string, err:string} */
    private function runCli(string $case, array $args, int $exit, ?string $envFile = null): array
    {
        $r = $this->cli($args, $envFile);
        $this->assertSame($exit, $r['exit'], "php/bin/amocrm " . implode(' ', $args) . " ($case)\n" . $this->mask($r['out'] . $r['err']));
        $this->said["php/bin/amocrm $case"] = "exit {$r['exit']}\n{$r['out']}\n{$r['err']}";
        $this->cases[] = $case;
        $this->noteTokens();
        return $r;
    }

    /** @return array<string, mixed> */
    private function refreshDirectly(string $refreshToken): array
    {
        $r = $this->emu()->http('POST', '/oauth2/access_token', [
            'client_id' => self::CLIENT_ID, 'client_secret' => $this->planted['client secret'], 'grant_type' => 'refresh_token',
            'refresh_token' => $refreshToken, 'redirect_uri' => $this->callbackUrl(),
        ]);
        $this->assertSame(200, $r['status'], $this->mask($r['body']));
        $this->noteToken($r['json']['access_token']);
        $this->noteToken($r['json']['refresh_token']);
        return $r['json'];
    }

    private function noteTokens(): void
    {
        $pair = is_file($this->tokenPath) ? json_decode((string) @file_get_contents($this->tokenPath), true) : null;
        foreach (['access_token', 'refresh_token'] as $k) {
            if (is_string($pair[$k] ?? null)) {
                $this->noteToken($pair[$k]);
            }
        }
    }

    private function noteToken(string $token): void
    {
        if (strlen($token) >= 16) {
            $this->tokens[$token] = true;
        }
    }

    // ---- searching ------------------------------------------------------

    /** @return array<string, string> needle => what it is */
    private function needles(): array
    {
        $needles = [];
        foreach ($this->planted as $what => $value) {
            $needles[$value] = $what;
            $needles[base64_encode($value)] = "$what (base64)";
        }
        $needles[base64_encode(self::ADMIN_USER . ':' . $this->planted['admin password'])] = 'the admin credential (Basic)';
        $needles['PLANTED'] = 'a planted value (a part of one)';
        $needles[$this->random] = 'a planted value (its random part)';
        foreach (array_keys($this->tokens) as $t) {
            $what = str_starts_with($t, 'def50200') ? 'a refresh token' : 'an access token';
            $needles[$t] = $what;
            $needles[substr($t, -24)] = "$what (its end)";
        }
        $needles[self::JWT_PREFIX] = 'an access token (its first 15 characters)';
        unset($needles['']);
        return $needles;
    }

    /** @return list<string> the hits in $text, described without the secret */
    private function hits(string $where, string $text): array
    {
        $hits = [];
        $masked = null;
        foreach ($this->needles() as $needle => $what) {
            if (strlen((string) $needle) >= 7 && stripos($text, (string) $needle) !== false) {
                $masked ??= $this->mask($text);
                $at = strpos($masked, "[$what") ?: 0;
                $hits[] = "$what in $where: …" . substr($masked, max(0, $at - 120), 300) . '…';
            }
        }
        preg_match_all('/def50200[0-9a-f]{7,}/', $text, $m);
        foreach ($m[0] as $found) {
            $isCode = false;
            foreach (array_keys($this->codes) as $code) {
                $isCode = $isCode || str_starts_with($code, $found) || str_starts_with($found, $code);
            }
            if (!$isCode) {
                $masked ??= $this->mask($text);
                $at = strpos($masked, '[a refresh token') ?: 0;
                $hits[] = "a refresh token (its first 15 characters) in $where: …" . substr($masked, max(0, $at - 120), 300) . '…';
                break;
            }
        }
        return $hits;
    }

    /** The text with every secret replaced by its name: safe for a failure message. */
    private function mask(string $text): string
    {
        $needles = $this->needles();
        uksort($needles, static fn ($a, $b) => strlen((string) $b) <=> strlen((string) $a));
        foreach ($needles as $needle => $what) {
            $text = str_ireplace((string) $needle, "[$what]", $text);
        }
        return (string) preg_replace_callback('/def50200[0-9a-f]{7,}/', fn (array $m): string => isset($this->codes[$m[0]]) ? '[a code]' : '[a refresh token]', $text);
    }

    /** @return list<string> every file this test's processes wrote, but for the secrets' holders */
    private function artefactFiles(): array
    {
        $files = [];
        foreach (new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($this->dir, \FilesystemIterator::SKIP_DOTS)) as $f) {
            if ($f->isFile() && !in_array($f->getPathname(), $this->holders, true)) {
                $files[] = $f->getPathname();
            }
        }
        sort($files);
        return $files;
    }

    /** Searches every artefact, records the row, and fails on any hit. */
    private function report(string $driven, string $searched): void
    {
        foreach ($this->servedRoutes ? $this->http()->log : [] as $r) {
            foreach ([$r->url, (string) $r->header('location')] as $url) {
                parse_str((string) parse_url($url, PHP_URL_QUERY), $q);
                if (is_string($q['code'] ?? null) && $q['code'] !== '') {
                    $this->codes[$q['code']] = true;
                }
            }
        }
        $hits = [];
        foreach ($this->said as $where => $text) {
            $hits = array_merge($hits, $this->hits($where, $text));
        }
        $files = $this->artefactFiles();
        foreach ($files as $file) {
            $hits = array_merge($hits, $this->hits(substr($file, strlen($this->dir) + 1), (string) file_get_contents($file)));
        }
        $this->assertNotEmpty($this->tokens, 'the test saw the emulator\'s tokens');
        Results::row('80-secrets', [$driven, count($this->cases), $searched . ' (' . count($files) . ' files, ' . count($this->tokens) . ' tokens and '
            . count($this->planted) . ' planted values)', count($hits)]);
        $this->assertSame([], $hits, count($hits) . " hit(s):\n" . implode("\n", array_slice($hits, 0, 30)));
    }

    /**
     * The snippet's $render($label, $value): every way PHP code shows a value
     * or an exception, to stdout.
     */
    private const RENDER = <<<'PHP'
        $render = static function (string $label, $x): void {
            echo "\n=== $label\n";
            var_dump($x);
            echo print_r($x, true), "\n";
            try { echo var_export($x, true), "\n"; } catch (\Throwable $e) { echo 'var_export: ', get_class($e), ': ', $e->getMessage(), "\n"; }
            echo json_encode($x, JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_UNESCAPED_SLASHES), "\n";
            try { echo serialize($x), "\n"; } catch (\Throwable $e) { echo 'serialize: ', get_class($e), ': ', $e->getMessage(), "\n"; }
            debug_zval_dump($x);
            if (is_object($x)) {
                var_dump((array) $x, get_object_vars($x));
            }
            for ($e = $x; $e instanceof \Throwable; $e = $e->getPrevious()) {
                echo (string) $e, "\n", $e->getMessage(), "\n", $e->getTraceAsString(), "\n", $e->getFile(), ':', $e->getLine(), "\n";
                var_dump($e->getTrace());
                if ($e instanceof AmoException) {
                    var_dump($e->getTitle(), $e->getDescription(), $e->getErrorCode(), $e->getValidationErrors(), $e->getLastRequestInfo());
                }
            }
        };

        PHP;

    /**
     * The extension's exceptions and objects, rendered; the tokens it saw are
     * written to HYGIENE_SEEN. The secrets are read inside hygiene_call()
     * (getenv), never passed down or captured by a closure: what a trace
     * shows of the test's own frames would otherwise hide what the
     * extension's show.
     */
    private const EXTENSION_CASES = <<<'PHP'
        function hygiene_control(string $method, string $path, $body = null)
        {
            $ctx = stream_context_create(['http' => ['method' => $method, 'ignore_errors' => true, 'header' => "Content-Type: application/json\r\n",
                'content' => $body === null ? '' : json_encode($body)]]);
            return json_decode((string) file_get_contents(getenv('HYGIENE_EMULATOR') . '/_emulator/' . $path, false, $ctx), true);
        }
        function hygiene_pair(): array
        {
            return json_decode(getenv('HYGIENE_PAIR'), true);
        }
        function hygiene_store(array $p): void
        {
            $path = getenv('AMOCRM_TOKEN_PATH');
            file_put_contents($path . '.tmp', json_encode($p));
            rename($path . '.tmp', $path);
        }
        /** The token file, the faults: before the case. */
        function hygiene_setup(string $label): void
        {
            $path = getenv('AMOCRM_TOKEN_PATH');
            $html403 = '<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>';
            $faults = [
                '500' => ['path' => '/api/v4/', 'action' => 'respond', 'status' => 500, 'body' => ['title' => 'x']],
                'an answer that is not JSON' => ['path' => '/api/v4/', 'action' => 'respond', 'status' => 200, 'body' => '<html>oops</html>', 'content_type' => 'text/html'],
                'a dropped connection (read)' => ['path' => '/api/v4/', 'action' => 'drop'],
                'a dropped connection (write)' => ['path' => '/api/v4/', 'action' => 'drop'],
                'a cut answer' => ['path' => '/api/v4/', 'action' => 'truncate'],
                '429' => ['path' => '/api/v4/', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html', 'body' => '<html>429</html>'],
                '403 account block' => ['path' => '/api/v4/', 'action' => 'respond', 'status' => 403, 'content_type' => 'text/html', 'body' => $html403],
                '401 twice (one refresh)' => ['path' => '/api/v4/', 'action' => 'respond', 'status' => 401, 'body' => ['title' => 'Unauthorized'], 'times' => 2],
                'exchangeCode: the token endpoint answers 500' => ['path' => '/oauth2/access_token', 'action' => 'respond', 'status' => 500, 'body' => ['hint' => 'x']],
            ];
            switch ($label) {
                case 'not authorized':
                    @unlink($path);
                    break;
                case 'a corrupt token file':
                    file_put_contents($path, '{"access_token": "' . substr(hygiene_pair()['access_token'], 0, 40));
                    break;
                case 'a token file that is not an object':
                    file_put_contents($path, json_encode([hygiene_pair()['access_token'], hygiene_pair()['refresh_token']]));
                    break;
                case '500':
                    hygiene_store(hygiene_pair());
                    break;
                case 'a refused refresh token':
                    hygiene_store(['refresh_token' => 'def50200' . bin2hex(random_bytes(40)), 'expires_at' => time() - 10] + hygiene_pair());
                    break;
            }
            if (isset($faults[$label])) {
                hygiene_control('POST', 'faults', $faults[$label]);
            }
        }
        /** The call that must throw. */
        function hygiene_call(string $label, AmoClient $amo)
        {
            $secret = getenv('HYGIENE_SECRET');
            $llt = getenv('HYGIENE_LLT');
            $pair = hygiene_pair();
            switch ($label) {
                case 'configure: an unknown key':
                    return AmoClient::configure(['client_secret' => $secret, 'no_such_key' => '1']);
                case 'configure: an invalid value':
                    return AmoClient::configure(['client_secret' => $secret, 'rate_limit' => 'abc']);
                case 'configure: a long-lived token without base_domain':
                    return AmoClient::configure(['long_lived_token' => $llt]);
                case 'configure: a long-lived token with a host outside allowed_domains':
                    return AmoClient::configure(['long_lived_token' => $llt, 'base_domain' => 'x.evil.example.com']);
                case 'importTokens: a host outside allowed_domains':
                    return $amo->importTokens(['base_domain' => 'x.evil.example.com'] + $pair);
                case 'importTokens: expires_at out of range':
                    return $amo->importTokens(['expires_at' => 99999999999] + $pair);
                case 'importTokens: a token with a control character':
                    return $amo->importTokens(['refresh_token' => $pair['refresh_token'] . "\x01"] + $pair);
                case 'refreshToken with a corrupt token file':
                case 'refreshToken(true), refused':
                    return $amo->refreshToken(true);
                case 'an answer that is not JSON':
                case 'a cut answer':
                    return $amo->account();
                case 'a dropped connection (read)':
                    return $amo->leads()->getOne(1);
                case 'a dropped connection (write)':
                    return $amo->leads()->addOne(['name' => 'x']);
                case 'a validation error':
                    return $amo->leads()->add([['name' => 'x', 'status_id' => 999999, 'pipeline_id' => 1001]]);
                case '404':
                    return $amo->request('GET', '/api/v4/no-such-list');
                case 'a bad argument':
                    return $amo->leads()->getOne('not-an-id');
                case 'a body PHP cannot send':
                    return $amo->request('POST', '/api/v4/leads', [['name' => NAN]]);
                case 'an iterator failing on its second page':
                    $amo->leads()->add([['name' => 'a'], ['name' => 'b']]);
                    foreach ($amo->leads()->iterate(['limit' => 1]) as $lead) {
                        hygiene_control('POST', 'faults', ['path' => '/api/v4/leads', 'action' => 'respond', 'status' => 502, 'body' => 'bad gateway']);
                    }
                    return null;
                case 'exchangeCode: a code amoCRM refuses':
                    return $amo->exchangeCode('refused-code', getenv('HYGIENE_REFERER'));
                case 'exchangeCode: a referer outside allowed_domains':
                    return $amo->exchangeCode('some-code', 'evil.example.com');
                case 'exchangeCode: the token endpoint answers 500':
                    return $amo->exchangeCode(hygiene_control('POST', 'code')['code'], getenv('HYGIENE_REFERER'));
                default:
                    return $amo->leads()->get();
            }
        }
        function hygiene_note(array &$seen): void
        {
            $path = getenv('AMOCRM_TOKEN_PATH');
            $p = is_file($path) ? json_decode((string) file_get_contents($path), true) : null;
            foreach (['access_token', 'refresh_token'] as $k) {
                if (is_string($p[$k] ?? null)) {
                    $seen[] = $p[$k];
                }
            }
        }

        $seen = [hygiene_pair()['access_token'], hygiene_pair()['refresh_token']];
        $amo = AmoClient::getInstance();
        $classes = [];
        $labels = [];
        $exceptions = 0;
        foreach ([
            'configure: an unknown key', 'configure: an invalid value', 'configure: a long-lived token without base_domain',
            'configure: a long-lived token with a host outside allowed_domains',
            'importTokens: a host outside allowed_domains', 'importTokens: expires_at out of range', 'importTokens: a token with a control character',
            'not authorized', 'a corrupt token file', 'refreshToken with a corrupt token file', 'a token file that is not an object',
            '500', 'an answer that is not JSON', 'a dropped connection (read)', 'a dropped connection (write)', 'a cut answer', '429',
            '403 account block', 'a validation error', '404', 'a bad argument', 'a body PHP cannot send', 'an iterator failing on its second page',
            '401 twice (one refresh)', 'exchangeCode: a code amoCRM refuses', 'exchangeCode: a referer outside allowed_domains',
            'exchangeCode: the token endpoint answers 500', 'a refused refresh token', 'a refused refresh token, again (no token call)',
            'refreshToken(true), refused',
        ] as $label) {
            hygiene_setup($label);
            try {
                hygiene_call($label, $amo);
                throw new RuntimeException("$label did not throw");
            } catch (AmoException $e) {
                $exceptions++;
                $labels[] = $label;
                $classes[get_class($e)] = true;
                $render($label, $e);
            } finally {
                hygiene_control('DELETE', 'faults');
                hygiene_note($seen);
            }
        }

        // The objects, with a fresh pair.
        $fresh = hygiene_control('POST', 'tokens');
        $amo->importTokens(['access_token' => $fresh['access_token'], 'refresh_token' => $fresh['refresh_token'], 'expires_at' => time() + 86400, 'updated_at' => time()] + hygiene_pair());
        unset($fresh);
        hygiene_note($seen);
        $it = $amo->leads()->iterate(['limit' => 1]);
        foreach ($it as $lead) {
            break;
        }
        $objects = [];
        foreach ([
            'AmoClient::getInstance()' => $amo,
            'withContextUser(1001)' => $amo->withContextUser(1001),
            'leads()' => $amo->leads(),
            'notes(leads)' => $amo->notes('leads'),
            'customFields(leads)' => $amo->customFields('leads'),
            'webhooks()' => $amo->webhooks(),
            'unsorted()' => $amo->unsorted(),
            'links(leads)' => $amo->links('leads'),
            'widgets()' => $amo->widgets(),
            'products()' => $amo->products(),
            'transactions()' => $amo->transactions(),
            'customersBonusPoints()' => $amo->customersBonusPoints(),
            'entitySubscriptions(leads, 1)' => $amo->entitySubscriptions('leads', 1),
            'websiteButtons()' => $amo->websiteButtons(),
            'chatTemplates()' => $amo->chatTemplates(),
            'talks()' => $amo->talks(),
            'an iterator' => $it,
            'tokenStatus()' => $amo->tokenStatus(),
            'metrics()' => $amo->metrics(),
            'account()' => $amo->account(),
            'refreshToken(true)' => $amo->refreshToken(true),
        ] as $label => $value) {
            $render($label, $value);
            $objects[] = $label;
        }
        hygiene_note($seen);
        file_put_contents(getenv('HYGIENE_SEEN'), json_encode(array_values(array_unique($seen))));
        return ['exceptions' => $exceptions, 'labels' => $labels, 'classes' => array_keys($classes), 'objects' => $objects];
        PHP;
}
