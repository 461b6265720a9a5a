<?php

declare(strict_types=1);

namespace AmoBench;

/**
 * The amoCRM emulator (target/release/amocrm-emulator) on a loopback port,
 * its own rate limit off (each workload sets the client's), and its control
 * API (tests/emulator/README.md).
 */
final class Emulator
{
    public const CLIENT_ID = 'emulator-client-id';
    public const CLIENT_SECRET = 'emulator-client-secret';
    public const REDIRECT_URI = 'http://127.0.0.1:9095/oauth/callback';

    public readonly int $port;
    /** @var resource */
    private $proc;
    /** @var array<int, resource> */
    private array $pipes;
    /** @var \CurlHandle the orchestrator's own connection to the control API */
    private \CurlHandle $ch;

    public function __construct(string $binary, string $logFile)
    {
        $proc = proc_open([$binary, '--host', '127.0.0.1', '--port', '0', '--rate-limit', '0'],
            [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['file', $logFile, 'a']], $pipes);
        if (!is_resource($proc)) {
            throw new \RuntimeException("cannot start $binary");
        }
        $line = fgets($pipes[1]);
        if ($line === false || !preg_match('/listening on 127\.0\.0\.1:(\d+)/', $line, $m)) {
            proc_terminate($proc);
            throw new \RuntimeException('the emulator did not say where it listens: ' . var_export($line, true));
        }
        $this->proc = $proc;
        $this->pipes = $pipes;
        $this->port = (int) $m[1];
        $this->ch = curl_init();
    }

    /** The account host it claims to be: the base_domain of a pair it minted. */
    public function referer(): string
    {
        return 'localhost:' . $this->port;
    }

    /** @return array<string, string> the client options every AmoClient variant starts from */
    public function clientOptions(): array
    {
        return [
            'client_id' => self::CLIENT_ID,
            'client_secret' => self::CLIENT_SECRET,
            'redirect_uri' => self::REDIRECT_URI,
            'allowed_domains' => 'localhost',
        ];
    }

    /**
     * One request; JSON in and out.
     * @param array<string, string> $headers
     * @return array{status: int, body: string, json: mixed, content_type: string}
     */
    public function http(string $method, string $path, mixed $body = null, array $headers = []): array
    {
        $h = ['Accept: application/json'];
        foreach ($headers as $k => $v) {
            $h[] = "$k: $v";
        }
        $opts = [
            CURLOPT_URL => "http://127.0.0.1:{$this->port}$path",
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => 60,
            CURLOPT_POSTFIELDS => null,
            CURLOPT_HTTPGET => true,
        ];
        if ($body !== null) {
            $opts[CURLOPT_POSTFIELDS] = is_string($body) ? $body : json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE);
            $h[] = 'Content-Type: application/json';
            unset($opts[CURLOPT_HTTPGET]);
        }
        $opts[CURLOPT_HTTPHEADER] = $h;
        curl_reset($this->ch);
        curl_setopt_array($this->ch, $opts);
        $raw = curl_exec($this->ch);
        if ($raw === false) {
            throw new \RuntimeException("emulator $method $path: " . curl_error($this->ch));
        }
        return [
            'status' => curl_getinfo($this->ch, CURLINFO_RESPONSE_CODE),
            'body' => $raw,
            'json' => json_decode($raw, true),
            'content_type' => (string) curl_getinfo($this->ch, CURLINFO_CONTENT_TYPE),
        ];
    }

    /** @return array<mixed> */
    public function control(string $method, string $path, mixed $body = null): array
    {
        $r = $this->http($method, '/_emulator/' . $path, $body);
        if ($r['status'] < 200 || $r['status'] >= 300 || !is_array($r['json'])) {
            throw new \RuntimeException("emulator control $method $path: {$r['status']} " . substr($r['body'], 0, 500));
        }
        return $r['json'];
    }

    /**
     * An API call with a token, for seeding; any status but 2xx is an error.
     * @return array<mixed>
     */
    public function api(string $token, string $method, string $path, mixed $body = null): array
    {
        $r = $this->http($method, $path, $body, ['Authorization' => "Bearer $token"]);
        if ($r['status'] < 200 || $r['status'] >= 300) {
            throw new \RuntimeException("emulator $method $path: {$r['status']} " . substr($r['body'], 0, 500));
        }
        return is_array($r['json']) ? $r['json'] : [];
    }

    /**
     * A fresh pair in the token file's format (as the gateway stores it).
     * @return array{access_token: string, refresh_token: string, expires_at: int, base_domain: string, updated_at: int}
     */
    public function mintPair(int $expiresIn = 86400, ?string $baseDomain = null): array
    {
        $t = $this->control('POST', 'tokens');
        return [
            'access_token' => $t['access_token'],
            'refresh_token' => $t['refresh_token'],
            'expires_at' => time() + $expiresIn,
            'base_domain' => $baseDomain ?? $this->referer(),
            'updated_at' => time(),
        ];
    }

    /** @return array<string, mixed> */
    public function stats(): array
    {
        return $this->control('GET', 'stats');
    }

    /** API requests (any method) that arrived since the start or the last reset. */
    public function apiArrivals(): int
    {
        return (int) array_sum($this->stats()['api_requests_by_method'] ?? []);
    }

    public function refreshes(): int
    {
        return (int) ($this->stats()['token_calls']['refresh_token/ok'] ?? 0);
    }

    public function stop(): void
    {
        if (is_resource($this->proc)) {
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

    /** Writes a pair where a token file is expected (0600, atomically). */
    public static function writeTokenFile(string $path, array $pair): void
    {
        if (!is_dir(dirname($path))) {
            mkdir(dirname($path), 0700, true);
        }
        $tmp = "$path.bench-tmp";
        file_put_contents($tmp, json_encode($pair, JSON_THROW_ON_ERROR));
        chmod($tmp, 0600);
        rename($tmp, $path);
    }
}
