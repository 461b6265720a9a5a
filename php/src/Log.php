<?php

declare(strict_types=1);

namespace AmoGateway;

/**
 * The gateway's lines in PHP's error log (php-fpm's php_admin_value[error_log],
 * php -S's stderr or error_log). Callers pass facts, never a secret: no token,
 * key, password or request body goes in.
 */
final class Log
{
    public static function write(string $message): void
    {
        // One line per event: a log watcher counts lines.
        error_log('amocrm gateway: ' . str_replace(["\r", "\n"], ' ', $message));
    }

    /** The request path as it may appear in a log: the webhook secret masked. */
    public static function path(string $path): string
    {
        return (string) preg_replace('#^/webhooks/amocrm/[^/]*#', '/webhooks/amocrm/[secret]', $path);
    }
}
