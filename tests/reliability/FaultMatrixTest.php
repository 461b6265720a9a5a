<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\Gateway\GatewayTestCase;
use AmoCRM\Tests\PhpProcess;
use AmoCRM\Tests\TlsFront;
use PHPUnit\Framework\Attributes\DataProvider;

/**
 * Issue 8.1, the fault matrix: every way amoCRM, the network or the token
 * endpoint can fail, against a GET, a PATCH and a POST, through the
 * extension and through the gateway's routes. Each fault lasts for the whole
 * cell (every attempt meets it). Each cell records what the caller saw, and
 * asserts what must hold whatever the fault: PHP stays up without a warning,
 * the token file is unchanged or validly replaced, amoCRM applied the write
 * at most once, and the time stays within the configured timeouts.
 */
final class FaultMatrixTest extends GatewayTestCase
{
    private const KEY = '10-fault-matrix';
    /** The cells' client settings: short, so that a slow answer costs seconds. */
    private const TIMEOUT = 1;
    private const CONNECT_TIMEOUT = 1;
    private const MAX_RETRIES = 1;
    private const BACKOFF_MS = 10;
    /** What a PHP process and the gateway add to the requests' own time. */
    private const SLACK = 2.5;

    private const NGINX_502 = '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>';
    private const BLOCK_PAGE = '<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>';
    private const TOO_MANY = '<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1></center><hr><center>nginx</center></body></html>';

    public static function setUpBeforeClass(): void
    {
        Results::section(self::KEY, 'Fault matrix',
            'Every fault lasts for the whole cell: each attempt meets it. The client runs with timeout ' . self::TIMEOUT
            . ' s, connect_timeout ' . self::CONNECT_TIMEOUT . ' s, max_retries ' . self::MAX_RETRIES
            . ' and retry_backoff_ms ' . self::BACKOFF_MS . '. GET is `leads()->getOne()` / `GET /api/leads/{id}`, '
            . 'PATCH is `leads()->updateOne()` / `PATCH /api/leads/{id}`, POST is `leads()->addComplex()` / `POST /api/leads`. '
            . '"Token endpoint" faults meet a refresh: the stored pair has expired. "Applied" is how many times the emulator '
            . 'applied the write (its handler answered 2xx); "token file" compares the file before and after (a replaced '
            . 'file must parse and hold a refresh token the emulator accepts); "bound" is the most the configured timeouts allow.',
            ['layer', 'verb', 'fault', 'what the caller got', 'message', 'PHP up, no warning', 'token file', 'applied', 'seconds', 'bound']);
    }

    /**
     * The faults: name => [kind, the emulator's fault rule (its path and
     * method are the cell's own unless it says)].
     * @return array<string, array{0: string, 1: array<string, mixed>}>
     */
    private static function faults(): array
    {
        $html = static fn (int $status, string $page): array => ['action' => 'respond', 'status' => $status, 'content_type' => 'text/html', 'body' => $page];
        $token = ['path' => '/oauth2/access_token', 'method' => 'POST'];
        return [
            'answer slower than timeout' => ['api', ['action' => 'delay', 'delay_ms' => 2500]],
            'reset before the headers' => ['api', ['action' => 'reset']],
            'reset in the middle of the body' => ['api', ['action' => 'reset_body']],
            '500 (JSON)' => ['api', ['action' => 'respond', 'status' => 500, 'body' => ['title' => 'Internal Server Error', 'status' => 500]]],
            '502 (nginx page)' => ['api', $html(502, self::NGINX_502)],
            '503 (nginx page)' => ['api', $html(503, str_replace('502 Bad Gateway', '503 Service Temporarily Unavailable', self::NGINX_502))],
            '504 (nginx page)' => ['api', $html(504, str_replace('502 Bad Gateway', '504 Gateway Time-out', self::NGINX_502))],
            'HTML 429' => ['api', $html(429, self::TOO_MANY)],
            '403 block page' => ['api', $html(403, self::BLOCK_PAGE)],
            'truncated JSON' => ['api', ['action' => 'truncate']],
            'empty 200' => ['api', ['action' => 'respond', 'status' => 200, 'content_type' => 'application/json']],
            '50 MB body' => ['api', ['action' => 'respond', 'status' => 200, 'body_size' => 50 << 20]],
            'body not UTF-8' => ['api', ['action' => 'respond', 'status' => 200, 'content_type' => 'application/json',
                'body_base64' => base64_encode("{\"_page\":1,\"name\":\"\xC7\xE0\xFF\xE2\xEA\xE0\"}")]],
            'token endpoint down' => ['token', $token + ['action' => 'reset']],
            'token endpoint slow' => ['token', $token + ['action' => 'delay', 'delay_ms' => 2500]],
            'token endpoint answers garbage' => ['token', $token + ['action' => 'respond', 'status' => 200, 'content_type' => 'text/html', 'body' => '<html><body>Service unavailable</body></html>']],
            'token answer without refresh_token' => ['token', $token + ['action' => 'respond', 'status' => 200,
                'body' => ['token_type' => 'Bearer', 'expires_in' => 86400, 'access_token' => 'eyJ0eXAiOiJKV1Qi.e30.sig']]],
            'TLS certificate of an untrusted CA' => ['tls', []],
            'DNS does not resolve' => ['dns', []],
        ];
    }

