<?php

declare(strict_types=1);

// (b) pages of 250 leads with their contacts through AmoClient:
// leads()->get() returns the list inside _embedded. rate_limit=0.

require __DIR__ . '/common.php';

use function AmoBench\Workload\{amo, emit, memory, settings, usSince};

$s = settings();
$pages = (int) $s['pages'];
$params = ['limit' => 250, 'with' => ['contacts']];
$leads = amo($s, ['rate_limit' => '0'])->leads();
$page = $leads->get($params);

$t0 = hrtime(true);
for ($i = 0; $i < $pages; $i++) {
    $page = $leads->get($params);
}
$us = usSince($t0);

if (count($page) !== 250 || !isset($page[249]['_embedded']['contacts'][0]['id'])) {
    throw new \RuntimeException('not a page of 250 leads with contacts: ' . count($page));
}
emit(['ms_per_page' => $us / $pages / 1e3, 'pages' => $pages + 1] + memory());
