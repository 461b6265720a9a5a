<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\Gateway\GatewayTestCase;
use AmoCRM\Tests\Gateway\OnNginxFpm;
use AmoCRM\Tests\PhpProcess;

/**
 * Load and leaks (issue 8, item 6): the gateway under nginx + php-fpm (the
 * production pool, 4 static workers) serves a long stream of requests that
 * each call amoCRM, with both rate limits off, keeping CONCURRENCY requests
 * in flight; a share of them create leads concurrently (without a key, with a
 * key, and the same key several times at once). Then: zero errors, the
 * emulator holds exactly the leads answered 201 (a replayed key once), and
 * every worker's resident memory at the end is within RSS_TOLERANCE of what
 * it was at the reference point. The same for one CLI process making the
 * calls through the extension directly.
 *
 * Counts: `./build.sh test` 3 000 requests (reference at 300);
 * `./build.sh test --long` 100 000 (reference at 10 000).
 */
final class LoadTest extends GatewayTestCase
{
    use OnNginxFpm;

    /** Requests in flight at once (the brief: 8 to 16). */
    private const CONCURRENCY = 12;
    /**
     * "Within a few MB": a worker's (and the CLI process's) RSS may grow by at
     * most this much from the reference point to the end. A worker's steady
     * state is a few MB of PHP's allocator (2 MiB chunks) plus the
     * extension's HTTP client; growth beyond 4 MiB over 90 000 requests is a
     * leak of more than about 45 bytes per request.
     */
    private const RSS_TOLERANCE_KB = 4096;
    /** Every n-th request creates a lead. */
    private const CREATE_EVERY = 20;

    public static function setUpBeforeClass(): void
    {
        Results::section('70-load', 'Load and leaks', sprintf(
            'The gateway under Debian\'s nginx and php-fpm (php/deploy\'s pool: 4 static workers), both rate limits off '
            . '(the emulator\'s and AMOCRM_RATE_LIMIT=0) and the info cache off, serves a stream of requests that each call '
            . 'amoCRM, %d in flight at once: GET /api/leads/{id} of a lead that exists and of one that does not (404), '
            . '/api/info/account and /api/info/pipelines, and every %dth request a POST /api/leads — a third without '
            . 'Idempotency-Key, a third with a key of its own, a third sending one key three times at once. An error is any '
            . 'answer other than the expected status or no answer. "201s vs leads": 201 answers that created a lead (not '
            . 'replays) against the leads the emulator holds, and the emulator\'s applied writes against leads plus '
            . 'comment notes (nothing lost, nothing applied twice). RSS is VmRSS from /proc/<pid>/status of each php-fpm '
            . 'worker (the same 4 processes throughout: pm.max_requests = 0), measured with no request in flight at the '
            . 'reference point and at the end; the tolerance is %d MiB of growth per process. The CLI row is one PHP '
            . 'process calling amoCRM through the extension (getOne, a list page, the account, a missing lead, and a 404 '
            . 'caught as AmoApiException) the same number of times. Also checked: /metrics\' amocrm_api_calls_total equals '
            . 'the calls the emulator counted (no update of the shared counters lost), no worker holds more open files at the end '
            . 'than at the reference point, the gateway logged nothing, the data dir holds no temp file. This run: %d requests, '
            . 'the reference point after %d. req/s is printed, never asserted.',
            self::CONCURRENCY,
            self::CREATE_EVERY,
            intdiv(self::RSS_TOLERANCE_KB, 1024),
            Results::count(10000, 100000),
            Results::count(1000, 10000)
        ), ['scenario', 'requests', 'concurrency', 'errors', '201s vs leads', 'req/s', 'RSS at reference (KiB)', 'RSS at end (KiB)', 'growth (KiB)', 'peak RSS (KiB)', 'open files (reference → end)']);
    }