    /** @return array<string, array{0: string, 1: string, 2: string}> */
    public static function cells(): array
    {
        $out = [];
        foreach (['extension', 'gateway'] as $layer) {
            foreach (['GET', 'PATCH', 'POST'] as $verb) {
                foreach (array_keys(self::faults()) as $fault) {
                    $out["$layer $verb $fault"] = [$layer, $verb, $fault];
                }
            }
        }
        return $out;
    }

    /** @dataProvider cells */
    #[DataProvider('cells')]
    public function testCell(string $layer, string $verb, string $fault): void
    {
        [$kind, $rule] = self::faults()[$fault];
        $env = ['AMOCRM_TIMEOUT' => (string) self::TIMEOUT, 'AMOCRM_CONNECT_TIMEOUT' => (string) self::CONNECT_TIMEOUT,
            'AMOCRM_MAX_RETRIES' => (string) self::MAX_RETRIES, 'AMOCRM_RETRY_BACKOFF_MS' => (string) self::BACKOFF_MS];
        $tls = null;
        if ($kind === 'tls') {
            $tls = new TlsFront($this->dir . '/tls', $this->emu()->port);
            $env += ['AMOCRM_INSECURE_HTTP' => '0'];
        }
        if ($kind === 'dns') {
            $env += ['AMOCRM_INSECURE_HTTP' => '0', 'AMOCRM_ALLOWED_DOMAINS' => 'localhost,amocrm.ru'];
        }
        $this->configure($env);
        try {
            $pair = $this->seedTokens($kind === 'token' ? -60 : 3600);
            $leadId = $this->leadAtTheEmulator($pair['access_token']);
            if ($kind === 'tls' || $kind === 'dns') {
                $pair['base_domain'] = $kind === 'tls' ? 'localhost:' . $tls->port : 'no-such-account.amocrm.ru';
                $this->writeTokenFile($pair);
            }
            if ($kind === 'api') {
                $this->emu()->fault($rule + self::target($verb, $leadId));
            } elseif ($kind === 'token') {
                $this->emu()->fault($rule);
            }
            $before = (string) file_get_contents($this->tokenPath);
            $applied = $this->applied($verb);

            $started = microtime(true);
            $seen = $layer === 'extension'
                ? $this->throughTheExtension($verb, $leadId, $kind === 'dns')
                : $this->throughTheGateway($verb, $leadId, $kind === 'dns');
            // A delayed request is still being handled after the client gave
            // up: count what amoCRM applied once it is done.
            if (isset($rule['delay_ms'])) {
                $attempts = $verb === 'GET' ? 1 + self::MAX_RETRIES : 1;
                usleep((int) max(0, ($started + $rule['delay_ms'] / 1000 * $attempts + 0.3 - microtime(true)) * 1e6));
            }
            $applied = $this->applied($verb) - $applied;
            $file = $this->tokenFile($before);
            $attempts = 1 + self::MAX_RETRIES;
            $bound = $attempts * (self::CONNECT_TIMEOUT + self::TIMEOUT + self::BACKOFF_MS * 3 / 1000)
                + ($kind === 'token' ? self::CONNECT_TIMEOUT + self::TIMEOUT : 0) + self::SLACK;
            Results::row(self::KEY, [$layer, $verb, $fault, $seen['outcome'], self::short($seen['message']),
                $seen['clean'], $file, $applied, sprintf('%.2f', $seen['seconds']), sprintf('%.1f', $bound)]);

            $this->assertTrue($seen['clean'], "PHP stayed up without a warning: {$seen['problem']}");
            $this->assertStringNotContainsString('INVALID', $file, 'the token file is unchanged or validly replaced');
            $this->assertLessThanOrEqual(1, $applied, 'amoCRM applied the write at most once');
            $this->assertLessThanOrEqual($bound, $seen['seconds'], 'the time stays within the configured timeouts');
            $this->assertNotSame('success', $seen['outcome'], 'a fault that lasts is not hidden');
        } finally {
            $tls?->stop();
        }
    }

