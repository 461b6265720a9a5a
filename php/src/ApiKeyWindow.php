<?php

declare(strict_types=1);

namespace AmoGateway;

use AmoGateway\Storage\FileStore;

/**
 * The short window in which /oauth/callback takes the authorization code
 * that amoCRM sends after an API-key exchange (`amocrm exchange-api-key`).
 * Such a code comes from amoCRM's servers: no state, no admin credential.
 * The CLI opens a window for one account of the gateway and one amoCRM host
 * before it asks amoCRM; the window lasts as long as amoCRM's codes (20
 * minutes) and takes one code, whose referer must be that host. Anyone who
 * reaches the callback meanwhile can at most spend the window (the code is
 * exchanged at that host only, so it cannot connect another amoCRM account);
 * the admin then runs the command again.
 */
final class ApiKeyWindow
{
    public const TTL = 1200;

    private static function path(Config $config, string $account): string
    {
        return $config->dataDir . '/oauth-states/api-key.' . $account . '.json';
    }

    /** The host as amoCRM names it in a referer: lower case, no scheme, no slash. */
    public static function host(string $host): string
    {
        return strtolower(rtrim(preg_replace('#^https?://#i', '', trim($host)) ?? '', '/'));
    }

    /**
     * Opens (or reopens) the account's window for $host; returns when it
     * closes. The file takes its folder's owner, so that php-fpm's user can
     * read and remove a window an admin opened as root.
     */
    public static function open(Config $config, string $account, string $host): int
    {
        $path = self::path($config, $account);
        FileStore::ensureDirLikeParent(dirname($path));
        $until = time() + self::TTL;
        FileStore::writeAtomic($path, json_encode(['host' => self::host($host), 'until' => $until], JSON_THROW_ON_ERROR));
        $owner = @fileowner(dirname($path));
        if ($owner !== false && $owner !== @fileowner($path)) {
            @chown($path, $owner);
        }
        return $until;
    }

    public static function close(Config $config, string $account): void
    {
        @unlink(self::path($config, $account));
    }

    /**
     * The account whose open window is for $referer, with that window
     * closed: exactly one request takes it (one unlink succeeds). Null when
     * no window is open for that host.
     */
    public static function take(Config $config, string $referer): ?string
    {
        $host = self::host($referer);
        foreach ($config->accounts as $account) {
            $path = self::path($config, $account);
            $raw = @file_get_contents($path, false, null, 0, 4096);
            $window = $raw === false ? null : json_decode($raw, true);
            if (!is_array($window) || !is_string($window['host'] ?? null) || !is_int($window['until'] ?? null)) {
                continue;
            }
            if ($window['until'] < time()) {
                @unlink($path);
                continue;
            }
            if ($host !== '' && hash_equals($window['host'], $host) && @unlink($path)) {
                return $account;
            }
        }
        return null;
    }
}
