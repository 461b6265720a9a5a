<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * A small browser-like HTTP client on php-curl: any method, headers, JSON or
 * form bodies, Basic auth, no automatic redirects, a cookie jar per host, and
 * a log of every answer (to check that no secret ever left the gateway).
 *
 * Request options:
 *   headers: array<string,string>   json: mixed   form: array|string
 *   body: string (with headers' Content-Type)   basic: [user, password]
 *   bearer: string   cookies: bool (default true)   timeout: seconds
 *   path_as_is: bool (send ../ segments unnormalized)
 */
final class HttpClient
{
    /** @var array<string, array<string, array{value:string, path:string}>> host:port => name => cookie */
    private array $jar = [];
    /** @var list<HttpResponse> */
    public array $log = [];

    public function __construct(private string $baseUrl)
    {
    }

    public function url(string $pathOrUrl): string
    {
        return preg_match('#^https?://#', $pathOrUrl) ? $pathOrUrl : $this->baseUrl . $pathOrUrl;
    }

    /** @param array<string, mixed> $opts */
    public function request(string $method, string $pathOrUrl, array $opts = []): HttpResponse
    {
        $h = $this->handle($method, $pathOrUrl, $opts, $captured);
        $t = microtime(true);
        $raw = curl_exec($h);
        return $this->finish($h, $method, $pathOrUrl, $opts, $raw, $captured, microtime(true) - $t);
    }

    /**
     * Sends requests at the same time (curl_multi); answers in input order.
     *
     * @param list<array{0:string, 1:string, 2?:array<string, mixed>}> $requests
     * @return list<HttpResponse>
     */
    public function concurrently(array $requests): array
    {
        $mh = curl_multi_init();
        $handles = [];
        $captured = [];
        foreach ($requests as $i => $r) {
            $captured[$i] = null;
            $handles[$i] = $this->handle($r[0], $r[1], $r[2] ?? [], $captured[$i]);
            curl_multi_add_handle($mh, $handles[$i]);
        }
        $t = microtime(true);
        do {
            $status = curl_multi_exec($mh, $active);
            if ($active) {
                curl_multi_select($mh, 1.0);
            }
        } while ($active && $status === CURLM_OK);
        $out = [];
        foreach ($requests as $i => $r) {
            $raw = curl_multi_getcontent($handles[$i]);
            curl_multi_remove_handle($mh, $handles[$i]);
            $out[] = $this->finish($handles[$i], $r[0], $r[1], $r[2] ?? [], $raw, $captured[$i], microtime(true) - $t);
        }
        curl_multi_close($mh);
        return $out;
    }

    /** @return \CurlHandle */
    private function handle(string $method, string $pathOrUrl, array $opts, &$captured)
    {
        $url = $this->url($pathOrUrl);
        $headers = $opts['headers'] ?? [];
        $body = null;
        if (array_key_exists('json', $opts)) {
            $body = json_encode($opts['json'], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
            $headers += ['Content-Type' => 'application/json'];
        } elseif (array_key_exists('form', $opts)) {
            $body = is_string($opts['form']) ? $opts['form'] : http_build_query($opts['form']);
            $headers += ['Content-Type' => 'application/x-www-form-urlencoded'];
        } elseif (array_key_exists('body', $opts)) {
            $body = (string) $opts['body'];
        }
        if (isset($opts['bearer'])) {
            $headers['Authorization'] = 'Bearer ' . $opts['bearer'];
        }
        if (isset($opts['basic'])) {
            $headers['Authorization'] = 'Basic ' . base64_encode($opts['basic'][0] . ':' . $opts['basic'][1]);
        }
        if (($opts['cookies'] ?? true) && ($cookie = $this->cookieHeader($url)) !== '') {
            $headers['Cookie'] = $cookie;
        }
        $lines = ['Expect:'];
        foreach ($headers as $k => $v) {
            $lines[] = "$k: $v";
        }
        $h = curl_init($url);
        curl_setopt_array($h, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_HTTPHEADER => $lines,
            CURLOPT_CONNECTTIMEOUT => 5,
            CURLOPT_TIMEOUT => (int) ($opts['timeout'] ?? 60),
            CURLOPT_IPRESOLVE => CURL_IPRESOLVE_V4,
            CURLOPT_PROXY => '',
            CURLOPT_NOPROXY => '*',
            CURLOPT_ENCODING => '',
        ]);
        if ($opts['path_as_is'] ?? false) {
            curl_setopt($h, CURLOPT_PATH_AS_IS, true); // send ../ as written
        }
        if ($method === 'HEAD') {
            curl_setopt($h, CURLOPT_NOBODY, true);
        }
        if ($body !== null) {
            curl_setopt($h, CURLOPT_POSTFIELDS, $body);
        }
        $captured = [];
        curl_setopt($h, CURLOPT_HEADERFUNCTION, static function ($ch, string $line) use (&$captured): int {
            $captured[] = $line;
            return strlen($line);
        });
        return $h;
    }

    private function finish($h, string $method, string $pathOrUrl, array $opts, $raw, ?array $captured, float $seconds): HttpResponse
    {
        $url = $this->url($pathOrUrl);
        if ($raw === false || $raw === null) {
            $err = curl_error($h);
            throw new \RuntimeException("$method $url: no answer ($err)");
        }
        $status = (int) curl_getinfo($h, CURLINFO_RESPONSE_CODE);
        $headers = [];
        foreach ($captured ?? [] as $line) {
            if (preg_match('#^HTTP/\S+\s+\d+#', $line)) {
                $headers = []; // a 100 Continue or similar: keep the final head only
                continue;
            }
            $p = strpos($line, ':');
            if ($p !== false) {
                $headers[strtolower(trim(substr($line, 0, $p)))][] = trim(substr($line, $p + 1));
            }
        }
        if ($opts['cookies'] ?? true) {
            foreach ($headers['set-cookie'] ?? [] as $sc) {
                $this->remember($url, $sc);
            }
        }
        $r = new HttpResponse($method, $url, $status, $headers, (string) $raw, $seconds);
        $this->log[] = $r;
        return $r;
    }

    private static function origin(string $url): string
    {
        $p = parse_url($url);
        return strtolower(($p['host'] ?? '') . ':' . ($p['port'] ?? 80));
    }

    private function remember(string $url, string $setCookie): void
    {
        $parts = array_map('trim', explode(';', $setCookie));
        [$name, $value] = array_pad(explode('=', (string) array_shift($parts), 2), 2, '');
        $path = '/';
        $expired = false;
        foreach ($parts as $attr) {
            [$k, $v] = array_pad(explode('=', $attr, 2), 2, '');
            $k = strtolower($k);
            if ($k === 'path' && $v !== '') {
                $path = $v;
            } elseif ($k === 'max-age' && (int) $v <= 0) {
                $expired = true;
            } elseif ($k === 'expires' && ($ts = strtotime($v)) !== false && $ts < time()) {
                $expired = true;
            }
        }
        $origin = self::origin($url);
        if ($expired || $value === '') {
            unset($this->jar[$origin][$name]);
        } else {
            $this->jar[$origin][$name] = ['value' => $value, 'path' => $path];
        }
    }

    private function cookieHeader(string $url): string
    {
        $path = parse_url($url, PHP_URL_PATH) ?: '/';
        $out = [];
        foreach ($this->jar[self::origin($url)] ?? [] as $name => $c) {
            if ($c['path'] === '/' || $path === $c['path'] || str_starts_with($path, rtrim($c['path'], '/') . '/')) {
                $out[] = "$name={$c['value']}";
            }
        }
        return implode('; ', $out);
    }

    public function cookie(string $name, ?string $url = null): ?string
    {
        return $this->jar[self::origin($url ?? $this->baseUrl)][$name]['value'] ?? null;
    }

    public function setCookie(string $name, string $value, string $path = '/', ?string $url = null): void
    {
        $this->jar[self::origin($url ?? $this->baseUrl)][$name] = ['value' => $value, 'path' => $path];
    }

    public function dropCookie(string $name, ?string $url = null): void
    {
        unset($this->jar[self::origin($url ?? $this->baseUrl)][$name]);
    }
}
