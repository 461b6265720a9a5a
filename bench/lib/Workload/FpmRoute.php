<?php

declare(strict_types=1);

namespace AmoBench\Workload;

use AmoBench\Context;
use AmoBench\Php;
use AmoBench\Row;
use AmoBench\Section;
use AmoBench\Summary;
use AmoBench\WebStack;

/**
 * (c) The gateway's lead lookup (GET /api/leads/{id}) under nginx + php-fpm,
 * amoCRM over HTTPS with a private CA, against the same route written as a
 * plain-PHP curl script; 5 000 requests from wrk.
 */
final class FpmRoute
{
    /** Requests per route in a full run, split over the rounds. */
    public const REQUESTS = 5000;
    public const QUICK_REQUESTS = 1000;
    public const CONNECTIONS = 8;
    public const THREADS = 2;
    public const API_KEY = 'bench-site-key-5c7e1a9b3d2f4e60';

    public function __construct(private readonly Context $c)
    {
    }

    /** The web stack of (c) and (d), with every pool's token file (a copy of the pair, base_domain = the HTTPS front). */
    public static function startWebStack(Context $c): WebStack
    {
        $https = ['base_domain' => $c->tls->host()];
        $gatewayToken = $c->tokenFile('gateway', $https);
        $firstAmoToken = $c->tokenFile('first-amo', $https);
        $curlToken = $c->tokenFile('curl-route', $https);
        $options = $c->emulator->clientOptions();
        $gatewayEnv = [
            'GATEWAY_API_KEYS' => self::API_KEY,
            'GATEWAY_ADMIN_USER' => 'admin',
            'GATEWAY_ADMIN_PASSWORD' => bin2hex(random_bytes(12)),
            'GATEWAY_SECRET' => bin2hex(random_bytes(24)),
            'GATEWAY_WEBHOOK_SECRET' => 'wh_' . bin2hex(random_bytes(12)),
            'GATEWAY_DATA_DIR' => $c->freshDir('gateway-data'),
            'AMOCRM_CLIENT_ID' => $options['client_id'],
            'AMOCRM_CLIENT_SECRET' => $options['client_secret'],
            'AMOCRM_REDIRECT_URI' => $options['redirect_uri'],
            'AMOCRM_ALLOWED_DOMAINS' => $options['allowed_domains'],
            'AMOCRM_TOKEN_PATH' => $gatewayToken,
            'AMOCRM_CA_FILE' => $c->tls->caFile,
            'AMOCRM_RATE_LIMIT' => '0',
        ];
        $amoIni = $options + ['token_path' => $firstAmoToken, 'ca_file' => $c->tls->caFile, 'rate_limit' => '0'];
        $curlEnv = ['BENCH_TOKEN_PATH' => $curlToken, 'BENCH_CA_BUNDLE' => $c->tls->bundle, 'BENCH_API_KEY' => self::API_KEY];
        return new WebStack($c->root, "{$c->dir}/web", $c->extension, $gatewayEnv, $amoIni, $curlEnv, $c->tls->caFile);
    }

