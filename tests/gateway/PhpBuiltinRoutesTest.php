<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/** Every route under PHP's built-in server with 4 workers (as `./build.sh run` serves it). */
final class PhpBuiltinRoutesTest extends GatewayRoutesTestCase
{
    protected function createServer(): GatewayServer
    {
        return new PhpBuiltinServer($this->root, $this->port, $this->envFile, $this->dir);
    }
}
