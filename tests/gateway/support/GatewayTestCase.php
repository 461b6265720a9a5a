<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

use AmoCRM\Tests\Emulator;
use PHPUnit\Framework\TestCase;

/**
 * The gateway on a real web server against the amoCRM emulator, one of each
 * per test, with a private folder for the .env, the token file and the data
 * dir. Everything starts lazily on first use, so a test can choose extra
 * .env keys or emulator flags first (configure()); everything is stopped in
 * tearDown, also after a failure.
 */
abstract class GatewayTestCase extends TestCase
{
    public const CLIENT_ID = 'emulator-client-id';
    public const CLIENT_SECRET = 'emulator-client-secret';
    public const API_KEY = 'site-key-7f3a9c1e5b2d4f60';
    public const OTHER_API_KEY = 'crm-sync-key-0b8e2d4a6c1f3e57';
    public const ADMIN_USER = 'admin';
    public const ADMIN_PASSWORD = 'correct-horse-battery-staple';
    /** The old API key of the emulated account's admin@example.com. */
    public const AMOCRM_LOGIN = 'admin@example.com';
    public const AMOCRM_USER_API_KEY = 'emulator-api-key';

    protected string $root;
    protected string $dir;
    protected string $envFile;
    protected string $tokenPath;
    protected string $dataDir;
    protected string $jsonl;
    protected int $port;
    protected string $gatewaySecret;
    protected string $webhookSecret;

    private ?Emulator $emulator = null;
    /** @var list<Emulator> */
    private array $extraEmulators = [];
    private ?GatewayServer $server = null;
    private ?HttpClient $client = null;
    /** @var array<string, string> */
    private array $envOverrides = [];
    /** @var list<string> */
    private array $emulatorArgs = [];
    /** @var list<string> tokens this test saw; none may appear in an answer */
    private array $secrets = [];

    protected function setUp(): void
    {
        $this->root = dirname(__DIR__, 3);
        $this->dir = sys_get_temp_dir() . '/amocrm-gw-' . bin2hex(random_bytes(6));
        mkdir($this->dir, 0700);
        $this->envFile = $this->dir . '/gateway.env';
        $this->tokenPath = $this->dir . '/tokens.json';
        $this->dataDir = $this->dir . '/var';
        $this->jsonl = $this->dir . '/webhooks.jsonl';
        $this->port = Proc::freePort();
        $this->gatewaySecret = bin2hex(random_bytes(24));
        $this->webhookSecret = 'wh_' . bin2hex(random_bytes(12));
        $this->secrets = [self::CLIENT_SECRET, $this->gatewaySecret, self::ADMIN_PASSWORD, self::API_KEY, self::OTHER_API_KEY, $this->webhookSecret, self::AMOCRM_USER_API_KEY];
    }

    /** The test method's name, on PHPUnit 9.6 (Debian 12) and 11 (Debian 13, `./build.sh test --php 8.4`). */
    protected function currentTestName(): string
    {
        return method_exists($this, 'name') ? $this->name() : $this->getName(false);
    }

    /** Whether the test body passed (tearDown runs after the outcome is known on both PHPUnits). */
    protected function currentTestPassed(): bool
    {
        return method_exists($this, 'status')
            ? $this->status()->isSuccess()
            : $this->getStatus() === \PHPUnit\Runner\BaseTestRunner::STATUS_PASSED;
    }

    protected function tearDown(): void
    {
        $passed = $this->currentTestPassed();
        if (!$passed && $this->server !== null) {
            // The logs live in the test's folder, which goes away below.
            fwrite(STDERR, "\n--- {$this->server->label()} logs of " . $this->currentTestName() . " ---\n" . $this->server->logs() . "\n");
        }
        try {
            if ($passed && $this->client !== null) {
                $this->assertNoSecretInAnswers();
            }
            if ($passed && $this->server !== null) {
                $this->assertSame([], $this->server->phpErrors(), 'the gateway caused PHP warnings or errors (' . $this->server->label() . ')');
                $this->storedPair();
                $this->assertSecretsAbsent($this->server->errorLog(), 'the gateway\'s error log (' . $this->server->label() . ')');
            }
        } finally {
            $this->server?->stop();
            $this->server = null;
            $this->emulator?->stop();
            $this->emulator = null;
            foreach ($this->extraEmulators as $e) {
                $e->stop();
            }
            $this->extraEmulators = [];
            self::removeTree($this->dir);
        }
    }