    public function testTheGatewayUnderNginxFpmServesTheLoadWithoutErrorsOrGrowth(): void
    {
        $total = Results::count(10000, 100000);
        $reference = Results::count(1000, 10000);
        $this->configure(['AMOCRM_RATE_LIMIT' => '0', 'GATEWAY_INFO_CACHE_TTL' => '0'], ['--rate-limit', '0']);
        $this->seedTokens();
        $this->server();
        $lead = $this->api('POST', '/api/leads', ['json' => ['name' => 'load: the lead read back', 'contact' => ['name' => 'Load', 'phone' => '+7 900 000-00-00']]]);
        $this->assertSame(201, $lead->status, $lead->describe());
        $leadId = (int) $lead->json()['id'];
        $this->emu()->control('POST', 'reset-stats');
        $leadsBefore = count($this->entities('leads'));
        $notesBefore = count($this->entities('notes'));
        $metricsBefore = $this->apiCallsInMetrics();

        $plan = static function (int $i) use ($leadId): array {
            $slot = intdiv($i, self::CREATE_EVERY);
            $pos = $i % self::CREATE_EVERY;
            if ($slot % 3 === 2 && $pos < 3) {
                // One lead under one key, sent three times back to back (in
                // flight together): one lead, two replays.
                $body = ['name' => "load dup $slot", 'contact' => ['name' => "Dup $slot", 'phone' => sprintf('+7 8%09d', $slot)]];
                return ['POST', '/api/leads', $body, ['Idempotency-Key' => "load-dup-$slot"], 201, "dup-$slot"];
            }
            if ($pos === 0) {
                $body = ['name' => "load lead $slot", 'price' => $slot, 'contact' => ['name' => "Client $slot", 'phone' => sprintf('+7 9%09d', $slot)]];
                if ($slot % 4 === 0) {
                    $body['comment'] = "comment $slot";
                }
                return ['POST', '/api/leads', $body, $slot % 3 === 1 ? ['Idempotency-Key' => "load-own-$slot"] : [], 201, null];
            }
            return match ($i % 7) {
                0 => ['GET', '/api/info/account', null, [], 200, null],
                1 => ['GET', '/api/info/pipelines', null, [], 200, null],
                2 => ['GET', '/api/leads/999999999', null, [], 404, null],
                default => ['GET', "/api/leads/$leadId", null, [], 200, null],
            };
        };

        $errors = [];
        $created = [];   // lead id => times answered 201 without Idempotent-Replayed
        $replayed = [];  // lead ids of replays
        $byDupKey = [];  // group => list of lead ids answered
        $notes = 0;
        $statuses = [];
        $onAnswer = function (array $req, int $status, array $headers, string $body, string $curlError) use (&$errors, &$created, &$replayed, &$byDupKey, &$notes, &$statuses): void {
            $statuses[$status] = ($statuses[$status] ?? 0) + 1;
            if ($status !== $req[4]) {
                if (count($errors) < 20) {
                    $errors[] = "$req[0] $req[1] → $status (expected $req[4]) $curlError " . substr($body, 0, 300);
                } else {
                    $errors[] = '…';
                }
                return;
            }
            if ($req[0] !== 'POST') {
                return;
            }
            $j = json_decode($body, true);
            $id = (int) ($j['id'] ?? 0);
            if ($id <= 0) {
                $errors[] = "$req[0] $req[1] → 201 without an id: " . substr($body, 0, 300);
                return;
            }
            if (($headers['idempotent-replayed'] ?? '') === 'true') {
                $replayed[] = $id;
            } else {
                $created[$id] = ($created[$id] ?? 0) + 1;
                if (($j['note_id'] ?? null) !== null) {
                    $notes++;
                }
            }
            if ($req[5] !== null) {
                $byDupKey[$req[5]][] = $id;
            }
        };

        $workersAt = [];
        $started = microtime(true);
        $this->drive($total, $plan, $onAnswer, [$reference => function () use (&$workersAt): void {
            $workersAt['reference'] = $this->workerMemory();
        }]);
        $seconds = microtime(true) - $started;
        $workersAt['end'] = $this->workerMemory();

        // Nothing lost, nothing applied twice.
        $leadsAt = $this->entities('leads');
        $leadIds = array_map(static fn (array $l): int => (int) $l['id'], $leadsAt);
        $newLeads = count($leadsAt) - $leadsBefore;
        $stats = $this->emu()->stats();
        $appliedPosts = (int) ($stats['api_writes_applied']['POST'] ?? 0);
        $newNotes = count($this->entities('notes')) - $notesBefore;
        $answered201 = array_sum($created);
        $emulatorCalls = (int) array_sum($stats['api_calls']);
        $metricsCalls = $this->apiCallsInMetrics() - $metricsBefore;

        $rss = static fn (array $m): string => implode(' / ', array_map(static fn (array $w): string => (string) $w['rss'], $m));
        $growth = [];
        foreach ($workersAt['end'] as $pid => $m) {
            $growth[$pid] = $m['rss'] - ($workersAt['reference'][$pid]['rss'] ?? PHP_INT_MIN);
        }
        $reqPerSecond = $total / $seconds;
        ksort($statuses);
        $summary = sprintf(
            "gateway (nginx + php-fpm, %d workers): %d requests in %.1f s (%.0f req/s), %d in flight; statuses %s; errors %d\n"
            . "  leads: %d answered 201 (created) + %d replays; emulator: %d new leads, %d POST writes applied, %d new notes (%d answered)\n"
            . "  worker RSS KiB at %d: %s; at %d: %s; growth %s (peak %s); open files %s",
            count($workersAt['end']), $total, $seconds, $reqPerSecond, self::CONCURRENCY, json_encode($statuses), count($errors),
            $answered201, count($replayed), $newLeads, $appliedPosts, $newNotes, $notes,
            $reference, $rss($workersAt['reference']), $total, $rss($workersAt['end']), implode(' / ', $growth),
            implode(' / ', array_map(static fn (array $w): string => (string) $w['hwm'], $workersAt['end'])),
            implode(' / ', array_map(static fn (int $pid): string => ($workersAt['reference'][$pid]['fds'] ?? '?') . ' → ' . $workersAt['end'][$pid]['fds'], array_keys($workersAt['end'])))
        );
        fwrite(STDERR, "\n$summary\n");
        Results::row('70-load', [
            'gateway: nginx + php-fpm, ' . count($workersAt['end']) . ' workers',
            $total,
            self::CONCURRENCY,
            count($errors),
            "$answered201 vs $newLeads",
            (int) round($reqPerSecond),
            $rss($workersAt['reference']),
            $rss($workersAt['end']),
            implode(' / ', $growth),
            implode(' / ', array_map(static fn (array $w): string => (string) $w['hwm'], $workersAt['end'])),
            implode(' / ', array_map(static fn (int $pid): string => ($workersAt['reference'][$pid]['fds'] ?? '?') . ' → ' . $workersAt['end'][$pid]['fds'], array_keys($workersAt['end']))),
        ]);

        $this->assertSame([], $errors, $summary);
        $this->assertSame($newLeads, $answered201, "every lead the emulator holds was answered 201 once, and every 201 that was not a replay created one\n$summary");
        $this->assertSame(count($created), $answered201, 'no lead id was answered as created twice');
        $this->assertSame([], array_values(array_diff(array_keys($created), $leadIds)), 'every lead answered 201 exists at the emulator');
        foreach ($replayed as $id) {
            $this->assertArrayHasKey($id, $created, "a replay answers a lead that was created ($id)");
        }
        foreach ($byDupKey as $group => $ids) {
            $this->assertCount(1, array_unique($ids), "one lead for Idempotency-Key load-$group: " . implode(', ', $ids));
        }
        $this->assertSame($newLeads + $newNotes, $appliedPosts, 'the emulator applied exactly one write per lead and per comment note');
        $this->assertSame($notes, $newNotes, 'every comment note answered exists, once');
        $this->assertSame(array_keys($workersAt['reference']), array_keys($workersAt['end']), 'the same workers served the whole run (none died or was replaced)');
        $this->assertCount(4, $workersAt['end'], 'the pool\'s 4 static workers');
        foreach ($growth as $pid => $kb) {
            $this->assertLessThanOrEqual(self::RSS_TOLERANCE_KB, $kb, "php-fpm worker $pid grew by $kb KiB between request $reference and request $total\n$summary");
            // A descriptor per request (a lock file, a socket) kills a worker at "Too many open files".
            $this->assertLessThanOrEqual($workersAt['reference'][$pid]['fds'] + 2, $workersAt['end'][$pid]['fds'], "php-fpm worker $pid holds more open files at the end");
        }
        $this->assertSame($emulatorCalls, $metricsCalls, 'amocrm_api_calls_total of /metrics counted every call of every worker (no update lost under concurrency)');
        $this->assertSame('', $this->gatewayLog(), 'no 5xx, no failure: the gateway logged nothing');
        $this->assertSame([], $this->server()->phpErrors());
        // What the run leaves on disk: records of the keys used, no temp file.
        $keys = count(array_unique(array_merge(array_filter(array_map(static fn ($i) => $plan($i)[3]['Idempotency-Key'] ?? null, range(1, $total))))));
        $files = $this->filesUnder($this->dataDir);
        $this->assertSame([], array_values(array_filter($files, static fn (string $f): bool => str_contains($f, '.tmp'))), 'no temp file left behind');
        $this->assertLessThanOrEqual(2 * $keys + 20, count($files), "the data dir holds a record and a lock per Idempotency-Key and little else ($keys keys)");
        $beside = glob($this->tokenPath . '*') ?: [];
        $this->assertLessThanOrEqual(5, count($beside), 'beside the token file: the pair, its lock, the rate-limit log, the metrics: ' . implode(', ', $beside));
    }

