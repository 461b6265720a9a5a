<?php

declare(strict_types=1);

/*
 * `./build.sh run`: serves the gateway on 127.0.0.1:9095 with `php -S` and
 * several workers. Without amoCRM credentials in php/.env it starts the
 * bundled emulator and points the gateway at it (demo mode).
 *
 *   php php/bin/serve.php --emulator target/release/amocrm-emulator [--ext target/release/libamocrm.so]
 *                         [--port 9095] [--demo-dir php/var/demo]
 */

require dirname(__DIR__) . '/src/autoload.php';

$opts = getopt('', ['emulator:', 'ext:', 'port:', 'demo-dir:']);
$port = (int) ($opts['port'] ?? 9095);
$root = dirname(__DIR__);
$php = [PHP_BINARY];
if (isset($opts['ext'])) {
    $php = [PHP_BINARY, '-n', '-d', 'extension=' . $opts['ext']];
}
$envFile = getenv('GATEWAY_ENV_FILE') ?: "$root/.env";
$env = is_file($envFile) ? AmoGateway\Config::parse((string) file_get_contents($envFile), $envFile) : [];
$children = [];
register_shutdown_function(static function () use (&$children): void {
    foreach ($children as $child) {
        @proc_terminate($child);
    }
});

if (function_exists('pcntl_async_signals')) {
    // `kill` from a script: stop the server and the emulator too (exit runs the shutdown function).
    pcntl_async_signals(true);
    foreach ([SIGTERM, SIGINT, SIGHUP] as $signal) {
        pcntl_signal($signal, static fn () => exit(0));
    }
}
$say = static fn (string $s) => fwrite(STDOUT, $s . "\n");
$demo = ($env['AMOCRM_CLIENT_ID'] ?? '') === '';
if ($demo) {
    $bin = $opts['emulator'] ?? '';
    if (!is_executable($bin)) {
        fwrite(STDERR, "demo mode needs the emulator: --emulator target/release/amocrm-emulator\n");
        exit(64);
    }
    $dir = rtrim($opts['demo-dir'] ?? "$root/var/demo", '/');
    AmoGateway\Storage\FileStore::ensureDir($dir);
    foreach (glob("$dir/*") ?: [] as $old) {
        if (is_file($old)) {
            unlink($old);
        }
    }
    $secret = bin2hex(random_bytes(16));
    $callback = "http://127.0.0.1:$port/oauth/callback";
    $emulator = proc_open([$bin, '--port', '0', '--client-id', 'amocrm-gateway-demo', '--client-secret', $secret,
        '--redirect-uri', $callback], [1 => ['pipe', 'w'], 2 => ['file', "$dir/emulator.log", 'a']], $pipes);
    $line = (string) fgets($pipes[1]);
    if (!is_resource($emulator) || !preg_match('/:(\d+)\s*$/', $line, $m)) {
        fwrite(STDERR, "the emulator did not start: $line\n");
        exit(1);
    }
    $children[] = $emulator;
    $emuPort = (int) $m[1];
    $password = bin2hex(random_bytes(6));
    $apiKey = 'demo-' . bin2hex(random_bytes(12));
    $envFile = "$dir/.env";
    file_put_contents($envFile, implode("\n", [
        '# Written by php/bin/serve.php for demo mode; regenerated on every run.',
        'AMOCRM_CLIENT_ID=amocrm-gateway-demo',
        "AMOCRM_CLIENT_SECRET=$secret",
        "AMOCRM_REDIRECT_URI=$callback",
        "AMOCRM_TOKEN_PATH=$dir/tokens.json",
        'AMOCRM_ALLOWED_DOMAINS=localhost',
        'AMOCRM_INSECURE_HTTP=1',
        "AMOCRM_OAUTH_HOST=localhost:$emuPort",
        "GATEWAY_API_KEYS=$apiKey",
        'GATEWAY_ADMIN_USER=admin',
        "GATEWAY_ADMIN_PASSWORD=$password",
        'GATEWAY_SECRET=' . bin2hex(random_bytes(32)),
        'GATEWAY_WEBHOOK_SECRET=' . bin2hex(random_bytes(12)),
        "GATEWAY_DATA_DIR=$dir",
        "GATEWAY_WEBHOOK_HANDLERS=jsonl:$dir/webhooks.jsonl",
        '',
    ]));
    chmod($envFile, 0600);
    $say("Demo mode: no AMOCRM_CLIENT_ID in $root/.env, so the gateway talks to the bundled amoCRM emulator (127.0.0.1:$emuPort).");
    $say('');
    $say("1. Connect the account: open http://127.0.0.1:$port/oauth/authorize");
    $say("   (user: admin, password: $password), click «Разрешить» on the emulator's consent page.");
    $say("2. Check it:            http://127.0.0.1:$port/oauth/status");
    $say('3. Create a lead:');
    $say("   curl -s http://127.0.0.1:$port/api/leads -H 'Authorization: Bearer $apiKey' \\");
    $say("        -H 'Content-Type: application/json' \\");
    $say("        -d '{\"name\":\"Заявка с сайта\",\"price\":5000,\"contact\":{\"name\":\"Иван\",\"phone\":\"+7 900 123-45-67\"},\"comment\":\"Перезвонить\"}'");
    $say("   Or as a website form: curl -s http://127.0.0.1:$port/api/leads -H 'Authorization: Bearer $apiKey' -d name=Заявка -d phone=+79001234567");
    $say("4. The CLI:             GATEWAY_ENV_FILE=$envFile php php/bin/amocrm status");
    $say('');
} else {
    $say("Serving the gateway for {$env['AMOCRM_CLIENT_ID']} from $envFile");
}
$say("Listening on http://127.0.0.1:$port (Ctrl-C stops)");

$server = proc_open([...$php, '-S', "127.0.0.1:$port", '-t', "$root/public", "$root/public/index.php"],
    [0 => ['file', '/dev/null', 'r'], 1 => STDOUT, 2 => STDERR], $unused, null,
    array_merge(getenv(), ['GATEWAY_ENV_FILE' => $envFile, 'PHP_CLI_SERVER_WORKERS' => '4']));
if (!is_resource($server)) {
    exit(1);
}
$children[] = $server;
while (proc_get_status($server)['running']) {
    usleep(200000);
}
exit(proc_get_status($server)['exitcode'] ?? 0);
