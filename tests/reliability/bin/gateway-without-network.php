<?php
/**
 * One request to the gateway where no name resolves and nothing but
 * loopback exists: run under `unshare -rn` (a user and network namespace of
 * its own, lo down at first). Brings lo up, serves the gateway with `php -S`
 * on it, sends the request with curl, prints one JSON line:
 * {status, headers, body, seconds, php_errors}.
 *
 *   unshare -rn php gateway-without-network.php ENV_FILE WORK_DIR METHOD PATH BEARER [JSON_BODY]
 */
declare(strict_types=1);

[, $envFile, $work, $method, $path, $bearer] = $argv;
$body = $argv[6] ?? null;
exec('ip link set lo up 2>&1', $out, $rc);
if ($rc !== 0) {
    fwrite(STDERR, "cannot bring lo up: " . implode("\n", $out) . "\n");
    exit(1);
}
$root = dirname(__DIR__, 3);
$port = 18000 + random_int(0, 999);
$errors = "$work/php-errors.log";
$server = proc_open([
    PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT'),
    '-d', 'display_errors=0', '-d', 'log_errors=1', '-d', "error_log=$errors", '-d', 'enable_post_data_reading=0',
    '-S', "127.0.0.1:$port", '-t', "$root/php/public", "$root/php/public/index.php",
], [0 => ['file', '/dev/null', 'r'], 1 => ['file', "$work/server.out", 'a'], 2 => ['file', "$work/server.out", 'a']], $pipes, $root,
    ['PATH' => getenv('PATH') ?: '/usr/bin:/bin', 'GATEWAY_ENV_FILE' => $envFile]);
for ($i = 0; $i < 200 && !@fsockopen('127.0.0.1', $port, $e1, $e2, 0.05); $i++) {
    usleep(20000);
}
$h = curl_init("http://127.0.0.1:$port$path");
$headers = ["Authorization: Bearer $bearer"];
if ($body !== null) {
    $headers[] = 'Content-Type: application/json';
    curl_setopt($h, CURLOPT_POSTFIELDS, $body);
}
curl_setopt_array($h, [CURLOPT_CUSTOMREQUEST => $method, CURLOPT_RETURNTRANSFER => true, CURLOPT_HEADER => true,
    CURLOPT_HTTPHEADER => $headers, CURLOPT_TIMEOUT => 60]);
$t = microtime(true);
$raw = (string) curl_exec($h);
$seconds = microtime(true) - $t;
$split = (int) curl_getinfo($h, CURLINFO_HEADER_SIZE);
$status = (int) curl_getinfo($h, CURLINFO_RESPONSE_CODE);
proc_terminate($server);
proc_close($server);
echo json_encode(['status' => $status, 'headers' => substr($raw, 0, $split), 'body' => substr($raw, $split), 'seconds' => $seconds,
    'php_errors' => is_file($errors) ? (string) file_get_contents($errors) : ''], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
