<?php

declare(strict_types=1);

// (e) one of the refresh storm's processes, AmoClient: the token in the file
// has expired; every process is released at once and makes one API call.
// The extension refreshes under its lock: one process calls the token
// endpoint, the others wait for it and use its pair. rate_limit=0 (the
// storm measures the refresh, not the pacing).

require __DIR__ . '/common.php';

use function AmoBench\Workload\{amo, awaitBarrier, emit, settings};

$s = settings();
$amo = amo($s, ['rate_limit' => '0']);
awaitBarrier($s['barrier']);
$error = null;
try {
    $ok = is_int($amo->request('GET', '/api/v4/account')['id'] ?? null);
} catch (\AmoException $e) {
    $ok = false;
    $error = get_class($e) . ': ' . $e->getMessage();
}
emit(['done_at' => microtime(true), 'ok' => $ok, 'error' => $error]);
