<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/** The edges (issue 7) under PHP's built-in server with 4 workers. */
final class PhpBuiltinEdgesTest extends GatewayEdgesTestCase
{
    protected function createServer(): GatewayServer
    {
        return new PhpBuiltinServer($this->root, $this->port, $this->envFile, $this->dir);
    }
}
