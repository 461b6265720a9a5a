<?php

declare(strict_types=1);

namespace AmoGateway;

use AmoGateway\Webhook\Spool;

/**
 * php/bin/amocrm: status, refresh, keepalive, authorize-url, exchange,
 * exchange-api-key, import, export, webhooks:replay — for one account
 * (--account=NAME, `default` unless named) or, for status/refresh/keepalive,
 * every configured one (--all-accounts).
 */
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
        usage: amocrm [--account=NAME | --all-accounts] <command>
          status                    token status (exit 2 when an admin must re-authorize)
          refresh [--force]         refresh now if due (or always, with --force)
          keepalive [--max-age=N]   refresh when the pair is older than N days (default 30): run daily from cron
          authorize-url             the amoCRM consent URL, for setting up without the gateway's pages
          exchange CODE REFERER     store the pair for an authorization code (from the consent redirect)
          exchange-api-key LOGIN HOST
                                    trade an old API key (read from stdin) for OAuth: amoCRM sends a code
                                    to the redirect URI, which the gateway takes once, from HOST, within
                                    20 minutes
          import FILE               take over tokens from a token file: the old gateway's, the official
                                    library's, or one `export` wrote (moving between stores)
          export FILE               write the stored pair to a new file (0600; never over an existing one),
                                    for `import` into another store or host; no refresh
          webhooks:replay [--all]   run the handlers again for failed and stuck (pending > 60 s) webhook
                                    deliveries; --all: every pending one too
        --account=NAME              the account of GATEWAY_ACCOUNTS to act on (default: default; for
                                    webhooks:replay: every account's deliveries unless named)
        --all-accounts              status, refresh, keepalive: every configured account in turn; exit 2 if
                                    any needs re-authorization, else 1 if any failed, else 0
        TXT;

    /** Commands that --all-accounts runs for every account. */
    private const PER_ACCOUNT = ['status', 'refresh', 'keepalive'];

    /** @param list<string> $argv */
    public static function main(array $argv): int
    {
        $args = [];
        $account = null;
        $allAccounts = false;
        foreach (array_slice($argv, 1) as $a) {
            if (str_starts_with($a, '--account=')) {
                if ($account !== null) {
                    return self::usage('--account is given twice');
                }
                $account = substr($a, strlen('--account='));
            } elseif ($a === '--all-accounts') {
                $allAccounts = true;
            } elseif ($a === '--account') {
                return self::usage('write --account=NAME');
            } else {
                $args[] = $a;
            }
        }
        $command = array_shift($args) ?? '';
        if ($command === '' || $command === '--help' || $command === 'help') {
            fwrite(STDOUT, self::USAGE_TEXT . "\n");
            return $command === '' ? self::USAGE : self::OK;
        }
        if ($allAccounts && ($account !== null || !in_array($command, self::PER_ACCOUNT, true))) {
            return self::usage($account !== null ? '--all-accounts and --account exclude each other' : "--all-accounts is for " . implode(', ', self::PER_ACCOUNT) . ", not $command");
        }
        if ($account !== null && !preg_match(Config::ACCOUNT_NAME, $account)) {
            return self::usage('--account: not an account name (1 to 32 lower-case letters, digits, _ and -)');
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
        if ($command === 'webhooks:replay') {
            // The spool holds every account's deliveries: all of them unless one is named.
            if ($account !== null && !$config->hasAccount($account)) {
                return self::usage("account `$account` is not in GATEWAY_ACCOUNTS (" . implode(', ', $config->accounts) . ')');
            }
            return self::guarded(null, fn (): int => self::replay($config, in_array('--all', $args, true), $account));
        }
        if ($allAccounts) {
            $exits = [];
            foreach ($config->accounts as $a) {
                fwrite(STDOUT, "== account $a ==\n");
                $exits[] = self::run($command, $args, $a, $config, $a);
                if ($exits[0] === self::USAGE) {
                    return self::USAGE; // the same arguments for every account
                }
            }
            // Worst first: a human must act, then a failure, then fine.
            return in_array(self::REAUTHORIZE, $exits, true) ? self::REAUTHORIZE
                : (array_filter($exits, static fn (int $e): bool => $e !== self::OK) === [] ? self::OK : max($exits));
        }
        $account ??= Config::DEFAULT_ACCOUNT;
        if (!$config->hasAccount($account)) {
            return self::usage(($account === Config::DEFAULT_ACCOUNT ? 'name the account with --account=NAME: `default`' : "account `$account`")
                . ' is not in GATEWAY_ACCOUNTS (' . implode(', ', $config->accounts) . ')');
        }
        return self::run($command, $args, $account, $config, count($config->accounts) > 1 ? $account : null);
    }

    /**
     * One command for one account.
     * @param list<string> $args
     * @param ?string $label the account to name in messages (null: a gateway of one account)
     */
    private static function run(string $command, array $args, string $account, Config $config, ?string $label): int
    {
        $known = ['status', 'refresh', 'keepalive', 'authorize-url', 'exchange', 'exchange-api-key', 'import', 'export'];
        if (!in_array($command, $known, true)) {
            return self::usage("unknown command `$command`");
        }
        return self::guarded($label, function () use ($command, $args, $account, $config): int {
            $amo = \AmoClient::getInstance($account);
            return match ($command) {
                'status' => self::status($amo),
                'refresh' => self::refresh($amo, in_array('--force', $args, true)),
                'keepalive' => self::keepalive($amo, $args),
                'authorize-url' => self::authorizeUrl($amo),
                'exchange' => self::exchange($amo, $config, $args),
                'exchange-api-key' => self::exchangeApiKey($amo, $config, $args),
                'import' => self::import($amo, $config, $args),
                'export' => self::export($amo, $args),
            };
        });
    }

    /**
     * Runs $work, turning failures into their message and an exit code.
     * @param \Closure(): int $work
     */
    private static function guarded(?string $label, \Closure $work): int
    {
        $who = $label === null ? 'amocrm' : "amocrm [$label]";
        try {
            return $work();
        } catch (\AmoAuthException $e) {
            fwrite(STDERR, "$who: {$e->getMessage()}\n");
            return self::REAUTHORIZE;
        } catch (\AmoException $e) {
            fwrite(STDERR, "$who: " . get_class($e) . ": {$e->getMessage()}\n");
            return self::ERROR;
        } catch (\Throwable $e) {
            // A data dir it cannot write, a handler that throws: exit 1 with
            // the cause, as cron and monitoring expect, not PHP's fatal error
            // (exit 255, a stack trace).
            fwrite(STDERR, "$who: " . get_class($e) . ": {$e->getMessage()}\n");
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

    private static function status(\AmoClient $amo): int
    {
        $s = $amo->tokenStatus();
        fwrite(STDOUT, self::describe($s) . "\n");
        return $s['authorized'] && !$s['needs_reauthorization'] ? self::OK : self::REAUTHORIZE;
    }

    private static function refresh(\AmoClient $amo, bool $force): int
    {
        $before = $amo->tokenStatus();
        $s = $amo->refreshToken($force);
        fwrite(STDOUT, ($s['updated_at'] !== $before['updated_at'] ? 'refreshed' : 'not due (use --force)') . "\n" . self::describe($s) . "\n");
        return self::OK;
    }

    /** @param list<string> $args */
    private static function keepalive(\AmoClient $amo, array $args): int
    {
        $days = 30;
        foreach ($args as $a) {
            if (preg_match('/^--max-age=(\d{1,4})$/', $a, $m) && (int) $m[1] >= 1 && (int) $m[1] <= 80) {
                $days = (int) $m[1];
            } else {
                return self::usage("keepalive takes --max-age=DAYS (1 to 80: the refresh token dies after 90 unused days), not `$a`");
            }
        }
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

    private static function authorizeUrl(\AmoClient $amo): int
    {
        $state = bin2hex(random_bytes(16));
        fwrite(STDOUT, $amo->authorizationUrl($state, 'popup') . "\nstate: $state\n"
            . "After consenting, amoCRM redirects to the redirect_uri with code and referer: run\n  amocrm exchange CODE REFERER\n");
        return self::OK;
    }

    /** @param list<string> $args */
    private static function exchange(\AmoClient $amo, Config $config, array $args): int
    {
        if (count($args) !== 2) {
            return self::usage('exchange takes CODE REFERER');
        }
        if (self::heldElsewhere($amo, $config, $args[1])) {
            return self::ERROR;
        }
        $s = $amo->exchangeCode($args[0], $args[1]);
        fwrite(STDOUT, "stored\n" . self::describe($s) . "\n");
        return self::OK;
    }

    /**
     * The API key comes on stdin (one line), never in argv, where `ps` and
     * the shell's history would show it. The window opens before amoCRM is
     * asked: its code may reach the callback before the 202 reaches us.
     * @param list<string> $args
     */
    private static function exchangeApiKey(\AmoClient $amo, Config $config, array $args): int
    {
        if (count($args) !== 2) {
            return self::usage('exchange-api-key takes LOGIN HOST (the API key on stdin)');
        }
        [$login, $host] = $args;
        if (function_exists('posix_isatty') && posix_isatty(STDIN)) {
            fwrite(STDERR, "API key of $login: ");
        }
        $key = trim((string) fgets(STDIN, 4096));
        if ($key === '') {
            fwrite(STDERR, "amocrm: exchange-api-key reads the API key from stdin (one line) and got none; nothing was sent\n");
            return self::ERROR;
        }
        if (self::heldElsewhere($amo, $config, $host)) {
            return self::ERROR;
        }
        $until = ApiKeyWindow::open($config, $amo->getAccount(), $host);
        try {
            $amo->exchangeApiKey($login, $key, $host);
        } catch (\Throwable $e) {
            ApiKeyWindow::close($config, $amo->getAccount());
            throw $e;
        }
        fwrite(STDOUT, "amoCRM took the API key of $login and sends an authorization code to the redirect URI.\n"
            . 'The gateway takes that code once, from ' . ApiKeyWindow::host($host) . ', until ' . gmdate('H:i', $until) . " UTC; then `amocrm status` shows the account connected.\n");
        return self::OK;
    }

    /** @param list<string> $args */
    private static function import(\AmoClient $amo, Config $config, array $args): int
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
        $host = $pair['base_domain'] ?? $pair['baseDomain'] ?? null;
        if (is_string($host) && self::heldElsewhere($amo, $config, $host)) {
            return self::ERROR;
        }
        try {
            $s = $amo->importTokens($pair);
        } catch (\AmoConfigException $e) {
            fwrite(STDERR, "amocrm: {$args[0]}: {$e->getMessage()}; nothing was changed\n");
            return self::ERROR;
        }
        fwrite(STDOUT, "imported {$args[0]}\n" . self::describe($s) . "\n");
        return self::OK;
    }

    /** Refuses (with a message) a pair for an amoCRM account another configured account holds: see Accounts::holderOf(). */
    private static function heldElsewhere(\AmoClient $amo, Config $config, string $host): bool
    {
        $holder = Accounts::holderOf($config, $host, $amo->getAccount());
        if ($holder !== null) {
            fwrite(STDERR, "amocrm: that amoCRM account is already held by account `$holder`; two accounts of the gateway would revoke "
                . "each other's pairs and share amoCRM's rate limit. Nothing was changed (remove `$holder` from GATEWAY_ACCOUNTS first when moving it)\n");
            return true;
        }
        return false;
    }

    /** @param list<string> $args */
    private static function export(\AmoClient $amo, array $args): int
    {
        if (count($args) !== 1 || $args[0] === '') {
            return self::usage('export takes FILE');
        }
        $path = $args[0][0] === '/' ? $args[0] : getcwd() . '/' . $args[0];
        try {
            // The extension reads the stored pair and writes the new file itself: no token passes through PHP.
            $s = $amo->exportTokens($path);
        } catch (\AmoConfigException $e) {
            fwrite(STDERR, "amocrm: {$e->getMessage()}\n");
            return self::ERROR;
        }
        fwrite(STDOUT, "exported to $path (mode 0600; it holds the pair: `amocrm import` it into the new store, then delete it)\n"
            . self::describe($s) . "\n");
        return self::OK;
    }

    private static function replay(Config $config, bool $all, ?string $account): int
    {
        [$ok, $failed] = (new Spool($config))->replay($all, $account);
        fwrite(STDOUT, "webhooks:replay: $ok delivered, $failed still failing\n");
        return $failed === 0 ? self::OK : self::ERROR;
    }
}
