<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * For a test class that runs the gateway under Debian's nginx + php-fpm,
 * configured from php/deploy/ (4 static workers).
 */
trait OnNginxFpm
{
    protected function setUp(): void
    {
        parent::setUp();
        if (!NginxFpmServer::available()) {
            $this->fail('nginx and php-fpm' . PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION . ' are needed (./build.sh test installs them): ' . NginxFpmServer::NGINX . ', ' . NginxFpmServer::FPM);
        }
    }

    protected function createServer(): GatewayServer
    {
        return new NginxFpmServer($this->root, $this->port, $this->envFile, $this->dir, 4);
    }
}
