<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\Gateway\GatewayTestCase;

/**
 * Issue 8.4, a year without a human: 365 days in which the gateway sees no
 * traffic for months, amoCRM is down for 20 days around a renewal date, a
 * refresh answer is lost in transit once (amoCRM rotated the pair, the
 * gateway never saw it), and the disk is full on a day a renewal is due.
 * Run twice: with the daily cron keepalive, and with no cron at all, only
 * an uptime monitor on /health and one real API call a quarter. Both must
 * end the year authorized, and warn while a renewal is overdue.
 *
 * The extension runs on the real clock, so a day passes twice: the
 * emulator's clock moves a day forward, and the token file is rewritten as
 * if written a day earlier. The token folder is a small tmpfs, so that the
 * disk can really be full.
 */
final class YearTest extends GatewayTestCase
{
    private const KEY = '40-year';
    /** amoCRM is down for this many days from the first day after OUTAGE_FROM on which the pair is 20 days old. */
    private const OUTAGE_DAYS = 20;
    private const OUTAGE_FROM = 75;
    private const LOST_ANSWER_FROM = 140;
    private const DISK_FULL_FROM = 200;

    private string $tmpfs;
    private ?int $outageStart = null;
    /** @var array<string, list<int>> what happened on which day */
    private array $log = [];

    public static function setUpBeforeClass(): void
    {
        Results::section(self::KEY, 'A year without a human',
            '365 simulated days (the emulator\'s clock, and the token file aged a day at a time). amoCRM answers 503 to '
            . 'everything for ' . self::OUTAGE_DAYS . ' days from the first day after day ' . self::OUTAGE_FROM . ' on which the pair is '
            . '20 days old (so that a renewal falls in the middle); the first refresh '
            . 'after day ' . self::LOST_ANSWER_FROM . ' loses its answer (amoCRM rotated the pair); on the first day after day '
            . self::DISK_FULL_FROM . ' on which a renewal is due, the token folder (a 1 MiB tmpfs) is full. The pair is renewed '
            . 'after `keepalive_days` (30).',
            ['run', 'traffic', 'renewed on days', 'failed renewals (days)', 'warned on days', 'end of the year', 'human needed']);
    }

    protected function setUp(): void
    {
        parent::setUp();
        $this->tmpfs = $this->dir . '/tokens';
        mkdir($this->tmpfs, 0700);
        exec('mount -t tmpfs -o size=1m,mode=0700 tmpfs ' . escapeshellarg($this->tmpfs) . ' 2>&1', $out, $rc);
        $this->assertSame(0, $rc, 'a tmpfs for the token folder (the tests run as root): ' . implode("\n", $out));
        $this->tokenPath = $this->tmpfs . '/tokens.json';
    }

    protected function tearDown(): void
    {
        try {
            parent::tearDown();
        } finally {
            exec('umount ' . escapeshellarg($this->tmpfs) . ' 2>&1');
        }
    }

    private function pairAgeDays(): float
    {
        return (time() - $this->storedPair()['updated_at']) / 86400;
    }

    /** Sets up the day's faults; returns a closure that ends them. */
    private function weather(int $day, bool &$lostAnswerDone, bool &$diskFullDone): \Closure
    {
        $end = static fn () => null;
        $age = $this->pairAgeDays();
        if ($this->outageStart === null && $day >= self::OUTAGE_FROM && $age >= 20 && $age < 21) {
            $this->outageStart = $day;
            $this->log['outage'] = [$day, $day + self::OUTAGE_DAYS - 1];
            $this->emu()->fault(['path' => '/', 'action' => 'respond', 'status' => 503, 'content_type' => 'text/html',
                'body' => '<html><head><title>503 Service Temporarily Unavailable</title></head><body>nginx</body></html>']);
        }
        if ($day === ($this->outageStart ?? -1) + self::OUTAGE_DAYS) {
            $this->emu()->control('DELETE', 'faults');
        }
        if ($day >= self::LOST_ANSWER_FROM && !$lostAnswerDone && $this->pairAgeDays() >= 30) {
            // The refresh reaches amoCRM and rotates the pair; its answer is cut off.
            $this->emu()->fault(['path' => '/oauth2/access_token', 'action' => 'truncate', 'times' => 1]);
            $lostAnswerDone = true;
            $this->log['lost answer'][] = $day;
        }
        if ($day >= self::DISK_FULL_FROM && !$diskFullDone && $this->pairAgeDays() >= 30) {
            $diskFullDone = true;
            $this->log['disk full'][] = $day;
            return $this->fillTheDisk();
        }
        return $end;
    }

