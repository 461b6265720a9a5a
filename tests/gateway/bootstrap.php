<?php
declare(strict_types=1);

// The gateway suites: the gateway on real web servers (php -S, nginx +
// php-fpm) against the amoCRM emulator, its CLI, and a browser E2E run.
// As in tests/php, the PHPUnit process itself does not use the extension.
require __DIR__ . '/../php/support/Emulator.php';
require __DIR__ . '/../php/support/AmoTestCase.php';
foreach (['Proc', 'GatewayServer', 'PhpBuiltinServer', 'NginxFpmServer', 'HttpResponse', 'HttpClient', 'GatewayTestCase', 'GatewayRoutesTestCase', 'GatewayEdgesTestCase', 'AccountsTestCase', 'OnNginxFpm'] as $class) {
    require __DIR__ . "/support/$class.php";
}

foreach (['AMOCRM_EXT', 'AMOCRM_EMULATOR'] as $var) {
    $path = getenv($var);
    if ($path === false || !is_file($path)) {
        fwrite(STDERR, "$var must name the built file (./build.sh test sets it)\n");
        exit(2);
    }
}
if (!extension_loaded('curl') || !extension_loaded('posix')) {
    fwrite(STDERR, "the gateway tests need php-curl and posix in the PHP that runs PHPUnit\n");
    exit(2);
}