    /** The kind of server; subclasses choose. */
    protected function createServer(): GatewayServer
    {
        return new PhpBuiltinServer($this->root, $this->port, $this->envFile, $this->dir);
    }

    /**
     * Extra .env keys (null removes a default) and emulator flags; only before
     * the emulator and the server start.
     *
     * @param array<string, string|null> $env
     * @param list<string> $emulatorArgs
     */
    protected function configure(array $env = [], array $emulatorArgs = []): void
    {
        if ($this->emulator !== null && $emulatorArgs !== []) {
            throw new \LogicException('configure() emulator flags before the emulator starts');
        }
        if ($this->server !== null && array_filter(array_keys($env), static fn ($k) => str_starts_with((string) $k, 'AMOCRM_'))) {
            // php-fpm workers keep their AmoClient configuration for life.
            throw new \LogicException('configure() AMOCRM_* keys before the server starts');
        }
        $this->envOverrides = array_merge($this->envOverrides, $env);
        $this->emulatorArgs = array_merge($this->emulatorArgs, $emulatorArgs);
        if ($this->emulator !== null) {
            $this->writeEnv();
        }
    }

    protected function emu(): Emulator
    {
        if ($this->emulator === null) {
            $this->emulator = Emulator::start('127.0.0.1', array_merge(
                ['--redirect-uri', $this->callbackUrl()],
                $this->emulatorArgs
            ));
            $this->writeEnv();
        }
        return $this->emulator;
    }

    /**
     * A second emulator, e.g. on 127.0.0.2 as a trap that must see no
     * connection, or another amoCRM account (with its flags).
     * @param list<string> $args
     */
    protected function extraEmulator(string $host, array $args = []): Emulator
    {
        $e = Emulator::start($host, $args);
        $this->extraEmulators[] = $e;
        return $e;
    }

    protected function server(): GatewayServer
    {
        if ($this->server === null) {
            $this->emu();
            $server = $this->createServer();
            $server->start();
            $this->server = $server;
        }
        return $this->server;
    }

    protected function http(): HttpClient
    {
        if ($this->client === null) {
            $this->client = new HttpClient($this->server()->baseUrl());
        }
        return $this->client;
    }

    protected function baseUrl(): string
    {
        return 'http://127.0.0.1:' . $this->port;
    }

    protected function callbackUrl(): string
    {
        return $this->baseUrl() . '/oauth/callback';
    }

    /** @return array<string, string> the .env keys of this test */
    protected function envValues(): array
    {
        $env = [
            'AMOCRM_CLIENT_ID' => self::CLIENT_ID,
            'AMOCRM_CLIENT_SECRET' => self::CLIENT_SECRET,
            'AMOCRM_REDIRECT_URI' => $this->callbackUrl(),
            'AMOCRM_TOKEN_PATH' => $this->tokenPath,
            'AMOCRM_ALLOWED_DOMAINS' => 'localhost',
            'AMOCRM_INSECURE_HTTP' => '1',
            'AMOCRM_OAUTH_HOST' => 'localhost:' . $this->emu()->port,
            'AMOCRM_CONNECT_TIMEOUT' => '2',
            'AMOCRM_TIMEOUT' => '10',
            'AMOCRM_MAX_RETRIES' => '2',
            'AMOCRM_RETRY_BACKOFF_MS' => '50',
            'GATEWAY_API_KEYS' => self::API_KEY . ',' . self::OTHER_API_KEY,
            'GATEWAY_ADMIN_USER' => self::ADMIN_USER,
            'GATEWAY_ADMIN_PASSWORD' => self::ADMIN_PASSWORD,
            'GATEWAY_SECRET' => $this->gatewaySecret,
            'GATEWAY_WEBHOOK_SECRET' => $this->webhookSecret,
            'GATEWAY_DATA_DIR' => $this->dataDir,
            'GATEWAY_FIELD_MAP' => $this->fieldMapFile(),
            'GATEWAY_DEFAULT_PIPELINE_ID' => '1001',
            'GATEWAY_DEFAULT_STATUS_ID' => '10001',
            'GATEWAY_DEFAULT_RESPONSIBLE_USER_ID' => '1001',
            'GATEWAY_WEBHOOK_HANDLERS' => 'jsonl:' . $this->jsonl,
        ];
        foreach ($this->envOverrides as $k => $v) {
            if ($v === null) {
                unset($env[$k]);
            } else {
                $env[$k] = $v;
            }
        }
        return $env;
    }

