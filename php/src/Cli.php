<?php

declare(strict_types=1);

namespace AmoGateway;

use AmoGateway\Webhook\Spool;

/** php/bin/amocrm: status, refresh, keepalive, authorize-url, exchange, import, webhooks:replay. */
final class Cli
{
    public const OK = 0;
    public const ERROR = 1;
    public const REAUTHORIZE = 2;
    public const USAGE = 64;
    public const CONFIG = 78;

    /** The extension's token-file limit. */
    private const TOKEN_FILE_LIMIT = 65536;

    private const USAGE_TEXT = <<<'TXT'
        usage: amocrm <command>
          status                    token status (exit 2 when an admin must re-authorize)
          refresh [--force]         refresh now if due (or always, with --force)
          keepalive [--max-age=N]   refresh when the pair is older than N days (default 30): run daily from cron
          authorize-url             the amoCRM consent URL, for setting up without the gateway's pages
          exchange CODE REFERER     store the pair for an authorization code (from the consent redirect)
          import FILE               take over tokens from the old gateway's or the official library's token file
          webhooks:replay [--all]   run the handlers again for failed and stuck (pending > 60 s) webhook
                                    deliveries; --all: every pending one too
        TXT;

    /** @param list<string> $argv */
    public static function main(array $argv): int
    {
        $args = array_slice($argv, 1);
        $command = array_shift($args) ?? '';
        if ($command === '' || $command === '--help' || $command === 'help') {
            fwrite(STDOUT, self::USAGE_TEXT . "\n");
            return $command === '' ? self::USAGE : self::OK;
        }
        try {
            $config = Config::load();
            App::configureClient($config);
        } catch (ConfigError | \AmoConfigException $e) {
            fwrite(STDERR, "amocrm: configuration: {$e->getMessage()}\n");
            return self::CONFIG;
        }
        $flags = ['status' => [], 'refresh' => ['--force'], 'authorize-url' => [], 'webhooks:replay' => ['--all']];
        if (isset($flags[$command])) {
            foreach ($args as $a) {
                if (!in_array($a, $flags[$command], true)) {
                    return self::usage("$command does not take `$a`");
                }
            }
        }
        try {
            return match ($command) {
                'status' => self::status(),
                'refresh' => self::refresh(in_array('--force', $args, true)),
                'keepalive' => self::keepalive($args),
                'authorize-url' => self::authorizeUrl(),
                'exchange' => self::exchange($args),
                'import' => self::import($args),
                'webhooks:replay' => self::replay($config, in_array('--all', $args, true)),
                default => self::usage("unknown command `$command`"),
            };
        } catch (\AmoAuthException $e) {
            fwrite(STDERR, "amocrm: {$e->getMessage()}\n");
            return self::REAUTHORIZE;
        } catch (\AmoException $e) {
            fwrite(STDERR, 'amocrm: ' . get_class($e) . ": {$e->getMessage()}\n");
            return self::ERROR;
        } catch (\Throwable $e) {
            // A data dir it cannot write, a handler that throws: exit 1 with
            // the cause, as cron and monitoring expect, not PHP's fatal error
            // (exit 255, a stack trace).
            fwrite(STDERR, 'amocrm: ' . get_class($e) . ": {$e->getMessage()}\n");
            return self::ERROR;
        }
    }

    private static function usage(string $why): int
    {
        fwrite(STDERR, "amocrm: $why\n" . self::USAGE_TEXT . "\n");
        return self::USAGE;
    }

    /** @param array<string, mixed> $s */
    private static function describe(array $s): string
    {
        if (!$s['authorized']) {
            return "not authorized: {$s['reauthorization_reason']}";
        }
        $lines = ["account:        {$s['base_domain']} ({$s['mode']})"];
        if ($s['expires_at'] !== null) {
            $lines[] = 'access token:   valid until ' . gmdate('Y-m-d H:i', $s['expires_at']) . ' UTC (in ' . self::duration($s['expires_in']) . ')';
        }
        if ($s['refresh_expires_at'] !== null) {
            $lines[] = 'refresh token:  dies unused at ' . gmdate('Y-m-d H:i', $s['refresh_expires_at']) . ' UTC (in ' . self::duration($s['refresh_expires_at'] - time()) . ')';
        }
        if ($s['updated_at'] !== null) {
            $lines[] = 'pair obtained:  ' . gmdate('Y-m-d H:i', $s['updated_at']) . ' UTC';
        }
        if ($s['needs_reauthorization']) {
            $lines[] = "RE-AUTHORIZE:   {$s['reauthorization_reason']}";
        }
        return implode("\n", $lines);
    }

