<?php

declare(strict_types=1);

// PSR-4 for AmoGateway\ when `composer dump-autoload` has not been run:
// the gateway needs no third-party package at run time.
$vendor = dirname(__DIR__) . '/vendor/autoload.php';
if (is_file($vendor)) {
    require $vendor;
    return;
}
spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'AmoGateway\\')) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, 11)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