    /** Writes the .env; later calls take effect on the next request (GATEWAY_* keys). */
    protected function writeEnv(?array $values = null): void
    {
        $lines = ['# written by ' . static::class . '::' . $this->currentTestName()];
        foreach ($values ?? $this->envValues() as $k => $v) {
            $lines[] = "$k=$v";
        }
        $tmp = $this->envFile . '.tmp';
        file_put_contents($tmp, implode("\n", $lines) . "\n");
        chmod($tmp, 0600);
        rename($tmp, $this->envFile);
    }

    /** The field map of the tests: the UTM fields of amoCRM's leads, a contact field. */
    private function fieldMapFile(): string
    {
        $f = $this->dir . '/fields.php';
        if (!is_file($f)) {
            file_put_contents($f, "<?php\nreturn " . var_export([
                'utm_source' => ['entity' => 'leads', 'field_code' => 'UTM_SOURCE'],
                'utm_medium' => ['entity' => 'leads', 'field_code' => 'UTM_MEDIUM'],
                'utm_campaign' => ['entity' => 'leads', 'field_code' => 'UTM_CAMPAIGN'],
                'position' => ['entity' => 'contacts', 'field_code' => 'POSITION'],
            ], true) . ";\n");
        }
        return $f;
    }

    // ---- requests -------------------------------------------------------

    /** @param array<string, mixed> $opts see HttpClient */
    protected function request(string $method, string $path, array $opts = []): HttpResponse
    {
        return $this->http()->request($method, $path, $opts);
    }

    /** With the API key. */
    protected function api(string $method, string $path, array $opts = []): HttpResponse
    {
        return $this->request($method, $path, $opts + ['bearer' => self::API_KEY]);
    }

    /** With the admin credential. */
    protected function admin(string $method, string $path, array $opts = []): HttpResponse
    {
        return $this->request($method, $path, $opts + ['basic' => [self::ADMIN_USER, self::ADMIN_PASSWORD]]);
    }

    // ---- tokens ---------------------------------------------------------

    /**
     * The quick path: a pair minted by the emulator, written as the gateway
     * would have stored it (like AmoTestCase::seedTokens).
     * @return array{access_token:string, refresh_token:string, expires_at:int, base_domain:string, updated_at:int}
     */
    protected function seedTokens(int $expiresIn = 86400, int $age = 0): array
    {
        $t = $this->emu()->mintTokens();
        $pair = [
            'access_token' => $t['access_token'],
            'refresh_token' => $t['refresh_token'],
            'expires_at' => time() + $expiresIn,
            'base_domain' => $this->emu()->referer(),
            'updated_at' => time() - $age,
        ];
        $this->secrets[] = $t['access_token'];
        $this->secrets[] = $t['refresh_token'];
        $this->writeTokenFile($pair);
        return $pair;
    }

    /** Values no answer, log or output of this test may contain (tokens a test made itself). */
    protected function rememberSecrets(string ...$values): void
    {
        foreach ($values as $v) {
            $this->secrets[] = $v;
        }
    }

    /**
     * One simulated day passes: the extension runs on the real clock, so the
     * emulator's clock moves a day forward and the token file is rewritten as
     * if written a day earlier.
     */
    protected function dayPasses(): void
    {
        $this->emu()->control('POST', 'clock', ['advance' => 86400]);
        $pair = $this->storedPair();
        $pair['expires_at'] -= 86400;
        $pair['updated_at'] -= 86400;
        $this->writeTokenFile($pair);
    }

    protected function writeTokenFile(array $pair): void
    {
        $tmp = $this->tokenPath . '.test-tmp';
        file_put_contents($tmp, json_encode($pair));
        chmod($tmp, 0600);
        rename($tmp, $this->tokenPath);
    }

    /** @return array<string, mixed>|null */
    protected function storedPair(): ?array
    {
        if (!is_file($this->tokenPath)) {
            return null;
        }
        $pair = json_decode((string) file_get_contents($this->tokenPath), true);
        $this->assertIsArray($pair, 'the token file holds a JSON object');
        foreach (['access_token', 'refresh_token'] as $k) {
            if (is_string($pair[$k] ?? null)) {
                $this->secrets[] = $pair[$k];
            }
        }
        return $pair;
    }

