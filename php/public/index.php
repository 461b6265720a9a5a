<?php

declare(strict_types=1);

require dirname(__DIR__) . '/src/autoload.php';

$request = AmoGateway\Http\Request::fromGlobals();
AmoGateway\App::fromEnvironment()->handle($request)->send($request->method === 'HEAD');

if (function_exists('fastcgi_finish_request')) {
    fastcgi_finish_request();
}
AmoGateway\App::runDeferred();
