<?php
declare(strict_types=1);

// The PHPUnit process itself does not load the extension: every test runs
// real PHP child processes with `-d extension=…`, since the client is a
// per-process singleton configured once.
require __DIR__ . '/support/Emulator.php';
require __DIR__ . '/support/PhpProcess.php';
require __DIR__ . '/support/AmoTestCase.php';
require __DIR__ . '/support/TlsFront.php';

foreach (['AMOCRM_EXT', 'AMOCRM_EMULATOR'] as $var) {
    $path = getenv($var);
    if ($path === false || !is_file($path)) {
        fwrite(STDERR, "$var must name the built file (./build.sh test sets it)\n");
        exit(2);
    }
}
