<?php

declare(strict_types=1);

// (c) the gateway's GET /api/leads/{id}, written as a small plain-PHP script
// with curl, the way a hand-written gateway does it: the caller's API key
// checked, the token file read, a new curl handle per request (PHP's curl
// handles end with the request), the CA bundle of a host that added its
// private CA to the system store, the lead with its contacts answered as JSON.
// Its settings come from the FPM pool's env[] (getenv: no file to parse); a
// second pool serves it under /ca-only/ with CAINFO = the private CA alone.

$fail = static function (int $status, string $detail): never {
    http_response_code($status);
    header('Content-Type: application/problem+json');
    echo json_encode(['title' => $detail, 'status' => $status]);
    exit;
};

$auth = $_SERVER['HTTP_AUTHORIZATION'] ?? '';
if (!str_starts_with($auth, 'Bearer ') || !hash_equals((string) getenv('BENCH_API_KEY'), substr($auth, 7))) {
    $fail(401, 'Unauthorized');
}
if (!preg_match('#^(?:/ca-only)?/api/leads/(\d{1,18})$#', (string) parse_url($_SERVER['REQUEST_URI'] ?? '', PHP_URL_PATH), $m)) {
    $fail(404, 'Not Found');
}

$pair = json_decode((string) file_get_contents((string) getenv('BENCH_TOKEN_PATH')), true, 16, JSON_THROW_ON_ERROR);
$ch = curl_init('https://' . $pair['base_domain'] . '/api/v4/leads/' . $m[1] . '?with=contacts');
curl_setopt_array($ch, [
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . $pair['access_token'], 'Accept: application/json'],
    CURLOPT_CAINFO => (string) getenv('BENCH_CA_BUNDLE'),
    CURLOPT_CONNECTTIMEOUT => 5,
    CURLOPT_TIMEOUT => 30,
]);
$body = curl_exec($ch);
$status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
if ($body === false || ($status !== 200 && $status !== 204)) {
    $fail(502, 'amoCRM failed: ' . $status . ' ' . curl_error($ch));
}
if ($status === 204) {
    $fail(404, 'Not Found');
}
header('Content-Type: application/json');
echo json_encode(json_decode($body, true, 512, JSON_THROW_ON_ERROR), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
