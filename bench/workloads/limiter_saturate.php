<?php

declare(strict_types=1);

// (f) the limiter saturated: one of several processes that share a token
// file and so one budget (the default rate_limit, 7 per second), calling as
// fast as they can until the deadline.

require __DIR__ . '/common.php';

use function AmoBench\Workload\{amo, awaitBarrier, emit, settings};

$s = settings();
$amo = amo($s);
awaitBarrier($s['barrier']);
$deadline = microtime(true) + (float) $s['seconds'];
$calls = 0;
$errors = [];
while (microtime(true) < $deadline) {
    try {
        $amo->request('GET', '/api/v4/account');
        $calls++;
    } catch (\AmoException $e) {
        $errors[] = get_class($e) . ': ' . $e->getMessage();
    }
}
emit(['calls' => $calls, 'errors' => $errors]);
