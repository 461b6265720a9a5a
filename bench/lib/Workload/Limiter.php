<?php

declare(strict_types=1);

namespace AmoBench\Workload;

use AmoBench\Context;
use AmoBench\Php;
use AmoBench\Row;
use AmoBench\Section;
use AmoBench\Summary;

/** (f) The rate limiter: its cost when it does not wait, and its throughput when saturated. */
final class Limiter
{
    public const BLOCK = 90;
    public const PROCESSES = 4;
    public const RATE = 7;

    public function __construct(private readonly Context $c)
    {
    }

    public function run(): Section
    {
        $rounds = $this->c->quick ? 4 : 12;
        Context::log(sprintf('(f) the limiter\'s cost: %d rounds of %d calls with rate_limit=100 and %d with rate_limit=0', $rounds, self::BLOCK, self::BLOCK));
        $paths = ['limited' => $this->c->tokenFile('limited'), 'unlimited' => $this->c->tokenFile('unlimited')];
        $cost = $this->c->php->run(Php::AMO, 'limiter_cost.php', ['rounds' => $rounds, 'block' => self::BLOCK,
            'token_paths' => $paths, 'amo' => $this->c->httpOptions($paths['unlimited'])])['rounds'];
        // Each pair's difference (limited − unlimited): the median over all
        // pairs is the figure, the spread is that of the rounds' medians.
        $pairs = [];
        $roundMedians = [];
        foreach ($cost as $round) {
            $d = array_map(static fn (float $l, float $u) => $l - $u, $round['limited'], $round['unlimited']);
            $roundMedians[] = Summary::quartiles($d)->median;
            array_push($pairs, ...$d);
        }
        $diff = Summary::quartiles($pairs);
        $spread = Summary::quartiles($roundMedians);
        $limited = Summary::quartiles(array_merge(...array_column($cost, 'limited')));
        $unlimited = Summary::quartiles(array_merge(...array_column($cost, 'unlimited')));
        $slowest = $limited->max();

        $seconds = $this->c->quick ? 5 : 10;
        Context::log(sprintf('(f) the limiter saturated: %d processes, rate_limit=%d, %d s', self::PROCESSES, self::RATE, $seconds));
        $e = $this->c->emulator;
        $token = $this->c->tokenFile('saturated');
        $e->control('POST', 'reset-stats');
        $run = $this->c->php->together(Php::AMO, 'limiter_saturate.php', self::PROCESSES,
            ['seconds' => $seconds, 'amo' => $this->c->httpOptions($token)], $seconds + 120);
        $arrivals = $e->control('GET', 'arrivals')['api_us'];
        sort($arrivals);
        $calls = array_sum(array_column($run['results'], 'calls'));
        $errors = array_merge(...array_column($run['results'], 'errors'));
        if ($errors !== [] || $calls !== count($arrivals)) {
            throw new \RuntimeException(sprintf('saturated limiter: %d calls, %d arrivals, errors: %s', $calls, count($arrivals), implode('; ', array_slice($errors, 0, 3))));
        }
        $busiest = self::busiestSecond($arrivals);
        $rate = self::steadyRate($arrivals, self::RATE);
        Context::log(sprintf('    %.2f requests per second, at most %d in any 1 s', $rate, $busiest));

        return new Section('(f) the limiter', [
            new Row('f', 'limiter: cost per request that does not wait (rate_limit=100 vs 0, same process), µs',
                'rate_limit=0: ' . $unlimited->format(1) . ' µs/call', 'rate_limit=100: ' . $limited->format(1) . ' µs/call',
                sprintf('%+.1f µs (rounds: %.1f–%.1f)', $diff->median, $spread->lo, $spread->hi), '≤ 5 µs', $diff->median <= 5.0),
            new Row('f', sprintf('limiter saturated (%d processes, rate_limit=%d, %d s): requests per second delivered; most in any 1 s at amoCRM',
                self::PROCESSES, self::RATE, $seconds), '—', sprintf('%.2f/s; %d in 1 s', $rate, $busiest), '—',
                '≥ 6.9/s; ≤ 7 in any 1 s', $rate >= 6.9 && $busiest <= self::RATE),
        ], sprintf(<<<'HOW'
            - Cost (AmoClient only: the baseline has no limiter): one process, two accounts on two copies of the pair,
              `limited` with `rate_limit=100` (the most src/config.rs allows) and `unlimited` with `rate_limit=0`, both with
              metrics on. %1$d rounds, each of %2$d pairs of `GET /api/v4/account`, one call on each account (which goes first
              alternating), each call timed on its own, then a pause of 1.15 s, so the limited account never has more than
              %2$d sends in a 1.1 s window and never waits (its slowest single call was %3$.0f µs). The figure is the median
              over all pairs of the difference limited − unlimited (adjacent calls share the machine's state of the moment);
              in brackets, p25–p75 of the rounds' medians. The per-call cells are medians with p25–p75 over all calls.
            - Saturated: %4$d processes on one token file (so one shared budget) with the default `rate_limit` (%5$d),
              released at once by a barrier, each calling `GET /api/v4/account` in a loop for %6$d s. The emulator's own limit
              is off and it records each API request's arrival time in microseconds (`GET /_emulator/arrivals`, added for
              this). Most in any 1 s: the largest number of arrivals within any window of one second (sliding). Delivered
              per second: the steady rate, (N − %5$d) ÷ (mean of the last %5$d arrival times − mean of the first %5$d), i.e.
              the mean time the limiter takes per %5$d requests, so that the first burst does not count as throughput.
              %7$d calls arrived in all; every call must succeed.
            HOW, $rounds, self::BLOCK, $slowest, self::PROCESSES, self::RATE, $seconds, $calls));
    }

    /** The most arrivals within any window of one second. @param list<int> $sorted µs */
    public static function busiestSecond(array $sorted): int
    {
        $best = 0;
        $start = 0;
        foreach ($sorted as $i => $t) {
            while ($t - $sorted[$start] >= 1_000_000) {
                $start++;
            }
            $best = max($best, $i - $start + 1);
        }
        return $best;
    }

    /**
     * Requests per second in the steady state: (N − k) over the time between
     * the centroid of the first k arrivals and that of the last k — the mean of
     * t[i + k] − t[i] over all i is k times the time per request.
     * @param list<int> $sorted µs
     */
    public static function steadyRate(array $sorted, int $k): float
    {
        $n = count($sorted);
        if ($n <= 2 * $k) {
            return 0.0;
        }
        $first = array_sum(array_slice($sorted, 0, $k)) / $k;
        $last = array_sum(array_slice($sorted, -$k)) / $k;
        return ($n - $k) / (($last - $first) / 1e6);
    }
}
