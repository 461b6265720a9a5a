<?php
/**
 * `./build.sh run`: the extension end to end against the bundled amoCRM
 * emulator, as an admin and a website would use it — consent page, code
 * exchange, API calls, a refresh — with no internet and no credentials.
 *
 *   php -d extension=target/release/libamocrm.so php/bin/demo.php target/release/amocrm-emulator
 */
declare(strict_types=1);

$emulatorBin = $argv[1] ?? '';
if (!extension_loaded('amocrm') || !is_executable($emulatorBin)) {
    fwrite(STDERR, "usage: php -d extension=…/libamocrm.so {$argv[0]} …/amocrm-emulator\n");
    exit(2);
}

function step(string $title): void
{
    echo "\n\033[1m== $title\033[0m\n";
}

function show(array $data): void
{
    echo json_encode($data, JSON_PRETTY_PRINT | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
}

/** A plain HTTP call without following redirects: the admin's browser. */
function browser(string $method, string $url, array $form = []): array
{
    $ctx = stream_context_create(['http' => [
        'method' => $method,
        'follow_location' => 0,
        'ignore_errors' => true,
        'header' => $form ? "Content-Type: application/x-www-form-urlencoded\r\n" : '',
        'content' => $form ? http_build_query($form) : '',
    ]]);
    $body = (string) file_get_contents($url, false, $ctx);
    $location = null;
    foreach ($http_response_header ?? [] as $h) {
        if (stripos($h, 'Location:') === 0) {
            $location = trim(substr($h, 9));
        }
    }
    return [$body, $location];
}

$emulator = proc_open([$emulatorBin, '--port', '0'], [1 => ['pipe', 'w'], 2 => ['file', '/dev/null', 'a']], $pipes);
$line = (string) fgets($pipes[1]);
if (!preg_match('/:(\d+)$/', trim($line), $m)) {
    fwrite(STDERR, "the emulator did not start: $line\n");
    exit(1);
}
$port = (int) $m[1];
$dir = sys_get_temp_dir() . '/amocrm-demo-' . getmypid();
register_shutdown_function(static function () use ($emulator, $dir): void {
    proc_terminate($emulator);
    @unlink("$dir/tokens.json");
    @unlink("$dir/tokens.json.lock");
    @rmdir($dir);
});

step("amoCRM emulator listening on 127.0.0.1:$port");
AmoClient::configure([
    'client_id' => 'emulator-client-id',
    'client_secret' => 'emulator-client-secret',
    'redirect_uri' => 'http://127.0.0.1:9095/oauth/callback',
    'token_path' => "$dir/tokens.json",
    'allowed_domains' => 'localhost',
    'oauth_host' => "localhost:$port",
    'insecure_http' => true,
]);
$amo = AmoClient::getInstance();
show($amo->tokenStatus());

step('1. The admin opens the consent page');
$state = bin2hex(random_bytes(16));
$url = $amo->authorizationUrl($state);
echo "$url\n";
[$page] = browser('GET', $url);
echo preg_match('#<title>(.*?)</title>#u', $page, $t) ? "page title: {$t[1]}\n" : '';

step('2. … clicks Allow; amoCRM redirects to the callback');
[, $location] = browser('POST', "http://localhost:$port/oauth/decision", ['client_id' => 'emulator-client-id', 'state' => $state, 'mode' => 'post_message', 'decision' => 'allow']);
echo "$location\n";
parse_str((string) parse_url((string) $location, PHP_URL_QUERY), $callback);
if (!hash_equals($state, $callback['state'] ?? '')) {
    fwrite(STDERR, "state mismatch\n");
    exit(1);
}

step('3. A forged referer is refused before any byte is sent');
try {
    $amo->exchangeCode($callback['code'], 'attacker.example.com');
} catch (AmoConfigException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}

step('4. The callback exchanges the code (the token file is written atomically, mode 0600)');
show($amo->exchangeCode($callback['code'], $callback['referer']));

step('5. A website form creates a lead');
$created = $amo->request('POST', '/api/v4/leads', [], [['name' => 'Заявка с сайта', 'price' => 15000]]);
$leadId = $created['_embedded']['leads'][0]['id'];
echo "lead $leadId created\n";
$amo->request('PATCH', "/api/v4/leads/$leadId", [], ['status_id' => 142]);
$lead = $amo->request('GET', "/api/v4/leads/$leadId");
echo "lead $leadId: {$lead['name']}, price {$lead['price']}, status {$lead['status_id']}\n";
var_dump($amo->request('GET', '/api/v4/leads/999999'));

step('6. Refresh now (what happens by itself within refresh_margin of expiry)');
show($amo->refreshToken(true));

step('7. A validation error, as amoCRM reports it');
try {
    $amo->request('POST', '/api/v4/leads', [], [['name' => 'bad', 'price' => 'a lot']]);
} catch (AmoValidationException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
    show($e->getValidationErrors());
}

echo "\nDone. The tests: ./build.sh test\n";
