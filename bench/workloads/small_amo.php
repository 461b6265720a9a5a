<?php

declare(strict_types=1);

// (a) small calls through AmoClient: GET /api/v4/account N times in one
// process, rate_limit=0 (metrics stay on). One untimed call first, as in the
// baseline: what is timed is the steady state, not the first connection.

require __DIR__ . '/common.php';

use function AmoBench\Workload\{amo, emit, memory, settings, usSince};

$s = settings();
$calls = (int) $s['calls'];
$amo = amo($s, ['rate_limit' => '0']);
$account = $amo->request('GET', '/api/v4/account');

$t0 = hrtime(true);
for ($i = 0; $i < $calls; $i++) {
    $account = $amo->request('GET', '/api/v4/account');
}
$us = usSince($t0);

if (!is_int($account['id'] ?? null)) {
    throw new \RuntimeException('the account has no id');
}
emit(['us_per_call' => $us / $calls, 'calls' => $calls + 1] + memory());
