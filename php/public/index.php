<?php

declare(strict_types=1);

require dirname(__DIR__) . '/src/autoload.php';

AmoGateway\App::fromEnvironment()->handle(AmoGateway\Http\Request::fromGlobals())->send();

if (function_exists('fastcgi_finish_request')) {
    fastcgi_finish_request();
}
AmoGateway\App::runDeferred();