    /** The path and method of the cell's request at amoCRM. */
    private static function target(string $verb, int $leadId): array
    {
        return $verb === 'POST'
            ? ['path' => '/api/v4/leads/complex', 'method' => 'POST']
            : ['path' => "/api/v4/leads/$leadId", 'method' => $verb];
    }

    /** A lead to read and patch, made at the emulator directly. */
    private function leadAtTheEmulator(string $accessToken): int
    {
        $r = $this->emu()->http('POST', '/api/v4/leads', [['name' => 'Fault matrix']], ['Authorization: Bearer ' . $accessToken]);
        $this->assertSame(200, $r['status'], $r['body']);
        return (int) $r['json']['_embedded']['leads'][0]['id'];
    }

    private function applied(string $verb): int
    {
        return (int) ($this->emu()->stats()['api_writes_applied'][$verb] ?? 0);
    }

    /** "unchanged", "replaced (valid)", or a description with INVALID in it. */
    private function tokenFile(string $before): string
    {
        $now = (string) @file_get_contents($this->tokenPath);
        if ($now === $before) {
            return 'unchanged';
        }
        $pair = json_decode($now, true);
        if (!is_array($pair) || !is_string($pair['refresh_token'] ?? null)) {
            return 'replaced, INVALID: does not parse';
        }
        $check = $this->emu()->check(['refresh_token' => $pair['refresh_token']]);
        $this->storedPair(); // its tokens join the secrets no answer may show
        return ($check['refresh_token'] ?? '') === 'valid' ? 'replaced (valid)' : 'replaced, INVALID refresh token';
    }

    /** @return array{outcome: string, message: string, clean: bool, problem: string, seconds: float} */
    private function throughTheExtension(string $verb, int $leadId, bool $noNetwork): array
    {
        $call = match ($verb) {
            'GET' => "\$amo->leads()->getOne($leadId)",
            'PATCH' => "\$amo->leads()->updateOne(['id' => $leadId, 'price' => 4242])",
            'POST' => "\$amo->leads()->addComplex([['name' => 'Fault matrix POST', '_embedded' => ['contacts' => [['first_name' => 'Иван']]]]])",
        };
        $code = <<<PHP
            \$t = microtime(true);
            try {
                \$amo = AmoClient::getInstance();
                $call;
                return ['outcome' => 'success', 'message' => '', 'seconds' => microtime(true) - \$t];
            } catch (AmoException \$e) {
                return ['outcome' => get_class(\$e), 'message' => \$e->getMessage(), 'seconds' => microtime(true) - \$t];
            }
            PHP;
        $env = ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'];
        foreach ($this->envValues() as $k => $v) {
            if (str_starts_with($k, 'AMOCRM_')) {
                $env[$k] = $v;
            }
        }
        $r = (new PhpProcess($code, $env, [], $noNetwork ? ['unshare', '-rn'] : []))->wait();
        $result = $r['result']['result'] ?? null;
        // The extension's log lines (`amocrm[account] level: …`) go to PHP's
        // error log, which is stderr in the CLI: they are the operator's
        // record of the fault, not a PHP warning.
        $phpSaid = trim(implode("\n", array_filter(explode("\n", $r['err']), static fn (string $l): bool => !str_starts_with($l, 'amocrm['))));
        $clean = $r['exit'] === 0 && is_array($result) && $phpSaid === '';
        return [
            'outcome' => is_array($result) ? $result['outcome'] : 'PHP DIED (exit ' . $r['exit'] . ')',
            'message' => is_array($result) ? $result['message'] : '',
            'clean' => $clean,
            'problem' => "exit {$r['exit']}, PHP's stderr: " . substr($phpSaid, 0, 500),
            'seconds' => is_array($result) ? (float) $result['seconds'] : 0.0,
        ];
    }