    /** The sum of amocrm_api_calls_total over its statuses, from GET /metrics. */
    private function apiCallsInMetrics(): int
    {
        $r = $this->admin('GET', '/metrics');
        $this->assertSame(200, $r->status, $r->describe());
        preg_match_all('/^amocrm_api_calls_total\{[^}]*\} (\d+)$/m', $r->body, $m);
        return (int) array_sum($m[1]);
    }

    /** @return list<string> every file under $dir */
    private function filesUnder(string $dir): array
    {
        $out = [];
        foreach (new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($dir, \FilesystemIterator::SKIP_DOTS)) as $f) {
            $out[] = $f->getPathname();
        }
        return $out;
    }

    public function testOneCliProcessMakesTheCallsWithoutGrowth(): void
    {
        $total = Results::count(10000, 100000);
        $reference = Results::count(1000, 10000);
        $this->configure([], ['--rate-limit', '0']);
        $this->seedTokens();
        $created = $this->emu()->http('POST', '/api/v4/leads', [['name' => 'cli load']], ['Authorization: Bearer ' . $this->storedPair()['access_token']]);
        $this->assertSame(200, $created['status'], $created['body']);
        $leadId = (int) $created['json']['_embedded']['leads'][0]['id'];
        $this->emu()->control('POST', 'reset-stats');

        $code = <<<'PHP'
            $total = (int) getenv('LOAD_TOTAL');
            $reference = (int) getenv('LOAD_REFERENCE');
            $leadId = (int) getenv('LOAD_LEAD');
            $memory = static function (): array {
                preg_match('/^VmRSS:\s+(\d+) kB/m', (string) file_get_contents('/proc/self/status'), $rss);
                preg_match('/^VmHWM:\s+(\d+) kB/m', (string) file_get_contents('/proc/self/status'), $hwm);
                return ['rss' => (int) $rss[1], 'hwm' => (int) $hwm[1], 'php' => memory_get_usage(), 'php_real' => memory_get_usage(true),
                    'fds' => count(scandir('/proc/self/fd') ?: []) - 2];
            };
            $amo = AmoClient::getInstance();
            $errors = [];
            $at = [];
            $started = microtime(true);
            for ($i = 1; $i <= $total; $i++) {
                try {
                    switch ($i % 10) {
                        case 0:
                            try {
                                $amo->request('GET', '/api/v4/no-such-list');
                                $errors[] = "$i: a 404 was not an exception";
                            } catch (AmoApiException $e) {
                                if ($e->getErrorCode() !== 404) {
                                    $errors[] = "$i: " . get_class($e) . ' ' . $e->getErrorCode();
                                }
                            }
                            break;
                        case 1:
                        case 2:
                            $r = $amo->leads()->get(['limit' => 5]);
                            if (count($r) < 1) { $errors[] = "$i: an empty list"; }
                            break;
                        case 3:
                            $a = $amo->account();
                            if (!isset($a['id'])) { $errors[] = "$i: an account without id"; }
                            break;
                        case 4:
                            if ($amo->leads()->getOne(999999999) !== null) { $errors[] = "$i: a missing lead found"; }
                            break;
                        default:
                            $l = $amo->leads()->getOne($leadId, ['contacts']);
                            if (($l['id'] ?? null) !== $leadId) { $errors[] = "$i: the lead was not read back"; }
                    }
                } catch (Throwable $e) {
                    $errors[] = "$i: " . get_class($e) . ': ' . $e->getMessage();
                }
                if (count($errors) > 20) {
                    break;
                }
                if ($i === $reference) {
                    gc_collect_cycles();
                    $at['reference'] = $memory();
                }
            }
            gc_collect_cycles();
            $at['end'] = $memory();
            return ['errors' => $errors, 'at' => $at, 'seconds' => microtime(true) - $started, 'metrics' => $amo->metrics()];
            PHP;
        $r = PhpProcess::run($code, [
            'AMOCRM_CLIENT_ID' => self::CLIENT_ID,
            'AMOCRM_CLIENT_SECRET' => self::CLIENT_SECRET,
            'AMOCRM_REDIRECT_URI' => $this->callbackUrl(),
            'AMOCRM_TOKEN_PATH' => $this->tokenPath,
            'AMOCRM_ALLOWED_DOMAINS' => 'localhost',
            'AMOCRM_INSECURE_HTTP' => '1',
            'AMOCRM_RATE_LIMIT' => '0',
            'LOAD_TOTAL' => (string) $total,
            'LOAD_REFERENCE' => (string) $reference,
            'LOAD_LEAD' => (string) $leadId,
        ]);
        $this->assertIsArray($r['result'], "the CLI process reported nothing:\n{$r['out']}\n{$r['err']}");
        $this->assertTrue($r['result']['ok'], json_encode($r['result']));
        $res = $r['result']['result'];
        $ref = $res['at']['reference'];
        $end = $res['at']['end'];
        $growth = $end['rss'] - $ref['rss'];
        $calls = (int) array_sum($this->emu()->stats()['api_calls']);
        $summary = sprintf(
            "CLI: %d calls in %.1f s (%.0f calls/s), errors %d; the emulator counted %d API calls\n"
            . "  RSS KiB at %d: %d, at %d: %d, growth %d (peak %d); PHP heap at %d: %d B, at the end: %d B; open files %d → %d",
            $total, $res['seconds'], $total / $res['seconds'], count($res['errors']), $calls,
            $reference, $ref['rss'], $total, $end['rss'], $growth, $end['hwm'], $reference, $ref['php'], $end['php'], $ref['fds'], $end['fds']
        );
        fwrite(STDERR, "\n$summary\n");
        Results::row('70-load', [
            'CLI: one PHP process, the extension directly',
            $total,
            1,
            count($res['errors']),
            '—',
            (int) round($total / $res['seconds']),
            (string) $ref['rss'],
            (string) $end['rss'],
            (string) $growth,
            (string) $end['hwm'],
            "{$ref['fds']} → {$end['fds']}",
        ]);
        $this->assertSame([], $res['errors'], $summary);
        $this->assertSame($total, $calls, 'every call reached amoCRM once: no retry, no cache');
        $this->assertLessThanOrEqual(self::RSS_TOLERANCE_KB, $growth, "the CLI process grew by $growth KiB between call $reference and call $total\n$summary");
        $this->assertLessThanOrEqual(64 * 1024, $end['php'] - $ref['php'], 'PHP\'s own heap does not grow (objects the extension hands out are freed)');
        $this->assertLessThanOrEqual($ref['fds'] + 2, $end['fds'], 'the CLI process holds no more open files at the end');
    }

    // ---- the load driver ------------------------------------------------

    /**
     * Sends requests 1..$total, CONCURRENCY in flight at once, over keep-alive
     * connections (one curl multi handle). $plan(i) gives [method, path, json
     * body or null, headers, expected status, group]; $onAnswer gets each
     * answer. At each $pauses point (a count of answers) the driver lets
     * every request in flight finish, then calls the hook: a measurement of
     * idle workers.
     *
     * @param \Closure(int): array $plan
     * @param \Closure(array, int, array<string,string>, string, string): void $onAnswer
     * @param array<int, \Closure(): void> $pauses
     */
    private function drive(int $total, \Closure $plan, \Closure $onAnswer, array $pauses): void
    {
        $mh = curl_multi_init();
        curl_multi_setopt($mh, CURLMOPT_MAXCONNECTS, self::CONCURRENCY * 2);
        $base = $this->server()->baseUrl();
        $inFlight = [];
        $next = 1;
        $answered = 0;
        $add = function (int $i) use ($mh, $base, $plan, &$inFlight): void {
            $req = $plan($i);
            $headers = ['Expect:', 'Authorization: Bearer ' . self::API_KEY];
            foreach ($req[3] as $k => $v) {
                $headers[] = "$k: $v";
            }
            $h = curl_init($base . $req[1]);
            $head = [];
            curl_setopt_array($h, [
                CURLOPT_CUSTOMREQUEST => $req[0],
                CURLOPT_RETURNTRANSFER => true,
                CURLOPT_CONNECTTIMEOUT => 5,
                CURLOPT_TIMEOUT => 60,
                CURLOPT_PROXY => '',
                CURLOPT_NOPROXY => '*',
                CURLOPT_HEADERFUNCTION => static function ($ch, string $line) use (&$head): int {
                    $p = strpos($line, ':');
                    if ($p !== false) {
                        $head[strtolower(trim(substr($line, 0, $p)))] = trim(substr($line, $p + 1));
                    }
                    return strlen($line);
                },
            ]);
            if ($req[2] !== null) {
                $headers[] = 'Content-Type: application/json';
                curl_setopt($h, CURLOPT_POSTFIELDS, json_encode($req[2], JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR));
            }
            curl_setopt($h, CURLOPT_HTTPHEADER, $headers);
            curl_multi_add_handle($mh, $h);
            $inFlight[(int) spl_object_id($h)] = ['h' => $h, 'req' => $req, 'head' => &$head];
            unset($head);
        };
        try {
            while ($answered < $total) {
                $pauseAt = null;
                foreach (array_keys($pauses) as $p) {
                    if ($p > $answered && ($pauseAt === null || $p < $pauseAt)) {
                        $pauseAt = $p;
                    }
                }
                $limit = $pauseAt ?? $total;
                while (count($inFlight) < self::CONCURRENCY && $next <= $limit) {
                    $add($next++);
                }
                do {
                    $status = curl_multi_exec($mh, $running);
                } while ($status === CURLM_CALL_MULTI_PERFORM);
                while (($info = curl_multi_info_read($mh)) !== false) {
                    $h = $info['handle'];
                    $slot = $inFlight[spl_object_id($h)];
                    unset($inFlight[spl_object_id($h)]);
                    $body = (string) curl_multi_getcontent($h);
                    $code = $info['result'] === CURLE_OK ? (int) curl_getinfo($h, CURLINFO_RESPONSE_CODE) : 0;
                    $error = $info['result'] === CURLE_OK ? '' : curl_error($h);
                    curl_multi_remove_handle($mh, $h);
                    curl_close($h);
                    $answered++;
                    $onAnswer($slot['req'], $code, $slot['head'], $body, $error);
                    if (isset($pauses[$answered])) {
                        // Every request up to the pause point was answered and none is in flight.
                        usleep(200000); // the workers' deferred work (sweeps) after the last answer
                        $pauses[$answered]();
                    }
                }
                if ($running > 0) {
                    curl_multi_select($mh, 0.05);
                }
            }
        } finally {
            foreach ($inFlight as $slot) {
                curl_multi_remove_handle($mh, $slot['h']);
            }
            curl_multi_close($mh);
        }
    }

    /** @return array<int, array{rss:int, hwm:int, fds:int}> php-fpm worker pid => memory in KiB, open files */
    private function workerMemory(): array
    {
        $pidFile = $this->dir . '/nginx-fpm/php-fpm.pid';
        $master = (int) trim((string) @file_get_contents($pidFile));
        $this->assertGreaterThan(0, $master, "php-fpm's pid file $pidFile");
        $out = [];
        foreach (glob('/proc/[0-9]*/stat') ?: [] as $statFile) {
            $stat = @file_get_contents($statFile);
            // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
            if ($stat === false || !preg_match('/^(\d+) \(.*\) \S+ (\d+) /s', $stat, $m) || (int) $m[2] !== $master) {
                continue;
            }
            $status = (string) @file_get_contents("/proc/{$m[1]}/status");
            if (preg_match('/^VmRSS:\s+(\d+) kB/m', $status, $rss) && preg_match('/^VmHWM:\s+(\d+) kB/m', $status, $hwm)) {
                $out[(int) $m[1]] = ['rss' => (int) $rss[1], 'hwm' => (int) $hwm[1], 'fds' => count(scandir("/proc/{$m[1]}/fd") ?: []) - 2];
            }
        }
        ksort($out);
        return $out;
    }
}
