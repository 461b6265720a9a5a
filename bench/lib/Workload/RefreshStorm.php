<?php

declare(strict_types=1);

namespace AmoBench\Workload;

use AmoBench\Context;
use AmoBench\Php;
use AmoBench\Row;
use AmoBench\Section;
use AmoBench\Summary;

/** (e) 32 processes released at once on an expired access token. */
final class RefreshStorm
{
    public const PROCESSES = 32;
    public const TARGET_MS = 50.0;
    /** For reference: the same AmoClient processes with a pair that has not expired (no refresh, no waiting). */
    public const VALID = 'AmoClient, token not expired';

    public function __construct(private readonly Context $c)
    {
    }

    public function run(): Section
    {
        $rounds = $this->c->quick ? 2 : 5;
        $e = $this->c->emulator;
        Context::log(sprintf('(e) refresh storm: %d processes on an expired token, %d rounds', self::PROCESSES, $rounds));
        $trips = [];
        $res = $this->c->alternate($rounds, function (string $v) use ($e, &$trips): array {
            // The yardstick, in the same round: one token-endpoint and one API round trip.
            $pairs = [$e->mintPair(), $e->mintPair(), $e->mintPair()];
            $rt = $this->c->php->run(Php::CURL, 'roundtrips.php', ['base_domain' => $e->referer(), 'amo' => $e->clientOptions(), 'pairs' => $pairs])['trips'];
            $oneTrip = (Summary::minMax(array_column($rt, 'token_us'))->median + Summary::minMax(array_column($rt, 'api_us'))->median) / 1e3;
            $trips[] = $oneTrip;

            $token = $this->c->freshDir('storm') . '/tokens.json';
            $pair = $e->mintPair($v === self::VALID ? 86400 : -60);
            \AmoBench\Emulator::writeTokenFile($token, $pair);
            $before = $e->refreshes();
            $run = $this->c->php->together($v === Php::CURL ? Php::CURL : Php::AMO, $v === Php::CURL ? 'storm_curl.php' : 'storm_amo.php', self::PROCESSES,
                ['token_path' => $token, 'amo' => $this->c->httpOptions($token)]);
            $refreshes = $e->refreshes() - $before;
            $failed = array_values(array_filter($run['results'], static fn (array $r) => $r['ok'] !== true));
            if ($v !== Php::CURL && $failed !== []) {
                throw new \RuntimeException(count($failed) . ' storm processes failed: ' . $failed[0]['error']);
            }
            $slowest = (max(array_column($run['results'], 'done_at')) - $run['released_at']) * 1e3;
            Context::log(sprintf('    %s: %d refresh(es), slowest call %.1f ms after the release, one round trip %.1f ms%s',
                $v, $refreshes, $slowest, $oneTrip, $failed === [] ? '' : sprintf('; %d failed, e.g. %s', count($failed), $failed[0]['error'])));
            return ['refreshes' => $refreshes, 'slowest_ms' => $slowest, 'beyond_ms' => $slowest - $oneTrip, 'failed' => count($failed)];
        }, [Php::AMO, Php::CURL, self::VALID]);
        $a = Php::AMO;
        $b = Php::CURL;
        $valid = self::VALID;
        $refreshes = array_map(static fn (array $r) => Summary::minMax(Context::column($r, 'refreshes')), $res);
        $beyond = array_map(static fn (array $r) => Summary::minMax(Context::column($r, 'beyond_ms')), $res);
        $trip = Summary::minMax($trips);
        $curlFailed = array_sum(Context::column($res[$b], 'failed'));
        return new Section('(e) refresh storm', [
            new Row('e', sprintf('refresh storm, %d processes on an expired token: refresh calls amoCRM saw', self::PROCESSES),
                $refreshes[$b]->format(0) . ($curlFailed > 0 ? sprintf(" (%d %s failed)", $curlFailed, $curlFailed === 1.0 ? "call" : "calls") : ''), $refreshes[$a]->format(0), '—',
                '1', $refreshes[$a]->max() === 1.0 && $refreshes[$a]->lo === 1.0),
            new Row('e', sprintf('the same: slowest call beyond one token + one API round trip (%s ms), ms', $trip->format(1)),
                $beyond[$b]->format(1), $beyond[$a]->format(1), '—',
                sprintf('≤ %.0f ms', self::TARGET_MS), $beyond[$a]->median <= self::TARGET_MS),
            new Row('e', 'for reference, the same 32 AmoClient processes on a token that has not expired (no refresh): slowest call beyond the round trips, ms',
                '—', $beyond[$valid]->format(1), '—', '—', null),
        ], sprintf(<<<'HOW'
            Per round, a token file with a fresh pair whose `expires_at` has passed; %1$d PHP CLI processes are started, each
            configures its client and reports "ready", then waits on a barrier (a shared flock the orchestrator holds);
            released at once, each makes one `GET /api/v4/account`. Refresh calls are the emulator's count of successful
            refresh grants during the round; the slowest call is the time from the release to the last process's answer,
            less the yardstick measured in the same round: one token-endpoint round trip (a refresh grant) plus one API round
            trip, each on a new curl handle (a new connection, as a storm process has none), median of three. Over plain http
            to the emulator, `rate_limit=0` (the storm measures the refresh, not the pacing). %2$d rounds, alternating;
            spread: min–max over rounds. The row's target is on the median.

            - AmoClient: the extension refreshes under its flock; the others wait for it and use its pair. Every call must
              succeed.
            - Baseline (shown for comparison; there is no correct simple curl version): each process reads the token file;
              one that finds the token expired refreshes on its own and writes its pair with `file_put_contents` (not
              atomic). Those that read the file after another one wrote it skip the refresh; those that read it while it
              is being written find a torn file (`JsonException`) and fail their call, counted in the cell; each extra
              refresh spent a refresh token whose new pair was then overwritten. (The emulator keeps the old refresh
              token valid until a child is used, as amoCRM does, so the refreshes themselves succeed here.)
            - For reference (no target): the same AmoClient storm on a pair that has not expired, so that no process
              refreshes or waits for the lock: what starting 32 processes' first calls at once costs on this machine. The
              three take turns (A B C, then C B A).
            HOW, self::PROCESSES, $rounds));
    }
}
