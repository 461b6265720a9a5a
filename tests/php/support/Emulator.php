<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** The local amoCRM emulator as a real child process on a loopback port. */
final class Emulator
{
    public int $port;
    public string $host;
    /** @var resource */
    private $proc;
    /** @var array<int, resource> */
    private array $pipes = [];

    private function __construct()
    {
    }

    /** @param list<string> $args */
    public static function start(string $host = '127.0.0.1', array $args = []): self
    {
        $e = new self();
        $cmd = array_merge([getenv('AMOCRM_EMULATOR'), '--host', $host, '--port', '0'], $args);
        $proc = proc_open($cmd, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['file', '/dev/null', 'a']], $pipes);
        if (!is_resource($proc)) {
            throw new \RuntimeException('cannot start the emulator');
        }
        $line = fgets($pipes[1]);
        if ($line === false || !preg_match('/listening on ([0-9.]+):(\d+)/', $line, $m)) {
            proc_terminate($proc);
            throw new \RuntimeException('the emulator did not say where it listens: ' . var_export($line, true));
        }
        $e->proc = $proc;
        $e->pipes = $pipes;
        $e->host = $m[1];
        $e->port = (int) $m[2];
        return $e;
    }

    /** The account host amoCRM would send as `referer`. */
    public function referer(): string
    {
        return ($this->host === '127.0.0.1' ? 'localhost' : $this->host) . ':' . $this->port;
    }

    public function url(string $path): string
    {
        return "http://{$this->host}:{$this->port}{$path}";
    }

    /**
     * A raw HTTP call (no extension involved): the test's own hands.
     * @return array{status:int, body:string, json:mixed}
     */
    public function http(string $method, string $path, $body = null, array $headers = []): array
    {
        $opts = ['method' => $method, 'ignore_errors' => true, 'timeout' => 10, 'header' => $headers];
        if ($body !== null) {
            $opts['content'] = is_string($body) ? $body : json_encode($body);
            $opts['header'][] = 'Content-Type: application/json';
        }
        $ctx = stream_context_create(['http' => $opts]);
        $raw = @file_get_contents($this->url($path), false, $ctx);
        $status = 0;
        foreach ($http_response_header ?? [] as $h) {
            if (preg_match('#^HTTP/\S+ (\d+)#', $h, $m)) {
                $status = (int) $m[1];
            }
        }
        return ['status' => $status, 'body' => (string) $raw, 'json' => json_decode((string) $raw, true)];
    }

    /** @return array<string, mixed> */
    public function control(string $method, string $path, $body = null): array
    {
        $r = $this->http($method, '/_emulator/' . $path, $body);
        if ($r['status'] < 200 || $r['status'] >= 300) {
            throw new \RuntimeException("emulator control $method $path: {$r['status']} {$r['body']}");
        }
        return is_array($r['json']) ? $r['json'] : [];
    }

    public function stats(): array
    {
        return $this->control('GET', 'stats');
    }

    public function tokenCalls(string $key): int
    {
        return (int) ($this->stats()['token_calls'][$key] ?? 0);
    }

    /** A fresh pair, as if an admin had just authorized. */
    public function mintTokens(): array
    {
        return $this->control('POST', 'tokens');
    }

    public function code(): string
    {
        return $this->control('POST', 'code')['code'];
    }

    public function fault(array $rule): void
    {
        $this->control('POST', 'faults', $rule);
    }

    /** @return array{access_token?:string, refresh_token?:string} */
    public function check(array $pair): array
    {
        return $this->control('POST', 'check', $pair);
    }

    /** Spends a refresh token the way another integration's process would. */
    public function refreshDirectly(string $refreshToken): array
    {
        return $this->http('POST', '/oauth2/access_token', [
            'client_id' => AmoTestCase::CLIENT_ID,
            'client_secret' => AmoTestCase::CLIENT_SECRET,
            'grant_type' => 'refresh_token',
            'refresh_token' => $refreshToken,
            'redirect_uri' => AmoTestCase::REDIRECT_URI,
        ]);
    }

    public function stop(): void
    {
        if (isset($this->proc) && is_resource($this->proc)) {
            proc_terminate($this->proc);
            foreach ($this->pipes as $p) {
                if (is_resource($p)) {
                    fclose($p);
                }
            }
            proc_close($this->proc);
        }
    }

    public function __destruct()
    {
        $this->stop();
    }
}
