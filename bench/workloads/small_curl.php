<?php

declare(strict_types=1);

// (a) small calls, the baseline: what the old gateway did, at its best. One
// curl handle for the process (keep-alive), the token read from the token
// file once, the headers the extension sends, the status checked, the body
// decoded with json_decode(..., true).

require __DIR__ . '/common.php';

use function AmoBench\Workload\{emit, memory, settings, usSince};

$s = settings();
$calls = (int) $s['calls'];
$pair = json_decode((string) file_get_contents($s['token_path']), true, 16, JSON_THROW_ON_ERROR);
$url = $s['scheme'] . '://' . $pair['base_domain'] . '/api/v4/account';
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
    return json_decode($body, true, 512, JSON_THROW_ON_ERROR);
};
$account = $get($url);

$t0 = hrtime(true);
for ($i = 0; $i < $calls; $i++) {
    $account = $get($url);
}
$us = usSince($t0);

if (!is_int($account['id'] ?? null)) {
    throw new \RuntimeException('the account has no id');
}
emit(['us_per_call' => $us / $calls, 'calls' => $calls + 1] + memory());