    /** Fills the token folder's filesystem; the closure frees it. */
    private function fillTheDisk(): \Closure
    {
        $filler = $this->tmpfs . '/filler';
        $f = fopen($filler, 'w');
        $chunk = str_repeat("\0", 4096);
        while (@fwrite($f, $chunk) === 4096) {
        }
        fclose($f);
        return static fn () => unlink($filler);
    }

    /**
     * @param \Closure(int): void $traffic what the gateway sees on a day
     * @return array{refreshed: list<int>, failed: list<int>, warned: list<int>}
     */
    private function aYear(\Closure $traffic): array
    {
        $this->configure(['AMOCRM_TOKEN_PATH' => $this->tokenPath]);
        $this->seedTokens();
        $lost = $full = false;
        $seen = ['refreshed' => [], 'failed' => [], 'warned' => []];
        for ($day = 1; $day <= 365; $day++) {
            $this->dayPasses();
            $end = $this->weather($day, $lost, $full);
            $before = $this->storedPair()['updated_at'];
            $due = $this->pairAgeDays() >= 30;
            $traffic($day);
            // What monitoring sees each day: a renewal overdue by more than a
            // day must be flagged, and nothing else is.
            $warning = $this->assertJsonAnswer($this->admin('GET', '/oauth/status'), 200)['warning'];
            if ($this->storedPair()['updated_at'] !== $before) {
                $seen['refreshed'][] = $day;
            } elseif ($due) {
                $seen['failed'][] = $day; // due, and not renewed
            }
            $overdue = $this->pairAgeDays() - 30;
            if ($warning !== null) {
                $seen['warned'][] = $day;
                $this->assertGreaterThan(0, $overdue, "day $day: a warning only when a renewal is overdue");
            } else {
                $this->assertLessThan(1, $overdue, "day $day: overdue by more than a day without a warning");
            }
            $end();
        }
        return $seen;
    }

    /** What an admin's monitoring sees: the status's warning, /ready, /metrics. */
    private function assertWarned(int $day): void
    {
        $status = $this->assertJsonAnswer($this->admin('GET', '/oauth/status'), 200);
        $this->assertFalse($status['needs_reauthorization'], "day $day: still authorized");
        $this->assertIsString($status['warning'], "day $day: a renewal is overdue and the status says so");
        $this->assertMatchesRegularExpression('/dies unused in \d+ days/', $status['warning']);
        $metrics = $this->admin('GET', '/metrics')->body;
        $this->assertMatchesRegularExpression('/^amocrm_token_warning\{account="default"\} 1$/m', $metrics, "day $day");
        $ready = $this->request('GET', '/ready');
        $this->assertStringContainsString('dies unused', $ready->body, "day $day: /ready carries the warning");
    }

