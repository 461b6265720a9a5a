<?php

declare(strict_types=1);

// (d) the first API call in a freshly forked FPM worker, curl: the token file
// read, curl_init and one call over HTTPS (CAINFO: the system bundle plus the
// private CA), the answer decoded, timed inside the script.

$t0 = hrtime(true);
$pair = json_decode((string) file_get_contents((string) getenv('BENCH_TOKEN_PATH')), true, 16, JSON_THROW_ON_ERROR);
$ch = curl_init('https://' . $pair['base_domain'] . '/api/v4/account');
curl_setopt_array($ch, [
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . $pair['access_token'], 'Accept: application/json'],
    CURLOPT_CAINFO => (string) getenv('BENCH_CA_BUNDLE'),
    CURLOPT_CONNECTTIMEOUT => 5,
    CURLOPT_TIMEOUT => 30,
]);
$body = curl_exec($ch);
$ok = $body !== false && curl_getinfo($ch, CURLINFO_RESPONSE_CODE) === 200;
$account = $ok ? json_decode($body, true, 512, JSON_THROW_ON_ERROR) : null;
$us = (hrtime(true) - $t0) / 1e3;

header('Content-Type: application/json');
echo json_encode(['us' => $us, 'pid' => getmypid(), 'opcache' => (opcache_get_status(false)['opcache_enabled'] ?? false) === true, 'ok' => is_int($account['id'] ?? null), 'error' => $ok ? null : curl_error($ch)]);
