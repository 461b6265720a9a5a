<?php

declare(strict_types=1);

// (b) pages of 250 leads, the baseline: one curl handle, the token read
// once, json_decode(..., true), the list taken out of _embedded (the rest of
// the document is freed at once).

require __DIR__ . '/common.php';

use function AmoBench\Workload\{emit, memory, settings, usSince};

$s = settings();
$pages = (int) $s['pages'];
$pair = json_decode((string) file_get_contents($s['token_path']), true, 16, JSON_THROW_ON_ERROR);
$url = $s['scheme'] . '://' . $pair['base_domain'] . '/api/v4/leads?' . http_build_query(['limit' => 250, 'with' => 'contacts']);
$ch = curl_init();
curl_setopt_array($ch, [
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . $pair['access_token'], 'Accept: application/json'],
    CURLOPT_CONNECTTIMEOUT => 5,
    CURLOPT_TIMEOUT => 30,
]);
$get = static function (string $url) use ($ch): array {
    curl_setopt($ch, CURLOPT_URL, $url);
    $body = curl_exec($ch);
    $status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
    if ($body === false || $status !== 200) {
        throw new \RuntimeException("GET $url: $status " . curl_error($ch));
    }
    return json_decode($body, true, 512, JSON_THROW_ON_ERROR)['_embedded']['leads'] ?? [];
};
$page = $get($url);

$t0 = hrtime(true);
for ($i = 0; $i < $pages; $i++) {
    $page = $get($url);
}
$us = usSince($t0);

if (count($page) !== 250 || !isset($page[249]['_embedded']['contacts'][0]['id'])) {
    throw new \RuntimeException('not a page of 250 leads with contacts: ' . count($page));
}
emit(['ms_per_page' => $us / $pages / 1e3, 'pages' => $pages + 1] + memory());
