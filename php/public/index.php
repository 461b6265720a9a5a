<?php

declare(strict_types=1);

// No exception made here carries its functions' arguments (the Request with
// a credential, the configuration with its secrets), whatever php.ini says:
// php.ini-production has it on, `php -n` and php.ini-development do not.
ini_set('zend.exception_ignore_args', '1');

require dirname(__DIR__) . '/src/autoload.php';

$request = AmoGateway\Http\Request::fromGlobals();
AmoGateway\App::fromEnvironment()->handle($request)->send($request->method === 'HEAD');

if (function_exists('fastcgi_finish_request')) {
    fastcgi_finish_request();
}
AmoGateway\App::runDeferred();
