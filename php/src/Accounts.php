<?php

declare(strict_types=1);

namespace AmoGateway;

/** Facts across the configured accounts. */
final class Accounts
{
    /**
     * The configured account (other than $except) whose stored pair is for
     * the amoCRM account at $host, or null. Two accounts of the gateway on
     * one amoCRM account would each spend amoCRM's 7 requests per second
     * (amoCRM blocks the account) and each refresh would revoke the other's
     * pair: connecting, exchanging or importing such a pair is refused.
     */
    public static function holderOf(Config $config, string $host, string $except): ?string
    {
        $host = self::host($host);
        if ($host === '') {
            return null;
        }
        foreach ($config->accounts as $account) {
            if ($account === $except) {
                continue;
            }
            try {
                $held = \AmoClient::getInstance($account)->tokenStatus()['base_domain'] ?? null;
            } catch (\AmoException) {
                continue; // its state cannot be read: /ready and the log say so
            }
            if (is_string($held) && self::host($held) === $host) {
                return $account;
            }
        }
        return null;
    }

    /** An account host as amoCRM names it (`example.amocrm.ru`), whatever scheme, path or case it came with. */
    private static function host(string $s): string
    {
        $s = strtolower(trim($s));
        $s = (string) preg_replace('#^[a-z][a-z0-9+.-]*://#', '', $s);
        return rtrim(explode('/', $s, 2)[0], '.');
    }
}
