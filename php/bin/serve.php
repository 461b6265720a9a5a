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

/** @var list<array{0: resource, 1: int}> $children each started by `setsid`: its pid is its process group */
$children = [];
$start = static function (array $cmd, array $spec, ?array $env = null) use (&$children) {
    $proc = proc_open(is_executable('/usr/bin/setsid') ? ['/usr/bin/setsid', ...$cmd] : $cmd, $spec, $pipes, null, $env);
    if (!is_resource($proc)) {
        fwrite(STDERR, 'cannot start ' . $cmd[0] . "\n");
        exit(1);
    }
    $children[] = [$proc, (int) proc_get_status($proc)['pid']];
    return [$proc, $pipes];
};
// php -S forks its workers; stopping its first process leaves them serving.
// So each child runs in its own process group, and the whole group is
// stopped: TERM, up to 2 s for the first process to end, then KILL for
// whatever of the group is left (a worker may outlive the process that
// forked it).
register_shutdown_function(static function () use (&$children): void {
    foreach ($children as [$proc, $pid]) {
        foreach (['TERM', 'KILL'] as $signal) {
            $kill = proc_open(['kill', "-$signal", '--', "-$pid"], [1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $unused);
            if (is_resource($kill)) {
                proc_close($kill);
            }
            for ($i = 0; $i < 100 && $signal === 'TERM' && proc_get_status($proc)['running']; $i++) {
                usleep(20000);
            }
        }
    }
});

if (function_exists('pcntl_async_signals')) {
    // `kill` from a script, Ctrl-C: stop the server and the emulator too (exit runs the shutdown function).
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
    // Only what this script made is ever replaced or deleted: the .env it
    // wrote (its first line says so) and its state/ folder (marked inside).
    $dir = rtrim($opts['demo-dir'] ?? "$root/var/demo", '/');
    $envFile = "$dir/.env";
    $state = "$dir/state";
    $header = '# Written by php/bin/serve.php for demo mode; regenerated on every run.';
    AmoGateway\Storage\FileStore::ensureDir($dir);
    if (is_file($envFile) && !str_starts_with((string) file_get_contents($envFile), $header)) {
        fwrite(STDERR, "$envFile was not written by serve.php; choose another --demo-dir\n");
        exit(64);
    }
    if (file_exists($state) && !is_file("$state/.serve-php-demo")) {
        fwrite(STDERR, "$state was not made by serve.php; choose another --demo-dir\n");
        exit(64);
    }
    $remove = static function (string $path) use (&$remove): void {
        if (is_dir($path) && !is_link($path)) {
            foreach (scandir($path) ?: [] as $f) {
                if ($f !== '.' && $f !== '..') {
                    $remove("$path/$f");
                }
            }
            @rmdir($path);
        } elseif (file_exists($path) || is_link($path)) {
            @unlink($path);
        }
    };
    $remove($state); // the previous run's tokens and data, for an emulator that is gone
    AmoGateway\Storage\FileStore::ensureDir($state);
    AmoGateway\Storage\FileStore::writeAtomic("$state/.serve-php-demo", "made by php/bin/serve.php; replaced on every run\n");
    fclose(AmoGateway\Storage\FileStore::openPrivate("$state/emulator.log", 'a')); // 0600, like the rest of the data dir
    $secret = bin2hex(random_bytes(16));
    $callback = "http://127.0.0.1:$port/oauth/callback";
    [, $pipes] = $start([$bin, '--port', '0', '--client-id', 'amocrm-gateway-demo', '--client-secret', $secret,
        '--redirect-uri', $callback], [1 => ['pipe', 'w'], 2 => ['file', "$state/emulator.log", 'a']]);
    $line = (string) fgets($pipes[1]);
    if (!preg_match('/:(\d+)\s*$/', $line, $m)) {
        fwrite(STDERR, "the emulator did not start: $line\n");
        exit(1);
    }
    $emuPort = (int) $m[1];
    $password = bin2hex(random_bytes(6));
    $apiKey = 'demo-' . bin2hex(random_bytes(12));
    AmoGateway\Storage\FileStore::writeAtomic($envFile, implode("\n", [
        $header,
        'AMOCRM_CLIENT_ID=amocrm-gateway-demo',
        "AMOCRM_CLIENT_SECRET=$secret",
        "AMOCRM_REDIRECT_URI=$callback",
        "AMOCRM_TOKEN_PATH=$state/tokens.json",
        'AMOCRM_ALLOWED_DOMAINS=localhost',
        'AMOCRM_INSECURE_HTTP=1',
        "AMOCRM_OAUTH_HOST=localhost:$emuPort",
        "GATEWAY_API_KEYS=$apiKey",
        'GATEWAY_ADMIN_USER=admin',
        "GATEWAY_ADMIN_PASSWORD=$password",
        'GATEWAY_SECRET=' . bin2hex(random_bytes(32)),
        'GATEWAY_WEBHOOK_SECRET=' . bin2hex(random_bytes(12)),
        "GATEWAY_DATA_DIR=$state",
        "GATEWAY_WEBHOOK_HANDLERS=jsonl:$state/webhooks.jsonl",
        '',
    ]));
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

// As in production (php/deploy/php-fpm-pool.conf): PHP's errors go to this
// terminal, never into an answer, and the gateway reads bodies itself.
[$server] = $start([...$php, '-d', 'display_errors=0', '-d', 'display_startup_errors=0', '-d', 'log_errors=1',
    '-d', 'enable_post_data_reading=0', '-S', "127.0.0.1:$port", '-t', "$root/public", "$root/public/index.php"],
    [0 => ['file', '/dev/null', 'r'], 1 => STDOUT, 2 => STDERR],
    array_merge(getenv(), ['GATEWAY_ENV_FILE' => $envFile, 'PHP_CLI_SERVER_WORKERS' => '4']));
while (proc_get_status($server)['running']) {
    usleep(200000);
}
exit(proc_get_status($server)['exitcode'] ?? 0);
