<?php

declare(strict_types=1);

// (e) the refresh storm written by hand with curl, for comparison only (it
// is not correct, and there is no simple way to make it so): every process
// that finds the token expired refreshes on its own and writes its pair, so
// N processes spend N refreshes and all but one new pair are lost.

require __DIR__ . '/common.php';

use function AmoBench\Workload\{awaitBarrier, emit, settings};

$s = settings();
awaitBarrier($s['barrier']);

$post = static function (string $url, array $body): array {
    $ch = curl_init($url);
    curl_setopt_array($ch, [
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_POST => true,
        CURLOPT_POSTFIELDS => json_encode($body, JSON_THROW_ON_ERROR),
        CURLOPT_HTTPHEADER => ['Content-Type: application/json', 'Accept: application/json'],
    ]);
    $answer = curl_exec($ch);
    if ($answer === false || curl_getinfo($ch, CURLINFO_RESPONSE_CODE) !== 200) {
        throw new \RuntimeException('refresh: ' . curl_getinfo($ch, CURLINFO_RESPONSE_CODE));
    }
    return json_decode($answer, true, 16, JSON_THROW_ON_ERROR);
};

$error = null;
try {
    $pair = json_decode((string) file_get_contents($s['token_path']), true, 16, JSON_THROW_ON_ERROR);
    $base = 'http://' . $pair['base_domain'];
    if ($pair['expires_at'] - 600 <= time()) {
        $new = $post($base . '/oauth2/access_token', [
            'client_id' => $s['amo']['client_id'],
            'client_secret' => $s['amo']['client_secret'],
            'grant_type' => 'refresh_token',
            'refresh_token' => $pair['refresh_token'],
            'redirect_uri' => $s['amo']['redirect_uri'],
        ]);
        $pair = ['access_token' => $new['access_token'], 'refresh_token' => $new['refresh_token'],
            'expires_at' => time() + (int) $new['expires_in'], 'base_domain' => $pair['base_domain'], 'updated_at' => time()];
        file_put_contents($s['token_path'], json_encode($pair, JSON_THROW_ON_ERROR));
    }
    $ch = curl_init($base . '/api/v4/account');
    curl_setopt_array($ch, [
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . $pair['access_token'], 'Accept: application/json'],
    ]);
    $body = curl_exec($ch);
    $ok = $body !== false && curl_getinfo($ch, CURLINFO_RESPONSE_CODE) === 200
        && is_int(json_decode($body, true, 512, JSON_THROW_ON_ERROR)['id'] ?? null);
} catch (\Throwable $e) {
    $ok = false;
    $error = get_class($e) . ': ' . $e->getMessage();
}
emit(['done_at' => microtime(true), 'ok' => $ok, 'error' => $error]);
