<?php
declare(strict_types=1);

// The reliability suite: the extension and the gateway made to fail on
// purpose, at counts that catch rare bugs. It uses the other suites'
// support (the emulator, PHP processes, the gateway's servers) and writes
// what it measured through Results (docs/reliability.md).
require __DIR__ . '/../gateway/bootstrap.php';
require __DIR__ . '/../php/support/PhpProcess.php';
require __DIR__ . '/../php/support/TlsFront.php';
foreach (glob(__DIR__ . '/support/*.php') ?: [] as $file) {
    require $file;
}