    public function run(): Section
    {
        $web = $this->c->web;
        $urls = [Php::AMO => $web->gatewayUrl(''), Php::CURL => $web->scriptsUrl(''), Php::CURL_CA_ONLY => $web->scriptsUrl('/ca-only')];
        $this->checkSameAnswer($urls);
        // The curl route serves a few dozen requests per second here (each
        // request loads the CA bundle), so a full run sends 5 000 per route
        // in two rounds of 2 500 (A B, then B A) rather than more rounds.
        $rounds = $this->c->quick ? 1 : 2;
        $total = $this->c->quick ? self::QUICK_REQUESTS : self::REQUESTS;
        $perRound = intdiv($total, $rounds);
        Context::log('(c) warming both routes up: 200 requests each');
        foreach ($urls as $url) {
            $this->wrk($url, 200);
        }
        Context::log(sprintf('(c) %d requests per route from wrk (%d connections) in %d round(s)', $total, self::CONNECTIONS, $rounds));
        $connections = array_fill_keys(array_keys($urls), []);
        $perRoundConnections = array_fill_keys(array_keys($urls), []);
        $res = $this->c->alternate($rounds, function (string $v) use ($urls, $perRound, &$connections, &$perRoundConnections): array {
            $mark = $this->c->tls->mark();
            $r = $this->wrk($urls[$v], $perRound);
            $front = $this->c->tls->connectionsSince($mark);
            $errors = array_sum($r['errors']);
            if ($errors > 0 || $front['requests'] < $r['answers']) {
                throw new \RuntimeException("$v route: $errors errors from wrk (" . json_encode($r['errors']) . "), {$front['requests']} requests reached the HTTPS front for {$r['answers']}");
            }
            $connections[$v] += array_fill_keys($front['connections'], true);
            $perRoundConnections[$v][] = count($front['connections']);
            $rps = $r['answers'] / ($r['duration_us'] / 1e6);
            Context::log(sprintf('    %s: %.0f requests/s, p50 %.2f ms, p99 %.2f ms, %d TCP connections at the HTTPS front',
                $v, $rps, $r['p50_us'] / 1e3, $r['p99_us'] / 1e3, count($front['connections'])));
            return ['rps' => $rps, 'p50' => $r['p50_us'] / 1e3, 'p99' => $r['p99_us'] / 1e3, 'requests' => $r['answers']];
        }, array_keys($urls));
        $rps = array_map(static fn (array $r) => Summary::minMax(Context::column($r, 'rps')), $res);
        $p50 = array_map(static fn (array $r) => Summary::minMax(Context::column($r, 'p50')), $res);
        $p99 = array_map(static fn (array $r) => Summary::minMax(Context::column($r, 'p99')), $res);
        $conns = array_map('count', $connections);
        $roundConns = array_map('max', $perRoundConnections);
        $connCell = static fn (string $v): string => $rounds === 1 ? (string) $conns[$v] : "{$roundConns[$v]} (all rounds: {$conns[$v]})";
        $a = Php::AMO;
        $b = Php::CURL;
        $ca = Php::CURL_CA_ONLY;
        $maxConns = 2 * WebStack::WORKERS;
        return new Section('(c) the lead route under nginx + php-fpm over HTTPS', [
            new Row('c', 'gateway `GET /api/leads/{id}` under nginx + php-fpm (4 workers), HTTPS with a private CA: requests per second',
                $rps[$b]->format(0), $rps[$a]->format(0), Row::ratio($rps[$a]->median, $rps[$b]->median),
                '≥ 10×', $rps[$a]->median >= 10 * $rps[$b]->median),
            new Row('c', 'the same: latency p50 / p99, ms',
                $p50[$b]->format(2) . ' / ' . $p99[$b]->format(2), $p50[$a]->format(2) . ' / ' . $p99[$a]->format(2),
                Row::ratio($p50[$a]->median, $p50[$b]->median) . ' / ' . Row::ratio($p99[$a]->median, $p99[$b]->median), '—', null),
            new Row('c', sprintf('the same: TCP connections that reached the HTTPS front, most in a round of %s requests', number_format($perRound, 0, '.', ' ')),
                $connCell($b), $connCell($a), '—', "≤ $maxConns (2 × workers)", $roundConns[$a] <= $maxConns),
            new Row('c', 'for reference, the curl route with `CAINFO` = the private CA alone: requests per second; p50 / p99, ms',
                $rps[$ca]->format(0) . '; ' . $p50[$ca]->format(2) . ' / ' . $p99[$ca]->format(2),
                $rps[$a]->format(0) . '; ' . $p50[$a]->format(2) . ' / ' . $p99[$a]->format(2),
                Row::ratio($rps[$a]->median, $rps[$ca]->median), '—', null),
        ], sprintf(<<<'HOW'
            amoCRM is reached over HTTPS: nginx on a loopback port terminates TLS with a certificate for `localhost` signed
            by a CA that openssl made for this run, and proxies to the emulator (keeping its own connections to the emulator
            alive; a client connection may stay 300 s idle and carry 100 000 requests). Its access log records each
            request's connection number.
            wrk (%1$d threads, %2$d connections, a Lua script that cycles over the 250 seeded lead ids and stops each thread
            after its share) sends %3$d requests with the API key to each route, in %4$d round(s) (alternating; spread:
            min–max over rounds); requests per second is the answers over the time from the first request sent to the last
            answer (measured in the Lua script), p50/p99 are wrk's latency percentiles; the connections are the distinct
            connection numbers logged during a round, the most in any round (target), and in brackets over all rounds:
            the rounds of the other routes between two AmoClient rounds take over a minute, longer than the extension
            keeps an idle connection (55 s), so a later round opens its connections anew. 200 requests per route warm both up first (opcache, workers; not counted).
            Any wrk error or non-2xx answer fails the run.

            - AmoClient: the gateway itself (php/public/index.php: `Config`, the API-key check with its throttle file,
              `LeadController::show` → `leads()->getOne($id, ['contacts'])`, the JSON answer, the deferred keepalive check)
              under Debian's nginx and php-fpm 8.2 with the production files php/deploy/nginx-site.conf and
              php-fpm-pool.conf (`pm = static`, 4 workers, opcache on); `.env`: `AMOCRM_CA_FILE` = the private CA,
              `AMOCRM_RATE_LIMIT=0` (a limiter at 7/s would cap both routes at 7 requests per second).
            - Baseline: bench/workloads/fpm/lead_curl.php, the same route as a small plain-PHP script in a pool of its own
              (4 static workers, opcache on): the API key compared with `hash_equals`, the token file read per request, a new
              curl handle per request with `CURLOPT_CAINFO` = the system bundle (`/etc/ssl/certs/ca-certificates.crt`) with
              the private CA appended, as on a host that added its CA to the system store; `json_decode` and `json_encode`
              of the lead. It does less than the gateway does per request (no throttle file, no configuration parsing).
            - For reference (no target): the same script in a third pool whose `CAINFO` is a file with the private CA
              alone. A client that trusts only the CA it expects skips loading the system bundle (with OpenSSL 3 that load
              is most of a new handle's cost); it only fits a host whose amoCRM is always reached through that one CA.
              Measured in the same rounds (order A B C, then C B A).
            HOW, self::THREADS, self::CONNECTIONS, $total, $rounds));
    }

    /** Both routes answer the same lead for the same id. @param array<string, string> $urls */
    private function checkSameAnswer(array $urls): void
    {
        $id = $this->c->leadIds[0];
        $seen = [];
        foreach ($urls as $v => $url) {
            $ch = curl_init($url . "/api/leads/$id");
            curl_setopt_array($ch, [CURLOPT_RETURNTRANSFER => true, CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . self::API_KEY], CURLOPT_TIMEOUT => 30]);
            $body = (string) curl_exec($ch);
            $lead = json_decode($body, true);
            if (curl_getinfo($ch, CURLINFO_RESPONSE_CODE) !== 200 || ($lead['id'] ?? null) !== $id || !isset($lead['_embedded']['contacts'][0]['id'])) {
                throw new \RuntimeException("the $v route did not answer lead $id with its contact: " . curl_getinfo($ch, CURLINFO_RESPONSE_CODE) . ' ' . substr($body, 0, 500));
            }
            $seen[$v] = [$lead['name'], $lead['custom_fields_values']];
        }
        if (count(array_unique(array_map('serialize', $seen))) !== 1) {
            throw new \RuntimeException('the routes answered different leads');
        }
    }