    private static function duration(int $seconds): string
    {
        if ($seconds <= 0) {
            return 'the past';
        }
        return $seconds >= 86400 ? intdiv($seconds, 86400) . ' d' : ($seconds >= 3600 ? intdiv($seconds, 3600) . ' h' : intdiv($seconds, 60) . ' min');
    }

    private static function status(): int
    {
        $s = \AmoClient::getInstance()->tokenStatus();
        fwrite(STDOUT, self::describe($s) . "\n");
        return $s['authorized'] && !$s['needs_reauthorization'] ? self::OK : self::REAUTHORIZE;
    }

    private static function refresh(bool $force): int
    {
        $before = \AmoClient::getInstance()->tokenStatus();
        $s = \AmoClient::getInstance()->refreshToken($force);
        fwrite(STDOUT, ($s['updated_at'] !== $before['updated_at'] ? 'refreshed' : 'not due (use --force)') . "\n" . self::describe($s) . "\n");
        return self::OK;
    }

    /** @param list<string> $args */
    private static function keepalive(array $args): int
    {
        $days = 30;
        foreach ($args as $a) {
            if (preg_match('/^--max-age=(\d{1,4})$/', $a, $m) && (int) $m[1] >= 1 && (int) $m[1] <= 80) {
                $days = (int) $m[1];
            } else {
                return self::usage("keepalive takes --max-age=DAYS (1 to 80: the refresh token dies after 90 unused days), not `$a`");
            }
        }
        $amo = \AmoClient::getInstance();
        $s = $amo->tokenStatus();
        if (!$s['authorized'] || $s['needs_reauthorization'] || $s['mode'] !== 'oauth') {
            fwrite(STDERR, 'amocrm: ' . ($s['mode'] !== 'oauth' ? 'a long-lived token has nothing to keep alive' : $s['reauthorization_reason']) . "\n");
            return $s['mode'] !== 'oauth' ? self::OK : self::REAUTHORIZE;
        }
        $age = time() - (int) $s['updated_at'];
        $after = $amo->keepAlive($days);
        if ($after['updated_at'] === $s['updated_at']) {
            fwrite(STDOUT, 'keepalive: pair is ' . self::duration($age) . " old, under $days d: nothing to do\n");
            return self::OK;
        }
        fwrite(STDOUT, 'keepalive: pair was ' . self::duration($age) . " old: refreshed\n" . self::describe($after) . "\n");
        return self::OK;
    }

    private static function authorizeUrl(): int
    {
        $state = bin2hex(random_bytes(16));
        fwrite(STDOUT, \AmoClient::getInstance()->authorizationUrl($state, 'popup') . "\nstate: $state\n"
            . "After consenting, amoCRM redirects to the redirect_uri with code and referer: run\n  amocrm exchange CODE REFERER\n");
        return self::OK;
    }

    /** @param list<string> $args */
    private static function exchange(array $args): int
    {
        if (count($args) !== 2) {
            return self::usage('exchange takes CODE REFERER');
        }
        $s = \AmoClient::getInstance()->exchangeCode($args[0], $args[1]);
        fwrite(STDOUT, "stored\n" . self::describe($s) . "\n");
        return self::OK;
    }

    /** @param list<string> $args */
    private static function import(array $args): int
    {
        if (count($args) !== 1) {
            return self::usage('import takes FILE');
        }
        // At most the token-file limit (64 KiB) and one byte more, to tell
        // "too large" apart: `import /dev/zero` must not read forever.
        $raw = is_dir($args[0]) ? false : @file_get_contents($args[0], false, null, 0, self::TOKEN_FILE_LIMIT + 1);
        if ($raw === false) {
            fwrite(STDERR, "amocrm: cannot read {$args[0]}; nothing was changed\n");
            return self::ERROR;
        }
        if (strlen($raw) > self::TOKEN_FILE_LIMIT) {
            fwrite(STDERR, "amocrm: {$args[0]} is larger than 64 KiB, the token-file limit: not a token file; nothing was changed\n");
            return self::ERROR;
        }
        $pair = json_decode($raw, true, 8);
        if (!is_array($pair)) {
            fwrite(STDERR, "amocrm: {$args[0]} is not a JSON object; nothing was changed\n");
            return self::ERROR;
        }
        try {
            $s = \AmoClient::getInstance()->importTokens($pair);
        } catch (\AmoConfigException $e) {
            fwrite(STDERR, "amocrm: {$args[0]}: {$e->getMessage()}; nothing was changed\n");
            return self::ERROR;
        }
        fwrite(STDOUT, "imported {$args[0]}\n" . self::describe($s) . "\n");
        return self::OK;
    }

    private static function replay(Config $config, bool $all): int
    {
        [$ok, $failed] = (new Spool($config))->replay($all);
        fwrite(STDOUT, "webhooks:replay: $ok delivered, $failed still failing\n");
        return $failed === 0 ? self::OK : self::ERROR;
    }
}