    /**
     * The whole OAuth flow as a browser does it: /oauth/authorize (admin) →
     * the emulator's consent page → its Allow (or Deny) form → the 302 back
     * to the gateway's /oauth/callback, sent with the state cookie.
     *
     * @return array{authorize: HttpResponse, consent: HttpResponse, decision: HttpResponse, callbackUrl: string}
     */
    protected function consent(string $decision = 'allow', ?Emulator $amocrm = null, string $authorizeQuery = ''): array
    {
        $amocrm ??= $this->emu();
        $authorize = $this->admin('GET', '/oauth/authorize' . $authorizeQuery);
        $this->assertSame(302, $authorize->status, $authorize->describe());
        $location = (string) $authorize->header('location');
        $this->assertStringStartsWith('http://localhost:' . $amocrm->port . '/oauth?', $location, 'the consent page of the configured amoCRM host');
        $consent = $this->http()->request('GET', $location);
        $this->assertSame(200, $consent->status, $consent->describe());
        $this->assertStringContainsString('<title>Предоставить доступ</title>', $consent->body);
        preg_match_all('#<input type="hidden" name="([^"]+)" value="([^"]*)">#', $consent->body, $m, PREG_SET_ORDER);
        $form = ['decision' => $decision];
        foreach ($m as $input) {
            $form[$input[1]] = html_entity_decode($input[2], ENT_QUOTES | ENT_HTML5);
        }
        $this->assertArrayHasKey('state', $form, 'the consent page carries the state');
        $decisionAnswer = $this->http()->request('POST', $amocrm->url('/oauth/decision'), ['form' => $form]);
        $this->assertSame(302, $decisionAnswer->status, $decisionAnswer->describe());
        $callback = (string) $decisionAnswer->header('location');
        $this->assertStringStartsWith($this->callbackUrl() . '?', $callback);
        return ['authorize' => $authorize, 'consent' => $consent, 'decision' => $decisionAnswer, 'callbackUrl' => $callback];
    }

    /** The whole flow, allowed; returns the callback's answer. */
    protected function authorizeThroughConsent(): HttpResponse
    {
        $flow = $this->consent('allow');
        $answer = $this->admin('GET', $flow['callbackUrl']);
        $this->storedPair();
        return $answer;
    }

    /** The gateway's lines in its error log (Log::write), as the server wrote them so far. */
    protected function gatewayLog(): string
    {
        return implode("\n", preg_grep('/amocrm gateway: /', explode("\n", $this->server()->errorLog())) ?: []);
    }

    /** Waits (bounded) until a line of the gateway's log matches $pattern; returns that line. */
    protected function assertLogged(string $pattern, string $what): string
    {
        return $this->eventually(
            fn () => array_values(preg_grep($pattern, explode("\n", $this->gatewayLog())) ?: [])[0] ?? null,
            "a line in the gateway's log: $what ($pattern)"
        );
    }

    // ---- the CLI --------------------------------------------------------

    /**
     * php -n -d extension=$AMOCRM_EXT php/bin/amocrm <args>, with GATEWAY_ENV_FILE.
     * @param list<string> $args
     * @param array<string, string> $extraEnv more environment variables
     * @param ?string $stdin what the command reads on stdin (default: nothing, /dev/null)
     * @return array{exit:int, out:string, err:string}
     */
    protected function cli(array $args, ?string $envFile = null, array $extraEnv = [], ?string $stdin = null): array
    {
        $this->emu();
        $r = Proc::run(
            array_merge([PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT'), '-d', 'display_errors=stderr',
                $this->root . '/php/bin/amocrm'], $args),
            ['PATH' => getenv('PATH') ?: '/usr/bin:/bin', 'GATEWAY_ENV_FILE' => $envFile ?? $this->envFile] + $extraEnv,
            60,
            $this->root,
            $stdin
        );
        foreach ([$r['out'], $r['err']] as $text) {
            $this->assertSecretsAbsent($text, 'php/bin/amocrm ' . implode(' ', $args));
        }
        return $r;
    }

    // ---- emulator helpers -----------------------------------------------