    /**
     * Runs wrk on $base (a server's URL and a path prefix) until every
     * thread has had its share of the answers; wrk
     * itself would sleep out its whole -d duration, so it gets SIGINT then
     * (the script's done() still prints its summary).
     * @return array{requests: int, answers: int, duration_us: int, p50_us: int, p99_us: int, mean_us: float, errors: array<string, int>}
     */
    private function wrk(string $base, int $requests): array
    {
        $server = (string) preg_replace('#^(https?://[^/]+).*$#', '$1/', $base);
        $cmd = ['wrk', '-t', (string) self::THREADS, '-c', (string) self::CONNECTIONS, '-d', '600s', '--timeout', '30s',
            '-s', dirname(__DIR__, 2) . '/workloads/wrk/lead_route.lua', $server];
        $env = ['PATH' => getenv('PATH') ?: '/usr/bin:/bin', 'BENCH_API_KEY' => self::API_KEY,
            'BENCH_PATH_PREFIX' => (string) parse_url($base, PHP_URL_PATH),
            'BENCH_LEAD_IDS' => implode(',', $this->c->leadIds), 'BENCH_REQUESTS_PER_THREAD' => (string) intdiv($requests, self::THREADS)];
        $proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        if (!is_resource($proc)) {
            throw new \RuntimeException('cannot start wrk');
        }
        $out = '';
        $done = 0;
        $deadline = microtime(true) + 600;
        while ($done < self::THREADS && ($line = fgets($pipes[1])) !== false) {
            $out .= $line;
            if ($line === "thread done\n" && ++$done === self::THREADS) {
                proc_terminate($proc, SIGINT);
            }
            if (microtime(true) > $deadline) {
                proc_terminate($proc, SIGKILL);
                throw new \RuntimeException("wrk did not finish:\n$out");
            }
        }
        $out .= stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        $exit = proc_close($proc);
        $json = null;
        foreach (explode("\n", $out) as $line) {
            if (str_starts_with($line, '{')) {
                $json = json_decode($line, true);
            }
        }
        if (!is_array($json) || $json['answers'] < $requests) {
            throw new \RuntimeException("wrk failed ($exit): $out$err");
        }
        return $json;
    }
}
