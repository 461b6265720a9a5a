<?php

declare(strict_types=1);

// The round trip alone: GET a URL N times on one curl handle, nothing
// decoded; each fetch timed. run.php uses it to see how much of a page's
// round trip is the emulator's own work (live page vs. the pinned answer).

require __DIR__ . '/common.php';

use function AmoBench\Workload\{emit, settings, usSince};

$s = settings();
$pair = json_decode((string) file_get_contents($s['token_path']), true, 16, JSON_THROW_ON_ERROR);
$ch = curl_init('http://' . $pair['base_domain'] . $s['path']);
curl_setopt_array($ch, [
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . $pair['access_token'], 'Accept: application/json'],
]);
$times = [];
$bytes = 0;
for ($i = 0; $i <= (int) $s['fetches']; $i++) {
    $t0 = hrtime(true);
    $body = curl_exec($ch);
    $us = usSince($t0);
    if ($body === false || curl_getinfo($ch, CURLINFO_RESPONSE_CODE) !== 200) {
        throw new \RuntimeException('GET ' . $s['path'] . ': ' . curl_getinfo($ch, CURLINFO_RESPONSE_CODE));
    }
    if ($i > 0) { // the first one opened the connection
        $times[] = $us;
    }
    $bytes = strlen($body);
}
emit(['us' => $times, 'bytes' => $bytes]);