    protected function apiCallCount(): int
    {
        return (int) array_sum($this->emu()->stats()['api_calls'] ?? []);
    }

    protected function tokenCallCount(): int
    {
        return (int) array_sum($this->emu()->stats()['token_calls'] ?? []);
    }

    /** @return list<array<string, mixed>> */
    protected function entities(string $name): array
    {
        $r = $this->emu()->http('GET', '/_emulator/' . ($name === 'leads' ? 'leads' : "entities/$name"));
        $this->assertSame(200, $r['status'], $r['body']);
        return is_array($r['json']) ? $r['json'] : [];
    }

    /** @return array<string, mixed>|null */
    protected function entity(string $name, int $id): ?array
    {
        foreach ($this->entities($name) as $e) {
            if (($e['id'] ?? null) === $id) {
                return $e;
            }
        }
        return null;
    }

    /** Custom field values of an entity by field_code: code => list of values. */
    protected static function customFields(array $entity): array
    {
        $out = [];
        foreach ($entity['custom_fields_values'] ?? [] as $f) {
            $out[$f['field_code'] ?? (string) ($f['field_id'] ?? '')] = array_map(static fn ($v) => $v['value'] ?? null, $f['values'] ?? []);
        }
        return $out;
    }

    // ---- assertions -----------------------------------------------------

    protected function assertProblem(HttpResponse $r, int $status, ?string $field = null): array
    {
        $this->assertSame($status, $r->status, $r->describe());
        $this->assertSame('application/problem+json', $r->contentType(), $r->describe());
        $p = $r->json();
        $this->assertIsArray($p, $r->describe());
        foreach (['type', 'title', 'status'] as $k) {
            $this->assertArrayHasKey($k, $p, $r->describe());
        }
        $this->assertSame($status, $p['status'], $r->describe());
        if ($field !== null) {
            $this->assertArrayHasKey('field', $p, $r->describe());
            if (str_ends_with($field, '*')) {
                $this->assertStringStartsWith(rtrim($field, '*'), (string) $p['field'], $r->describe());
            } else {
                $this->assertSame($field, $p['field'], $r->describe());
            }
        }
        return $p;
    }

    protected function assertJsonAnswer(HttpResponse $r, int $status): array
    {
        $this->assertSame($status, $r->status, $r->describe());
        $this->assertSame('application/json', $r->contentType(), $r->describe());
        $j = $r->json();
        $this->assertIsArray($j, $r->describe());
        return $j;
    }

    protected function assertSecretsAbsent(string $text, string $where): void
    {
        foreach (array_unique($this->secrets) as $s) {
            if ($s !== '' && str_contains($text, $s)) {
                $this->fail("a secret (" . substr($s, 0, 6) . "…) appears in $where");
            }
        }
    }

    /** No stored token, no client secret, no gateway secret in any answer this test received. */
    protected function assertNoSecretInAnswers(): void
    {
        $this->storedPair();
        foreach ($this->client?->log ?? [] as $r) {
            $head = '';
            foreach ($r->headers as $k => $vs) {
                $head .= "$k: " . implode("\n$k: ", $vs) . "\n";
            }
            $this->assertSecretsAbsent($head . "\n" . $r->body, "the answer to {$r->method} {$r->url}");
        }
        $this->addToAssertionCount(1);
    }

    /** Polls $check (bounded) until it returns a non-null value. */
    protected function eventually(callable $check, string $what, float $timeout = 10.0): mixed
    {
        $deadline = microtime(true) + $timeout;
        do {
            $v = $check();
            if ($v !== null && $v !== false) {
                return $v;
            }
            usleep(20000);
        } while (microtime(true) < $deadline);
        $this->fail("timed out after {$timeout} s waiting for $what");
    }

    /** @return list<string> spool files in pending|done|failed */
    protected function spool(string $state): array
    {
        $files = glob($this->dataDir . "/webhooks/$state/*.json") ?: [];
        sort($files);
        return $files;
    }

    protected static function removeTree(string $dir): void
    {
        if (!is_dir($dir) || is_link($dir)) {
            @unlink($dir);
            return;
        }
        foreach (scandir($dir) ?: [] as $f) {
            if ($f !== '.' && $f !== '..') {
                self::removeTree("$dir/$f");
            }
        }
        @rmdir($dir);
    }
}
