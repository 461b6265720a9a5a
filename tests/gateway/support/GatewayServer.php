<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/** The gateway served by a real web server on a loopback port. */
interface GatewayServer
{
    /** Starts the server and returns once it accepts connections. */
    public function start(): void;

    /** Stops the server and every process it started; safe to call twice. */
    public function stop(): void;

    /** e.g. http://127.0.0.1:8123 */
    public function baseUrl(): string;

    /** A short label for messages: "php -S" or "nginx + php-fpm". */
    public function label(): string;

    /** The tail of the server's logs, for failure messages. */
    public function logs(): string;

    /**
     * PHP warnings, notices, deprecations and fatal errors the gateway caused
     * (from the server's logs): a passing test must cause none.
     * @return list<string>
     */
    public function phpErrors(): array;

    /** The PHP error log of the gateway (error_log() lines and PHP's own), whole. */
    public function errorLog(): string;

    /** How many PHP processes serve requests in parallel. */
    public function workers(): int;
}
