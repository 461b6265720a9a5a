<?php

declare(strict_types=1);

// (e) the yardstick of the storm: one token-endpoint round trip (a refresh
// grant) and one API round trip (GET /api/v4/account), each on a new curl
// handle and so a new connection, as a storm process has none yet.

require __DIR__ . '/common.php';

use function AmoBench\Workload\{emit, settings, usSince};

$s = settings();
$base = 'http://' . $s['base_domain'];
/** @return array{0: float, 1: array<mixed>} the µs taken and the decoded answer */
$timed = static function (string $url, array $opts): array {
    $ch = curl_init($url);
    curl_setopt_array($ch, $opts + [CURLOPT_RETURNTRANSFER => true]);
    $t0 = hrtime(true);
    $body = curl_exec($ch);
    $us = usSince($t0);
    if ($body === false || curl_getinfo($ch, CURLINFO_RESPONSE_CODE) !== 200) {
        throw new \RuntimeException("$url: " . curl_getinfo($ch, CURLINFO_RESPONSE_CODE));
    }
    return [$us, json_decode($body, true, 512, JSON_THROW_ON_ERROR)];
};
$out = [];
foreach ($s['pairs'] as $pair) {
    [$token, $new] = $timed($base . '/oauth2/access_token', [
        CURLOPT_POST => true,
        CURLOPT_POSTFIELDS => json_encode([
            'client_id' => $s['amo']['client_id'],
            'client_secret' => $s['amo']['client_secret'],
            'grant_type' => 'refresh_token',
            'refresh_token' => $pair['refresh_token'],
            'redirect_uri' => $s['amo']['redirect_uri'],
        ], JSON_THROW_ON_ERROR),
        CURLOPT_HTTPHEADER => ['Content-Type: application/json', 'Accept: application/json'],
    ]);
    // The refresh revoked the old access token: the call uses the new one.
    [$api] = $timed($base . '/api/v4/account', [
        CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . $new['access_token'], 'Accept: application/json'],
    ]);
    $out[] = ['token_us' => $token, 'api_us' => $api];
}
emit(['trips' => $out]);
