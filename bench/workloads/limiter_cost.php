<?php

declare(strict_types=1);

// (f) what the limiter costs a request that does not wait. Two accounts on
// the same emulator, each with its own copy of the pair: `limited` with
// rate_limit=100 (the most config.rs allows), `unlimited` with rate_limit=0.
// Each round makes `block` pairs of calls, one on each account (which goes
// first alternating), each call timed on its own, then sleeps long enough
// that the limited account never has more than `block` sends in any 1.1 s
// window: it never has to wait. Adjacent calls share the machine's state of
// the moment, so their difference is the limiter's cost; a median is robust
// to the moments when the machine is busy elsewhere.

require __DIR__ . '/common.php';

use function AmoBench\Workload\{amo, emit, settings, usSince};

$s = settings();
$block = (int) $s['block'];
if ($block >= 100) {
    throw new \InvalidArgumentException('a block of 100 or more calls would fill rate_limit=100');
}
$clients = [
    'limited' => amo($s, ['rate_limit' => '100', 'token_path' => $s['token_paths']['limited']], 'limited'),
    'unlimited' => amo($s, ['rate_limit' => '0', 'token_path' => $s['token_paths']['unlimited']], 'unlimited'),
];
foreach ($clients as $c) {
    $c->request('GET', '/api/v4/account');
}
usleep(1_200_000);

$rounds = [];
for ($r = 0; $r < (int) $s['rounds']; $r++) {
    $times = ['limited' => [], 'unlimited' => []];
    for ($i = 0; $i < $block; $i++) {
        foreach (($i + $r) % 2 === 0 ? ['limited', 'unlimited'] : ['unlimited', 'limited'] as $name) {
            $t = hrtime(true);
            $clients[$name]->request('GET', '/api/v4/account');
            $times[$name][] = usSince($t);
        }
    }
    $rounds[] = $times;
    usleep(1_150_000);
}
emit(['rounds' => $rounds]);