    private function assertAuthorizedAtTheEnd(string $run, array $seen, string $traffic): void
    {
        $this->http()->log = array_slice($this->http()->log, -50); // the leak check of tearDown need not read a year
        $status = $this->assertJsonAnswer($this->admin('GET', '/oauth/status'), 200);
        $this->assertTrue($status['authorized']);
        $this->assertFalse($status['needs_reauthorization'], (string) $status['reauthorization_reason']);
        $this->assertNull($status['warning']);
        $this->assertSame(200, $this->request('GET', '/ready')->status);
        $this->assertProblem($this->api('GET', '/api/leads/1'), 404); // a real call: amoCRM answers (no such lead)
        $this->assertSame('valid', $this->emu()->check(['refresh_token' => $this->storedPair()['refresh_token']])['refresh_token']);
        $this->assertNotEmpty($this->log['lost answer'] ?? [], 'a refresh answer was lost');
        $this->assertNotEmpty($this->log['disk full'] ?? [], 'the disk was full on a renewal day');
        Results::row(self::KEY, [$run, $traffic . sprintf('; amoCRM down days %d–%d, answer lost day %d, disk full day %d',
            $this->log['outage'][0], $this->log['outage'][1], $this->log['lost answer'][0], $this->log['disk full'][0]),
            implode(', ', $seen['refreshed']), self::ranges($seen['failed']) ?: 'none',
            self::ranges($seen['warned']), 'authorized, no warning; the stored refresh token valid at amoCRM', 'no']);
    }

    /** [81, 82, 83, 90] → "81–83, 90" */
    private static function ranges(array $days): string
    {
        $out = [];
        foreach ($days as $d) {
            if ($out !== [] && end($out)[1] === $d - 1) {
                $out[array_key_last($out)][1] = $d;
            } else {
                $out[] = [$d, $d];
            }
        }
        return implode(', ', array_map(static fn ($r) => $r[0] === $r[1] ? (string) $r[0] : "{$r[0]}–{$r[1]}", $out)) ?: 'never';
    }

    public function testAYearWithADailyCronKeepalive(): void
    {
        $warnedChecked = false;
        $seen = $this->aYear(function (int $day) use (&$warnedChecked): void {
            $r = $this->cli(['keepalive', '--max-age=30']);
            $this->assertContains($r['exit'], [0, 1], "day $day: keepalive " . $r['out'] . $r['err']);
            $this->assertNotSame(2, $r['exit'], "day $day: never 're-authorize'");
            if ($this->outageStart !== null && $day === $this->outageStart + self::OUTAGE_DAYS - 2) {
                $this->assertSame(1, $r['exit'], 'amoCRM is down: the cron job fails visibly');
                $this->assertWarned($day);
                $warnedChecked = true;
            }
        });
        $this->assertTrue($warnedChecked);
        $this->assertAuthorizedAtTheEnd('daily cron keepalive (`amocrm keepalive --max-age=30`)', $seen, 'none');
    }

    public function testAYearWithNoCronOnlyAnUptimeMonitorAndAQuarterlyCall(): void
    {
        $checks = Results::count(2, 12);
        $warnedChecked = false;
        $seen = $this->aYear(function (int $day) use ($checks, &$warnedChecked): void {
            // Each day the gateway's workers are new processes: a day of real
            // time passes for them too (what a worker remembers, such as a
            // failed keepalive's pause, is minutes long).
            $this->server()->stop();
            $deadline = microtime(true) + 10;
            while (($s = @fsockopen('127.0.0.1', $this->port, $errno, $error, 0.1)) && microtime(true) < $deadline) {
                fclose($s);
                usleep(20000);
            }
            $this->server()->start();
            for ($i = 0; $i < $checks; $i++) {
                $this->assertSame(200, $this->request('GET', '/health')->status, "day $day");
            }
            if (in_array($day, [45, 135, 225, 315], true)) {
                $r = $this->api('GET', '/api/leads/1');
                $this->assertContains($r->status, [404, 502, 503], "day $day: " . $r->describe());
            }
            if ($this->outageStart !== null && $day === $this->outageStart + self::OUTAGE_DAYS - 2) {
                $this->assertWarned($day);
                $warnedChecked = true;
            }
        });
        $this->assertTrue($warnedChecked);
        $this->assertAuthorizedAtTheEnd('no cron: /health ' . $checks . ' times a day, an API call on days 45, 135, 225, 315', $seen,
            "/health ×$checks a day, 4 API calls");
    }
}