    /** @return array{outcome: string, message: string, clean: bool, problem: string, seconds: float} */
    private function throughTheGateway(string $verb, int $leadId, bool $noNetwork): array
    {
        [$method, $path, $body] = match ($verb) {
            'GET' => ['GET', "/api/leads/$leadId", null],
            'PATCH' => ['PATCH', "/api/leads/$leadId", ['price' => 4242]],
            'POST' => ['POST', '/api/leads', ['name' => 'Fault matrix POST', 'contact' => ['name' => 'Иван', 'phone' => '+79001112233']]],
        };
        if ($noNetwork) {
            $this->emu(); // the .env is written
            $run = \AmoCRM\Tests\Gateway\Proc::run(['unshare', '-rn', PHP_BINARY, dirname(__DIR__) . '/reliability/bin/gateway-without-network.php',
                $this->envFile, $this->dir, $method, $path, self::API_KEY, ...($body === null ? [] : [json_encode($body)])],
                ['PATH' => getenv('PATH') ?: '/usr/bin:/bin', 'AMOCRM_EXT' => (string) getenv('AMOCRM_EXT')], 120);
            $j = json_decode(trim($run['out']), true);
            $this->assertIsArray($j, 'the gateway in a namespace without network answered: ' . $run['out'] . $run['err']);
            $problem = json_decode($j['body'], true);
            $this->assertSecretsAbsent($j['headers'] . $j['body'], "the answer to $method $path");
            // The gateway's own log lines (a 5xx's cause) are not PHP's warnings.
            $warnings = preg_grep('/\b(PHP Warning|PHP Notice|PHP Deprecated|PHP Fatal error|PHP Parse error|Uncaught)\b/', explode("\n", $j['php_errors'])) ?: [];
            return [
                'outcome' => $j['status'] . ' ' . ($problem['title'] ?? ''),
                'message' => (string) ($problem['detail'] ?? ''),
                'clean' => $warnings === [] && $j['status'] !== 0,
                'problem' => implode("\n", $warnings),
                'seconds' => (float) $j['seconds'],
            ];
        }
        $r = $this->api($method, $path, $body === null ? [] : ['json' => $body]);
        $problem = $r->json();
        $errors = $this->server()->phpErrors();
        return [
            'outcome' => $r->status < 300 ? 'success' : $r->status . ' ' . ($problem['title'] ?? ''),
            'message' => (string) ($problem['detail'] ?? ''),
            'clean' => $errors === [] && $r->status !== 0,
            'problem' => implode("\n", $errors),
            'seconds' => $r->seconds,
        ];
    }

    /** One line, ports and ids folded, at most 160 characters. */
    private static function short(string $message): string
    {
        $m = preg_replace(['/(localhost|127\.0\.0\.1):\d+/', '/\/leads\/\d+/', '/\s+/'], ['$1:PORT', '/leads/ID', ' '], $message);
        return mb_strlen((string) $m) > 160 ? mb_substr((string) $m, 0, 159) . '…' : (string) $m;
    }
}
