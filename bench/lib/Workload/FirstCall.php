<?php

declare(strict_types=1);

namespace AmoBench\Workload;

use AmoBench\Context;
use AmoBench\Php;
use AmoBench\Row;
use AmoBench\Section;
use AmoBench\Summary;

/** (d) The first API call in a freshly forked FPM worker, over HTTPS with the private CA. */
final class FirstCall
{
    public function __construct(private readonly Context $c)
    {
    }

    public function run(): Section
    {
        $n = $this->c->quick ? 30 : 100;
        Context::log("(d) the first call in a fresh FPM worker: $n requests per variant");
        $paths = [Php::AMO => '/first/amo', Php::CURL => '/first/curl', Php::CURL_CA_ONLY => '/first/curl-ca'];
        $ch = curl_init();
        $pids = array_fill_keys(array_keys($paths), []);
        $us = array_fill_keys(array_keys($paths), []);
        // One untimed request each: opcache compiles the script in the master's shared memory.
        foreach ($paths as $v => $path) {
            $this->get($ch, $path);
        }
        for ($i = 0; $i < $n; $i++) {
            $order = array_keys($paths);
            foreach ($i % 2 === 0 ? $order : array_reverse($order) as $v) {
                $r = $this->get($ch, $paths[$v]);
                if (isset($pids[$v][$r['pid']])) {
                    throw new \RuntimeException("$v: worker {$r['pid']} served twice; pm.max_requests = 1 did not replace it");
                }
                $pids[$v][$r['pid']] = true;
                $us[$v][] = $r['us'];
            }
        }
        $s = array_map(static fn (array $x) => Summary::quartiles($x), $us);
        $a = Php::AMO;
        $b = Php::CURL;
        $ca = Php::CURL_CA_ONLY;
        return new Section('(d) the first call in a fresh FPM worker', [
            new Row('d', 'first API call in a fresh FPM worker over HTTPS (private CA), µs inside the script',
                $s[$b]->format(0), $s[$a]->format(0), Row::ratio($s[$a]->median, $s[$b]->median),
                '≤ 0.5×', $s[$a]->median <= 0.5 * $s[$b]->median),
            new Row('d', 'for reference, the same with curl\'s `CAINFO` = the private CA alone, µs',
                $s[$ca]->format(0), $s[$a]->format(0), Row::ratio($s[$a]->median, $s[$ca]->median), '—', null),
        ], sprintf(<<<'HOW'
            Two FPM pools of one worker each with `pm.max_requests = 1`, so every request is served by a freshly forked
            worker (each answer's pid is checked to be new); opcache on, the script already compiled by an untimed first
            request. %1$d requests per variant, sent one at a time and alternating; the figure is the time
            measured inside the script with `hrtime()` around the first API call, `GET /api/v4/account` over HTTPS to the
            TLS front of (c). Spread: p25–p75 over requests.

            - AmoClient (bench/workloads/fpm/first_amo.php): `AmoClient::getInstance()->request('GET', '/api/v4/account')`;
              the configuration is the pool's `php_admin_value[amocrm.*]` (`ca_file` = the private CA, `rate_limit=0`), so
              no `configure()` call. The extension's client is made lazily inside this call (after the fork), and reads
              the system trust store and `ca_file` then.
            - Baseline (first_curl.php): the token file read, `curl_init()`, `CURLOPT_CAINFO` = the system bundle with the
              private CA appended, one `curl_exec()`, `json_decode`.
            - For reference (no target): the same script in a third pool with `CAINFO` = the private CA alone (see (c)).
              The three variants take turns (A B C, C B A, …).
            HOW, $n));
    }

    /** @return array{us: float, pid: int, ok: bool} */
    private function get(\CurlHandle $ch, string $path): array
    {
        curl_setopt_array($ch, [CURLOPT_URL => $this->c->web->scriptsUrl($path), CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 30]);
        $body = (string) curl_exec($ch);
        $r = json_decode($body, true);
        if (curl_getinfo($ch, CURLINFO_RESPONSE_CODE) !== 200 || !is_array($r) || ($r['ok'] ?? false) !== true || ($r['opcache'] ?? false) !== true) {
            throw new \RuntimeException("$path: " . curl_getinfo($ch, CURLINFO_RESPONSE_CODE) . ' ' . substr($body, 0, 500));
        }
        return $r;
    }
}
