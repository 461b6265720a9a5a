<?php

declare(strict_types=1);

namespace AmoBench\Workload;

use AmoBench\Context;
use AmoBench\Php;
use AmoBench\Row;
use AmoBench\Section;
use AmoBench\Summary;

/** (a) 2 000 small calls in one process, and (g) their memory. */
final class SmallCalls
{
    public const CALLS = 2000;

    public function __construct(private readonly Context $c)
    {
    }

    public function run(): Section
    {
        $rounds = $this->c->quick ? 3 : 9;
        Context::log(sprintf('(a) %d × GET /api/v4/account in one process, %d rounds', self::CALLS, $rounds));
        $token = $this->c->tokenFile('small');
        $settings = ['calls' => self::CALLS, 'token_path' => $token, 'scheme' => 'http', 'amo' => $this->c->httpOptions($token)];
        $res = $this->c->alternate($rounds, fn (string $v) => $this->c->runCounted($v,
            $v === Php::AMO ? 'small_amo.php' : 'small_curl.php', $settings, self::CALLS + 1));

        $us = array_map(static fn (array $r) => Summary::minMax(Context::column($r, 'us_per_call')), $res);
        $mem = self::memory($res);
        $ratio = $us[Php::AMO]->median / $us[Php::CURL]->median;
        return new Section('(a) small calls, and (g) their memory', [
            new Row('a', 'small call `GET /api/v4/account`, µs per call (2 000 calls in one process)',
                $us[Php::CURL]->format(1), $us[Php::AMO]->format(1), Row::ratio($us[Php::AMO]->median, $us[Php::CURL]->median),
                '≤ 1.0×', $ratio <= 1.0),
            new Row('g', 'memory of the small-call process: PHP peak, MB',
                $mem[Php::CURL]['php']->format(2, 1 / 1048576), $mem[Php::AMO]['php']->format(2, 1 / 1048576),
                Row::ratio($mem[Php::AMO]['php']->median, $mem[Php::CURL]['php']->median), '—', null),
            new Row('g', 'memory of the small-call process: RSS high-water mark (VmHWM), MB',
                $mem[Php::CURL]['rss']->format(1, 1 / 1048576), $mem[Php::AMO]['rss']->format(1, 1 / 1048576),
                Row::ratio($mem[Php::AMO]['rss']->median, $mem[Php::CURL]['rss']->median), '—', null),
        ], sprintf(<<<'HOW'
            A fresh PHP CLI process per variant and round (%1$d rounds, the order alternating), each making one untimed call
            and then %2$d timed calls of `GET /api/v4/account` to the emulator over plain http on loopback; the figure is
            the timed loop's wall time (hrtime) over %2$d. Spread: min–max over rounds. The emulator's count of API requests
            is checked after every process (%3$d each).

            - AmoClient: `AmoClient::configure()` with `rate_limit=0` (metrics on), `insecure_http=1`; one
              `getInstance()`, then `$amo->request('GET', '/api/v4/account')` in the loop.
            - Baseline: one curl handle for the process (keep-alive), the token read from the token file once, the headers
              the extension sends (`Authorization: Bearer`, `Accept: application/json`), the status checked,
              `json_decode($body, true)`.
            - Memory (g): at the end of the same processes, `memory_get_peak_usage()` and VmHWM from `/proc/self/status`.
              Both run under `php -n` with opcache; the AmoClient process loads the extension, the curl process ext-curl
              (and not the extension): each what it needs. No target for this row (the issue sets one for the page loop).
            HOW, $rounds, self::CALLS, self::CALLS + 1));
    }

    /**
     * @param array<string, list<array<string, mixed>>> $res
     * @return array<string, array{php: Summary, rss: Summary}>
     */
    public static function memory(array $res): array
    {
        return array_map(static fn (array $r) => [
            'php' => Summary::minMax(Context::column($r, 'php_peak')),
            'rss' => Summary::minMax(Context::column($r, 'rss_hwm')),
        ], $res);
    }
}
