<?php

declare(strict_types=1);

namespace AmoGateway;

use AmoGateway\Http\TrustedProxies;
use AmoGateway\Lead\FieldMap;

/**
 * The gateway's configuration from a .env file: php/.env, or the file named
 * by GATEWAY_ENV_FILE. Validated once; an error names the key, never a value.
 */
final class Config
{
    public const REQUIRED = ['GATEWAY_API_KEYS', 'GATEWAY_ADMIN_USER', 'GATEWAY_ADMIN_PASSWORD', 'GATEWAY_SECRET', 'GATEWAY_WEBHOOK_SECRET'];

    /** The account whose keys have no account part (AMOCRM_<KEY>, a bare API key). */
    public const DEFAULT_ACCOUNT = 'default';
    /** The extension's account names: what AmoClient::getInstance($account) takes. */
    public const ACCOUNT_NAME = '/^[a-z0-9][a-z0-9_-]{0,31}$/';
    /** /ready and /metrics read every account's state on each call: a bound on that work. */
    public const MAX_ACCOUNTS = 100;
    /** The gateway's own folders under the data dir, which no account's token file may share. */
    private const OWN_FOLDERS = ['cache', 'idempotency', 'throttle', 'oauth-states', 'webhooks', 'uploads'];

    /** @var list<string> the configured accounts, in GATEWAY_ACCOUNTS order */
    public readonly array $accounts;
    /** @var list<array{key: string, account: string}> */
    public readonly array $apiKeys;
    public readonly string $adminUser;
    public readonly string $adminPassword;
    public readonly string $secret;
    /** @var list<array{secret: string, account: string}> */
    public readonly array $webhookSecrets;
    public readonly string $dataDir;
    public readonly int $infoCacheTtl;
    public readonly int $maxBody;
    public readonly int $webhookMaxBody;
    /** The largest file POST /api/leads/{id}/files takes (GATEWAY_FILE_MAX_BYTES). */
    public readonly int $fileMaxBytes;
    public readonly int $idempotencyTtl;
    public readonly ?int $defaultPipelineId;
    public readonly ?int $defaultStatusId;
    public readonly ?int $defaultResponsibleUserId;
    /** @var array<string, array{entity: string, field_id?: int, field_code?: string}> */
    public readonly array $fieldMap;
    public readonly TrustedProxies $trustedProxies;
    /** @var list<string> */
    public readonly array $webhookHandlers;
    /** @var array<string, array<string, string>> per account: the options for AmoClient::configure($options, $account) */
    public readonly array $amocrm;
    /** @var array<string, array<string, string>> per account: option key => the .env key that set it (for messages) */
    private readonly array $amocrmSources;
    public readonly string $envFile;

    /** @param array<string, string> $env */
    private function __construct(#[\SensitiveParameter] array $env, string $envFile)
    {
        $this->envFile = $envFile;
        $root = dirname(__DIR__);
        foreach (self::REQUIRED as $key) {
            if (($env[$key] ?? '') === '') {
                throw new ConfigError("$key is not set in $envFile");
            }
        }
        $this->accounts = self::accounts($env['GATEWAY_ACCOUNTS'] ?? '');
        $this->apiKeys = array_map(static fn (array $e): array => ['key' => $e[1], 'account' => $e[0]],
            $this->credentials($env, 'GATEWAY_API_KEYS', 'key', static function (#[\SensitiveParameter] string $key, int $n): void {
                if (strlen($key) < 16) {
                    throw new ConfigError("GATEWAY_API_KEYS: key #$n is shorter than 16 characters");
                }
            }));
        if (preg_match('/[:\x00-\x1F\x7F]/', $env['GATEWAY_ADMIN_USER'])) {
            // HTTP Basic splits user and password at the first colon.
            throw new ConfigError('GATEWAY_ADMIN_USER may not contain a colon or control characters');
        }
        $this->adminUser = $env['GATEWAY_ADMIN_USER'];
        $this->adminPassword = self::minLength($env, 'GATEWAY_ADMIN_PASSWORD', 12);
        $this->secret = self::minLength($env, 'GATEWAY_SECRET', 32);
        $this->webhookSecrets = array_map(static fn (array $e): array => ['secret' => $e[1], 'account' => $e[0]],
            $this->credentials($env, 'GATEWAY_WEBHOOK_SECRET', 'secret', static function (#[\SensitiveParameter] string $secret, int $n): void {
                if (strlen($secret) < 16) {
                    throw new ConfigError("GATEWAY_WEBHOOK_SECRET: secret #$n must be at least 16 characters");
                }
                if (!preg_match('/^[A-Za-z0-9_-]+$/', $secret)) {
                    throw new ConfigError("GATEWAY_WEBHOOK_SECRET: secret #$n may hold only letters, digits, _ and - (it is part of a URL)");
                }
            }));
        $this->dataDir = rtrim(self::path($env['GATEWAY_DATA_DIR'] ?? '', "$root/var", $root), '/');
        $this->infoCacheTtl = self::int($env, 'GATEWAY_INFO_CACHE_TTL', 300, 0, 86400);
        $this->maxBody = self::int($env, 'GATEWAY_MAX_BODY', 65536, 1024, 10 * 1024 * 1024);
        // amoCRM's deliveries carry whole entities (a mass status change, many
        // custom fields): a refused delivery is lost, so their limit is larger.
        $this->webhookMaxBody = self::int($env, 'GATEWAY_WEBHOOK_MAX_BODY', 1024 * 1024, 1024, 16 * 1024 * 1024);
        // A website form's file, spooled to disk (never into memory): 50 MiB
        // by default, at most 1 GiB. nginx's client_max_body_size for the
        // route (php/deploy/nginx-site.conf) must be as large plus the form.
        $this->fileMaxBytes = self::int($env, 'GATEWAY_FILE_MAX_BYTES', 50 * 1024 * 1024, 1024, 1024 * 1024 * 1024);
        $this->idempotencyTtl = self::int($env, 'GATEWAY_IDEMPOTENCY_TTL', 86400, 60, 30 * 86400);
        $this->defaultPipelineId = self::optionalId($env, 'GATEWAY_DEFAULT_PIPELINE_ID');
        $this->defaultStatusId = self::optionalId($env, 'GATEWAY_DEFAULT_STATUS_ID');
        $this->defaultResponsibleUserId = self::optionalId($env, 'GATEWAY_DEFAULT_RESPONSIBLE_USER_ID');
        $this->fieldMap = FieldMap::load(self::path($env['GATEWAY_FIELD_MAP'] ?? '', "$root/config/fields.php", $root));
        $this->trustedProxies = TrustedProxies::parse($env['GATEWAY_TRUSTED_PROXIES'] ?? '');
        $this->webhookHandlers = array_values(array_filter(array_map('trim', explode(',', $env['GATEWAY_WEBHOOK_HANDLERS'] ?? '')), 'strlen'));
        foreach ($this->webhookHandlers as $spec) {
            if (!preg_match('/^(jsonl|class):./', $spec)) {
                throw new ConfigError("GATEWAY_WEBHOOK_HANDLERS: `$spec` is neither jsonl:/path nor class:Name");
            }
        }
        [$this->amocrm, $this->amocrmSources] = $this->clientOptions($env, $root);
    }

    /**
     * GATEWAY_ACCOUNTS: comma-separated account names (absent: just `default`).
     * @return list<string>
     */
    private static function accounts(string $value): array
    {
        $accounts = array_values(array_filter(array_map('trim', explode(',', $value)), 'strlen'));
        if ($accounts === []) {
            return [self::DEFAULT_ACCOUNT];
        }
        if (count($accounts) > self::MAX_ACCOUNTS) {
            throw new ConfigError('GATEWAY_ACCOUNTS: at most ' . self::MAX_ACCOUNTS . ' accounts');
        }
        $prefixes = [];
        foreach ($accounts as $i => $a) {
            if (!preg_match(self::ACCOUNT_NAME, $a)) {
                throw new ConfigError('GATEWAY_ACCOUNTS: account #' . ($i + 1) . ' is not an account name (1 to 32 lower-case letters, digits, _ and -, starting with a letter or digit)');
            }
            $prefix = self::envPrefix($a);
            if (isset($prefixes[$prefix])) {
                throw new ConfigError($prefixes[$prefix] === $a
                    ? "GATEWAY_ACCOUNTS: account `$a` is listed twice"
                    : "GATEWAY_ACCOUNTS: accounts `{$prefixes[$prefix]}` and `$a` would share the keys {$prefix}<KEY>; rename one");
            }
            $prefixes[$prefix] = $a;
        }
        return $accounts;
    }

    /** The start of an account's own extension keys, as the extension reads them: AMOCRM_SHOP_1_ for shop-1. */
    public static function envPrefix(string $account): string
    {
        return $account === self::DEFAULT_ACCOUNT ? 'AMOCRM_' : 'AMOCRM_' . strtoupper(str_replace('-', '_', $account)) . '_';
    }

    /**
     * A list of `account:value` entries (a bare value is the default
     * account's): API keys, webhook secrets. Each value names one account, so
     * none may appear twice. Errors name the entry by its position, never by
     * its value.
     *
     * @param \Closure(string, int): void $check
     * @return list<array{0: string, 1: string}> [account, value]
     */
    private function credentials(#[\SensitiveParameter] array $env, string $key, string $what, \Closure $check): array
    {
        $out = [];
        $seen = [];
        $entries = array_values(array_filter(array_map('trim', explode(',', $env[$key])), 'strlen'));
        if ($entries === []) {
            throw new ConfigError("$key has no $what");
        }
        foreach ($entries as $i => $entry) {
            $n = $i + 1;
            $account = self::DEFAULT_ACCOUNT;
            if (str_contains($entry, ':')) {
                [$account, $entry] = array_map('trim', explode(':', $entry, 2));
                if (!preg_match(self::ACCOUNT_NAME, $account)) {
                    throw new ConfigError("$key: the part before `:` of $what #$n is not an account name (write account:$what; a $what may not contain `:`)");
                }
                if (!in_array($account, $this->accounts, true)) {
                    throw new ConfigError("$key: $what #$n names account `$account`, which is not in GATEWAY_ACCOUNTS");
                }
            } elseif (!in_array(self::DEFAULT_ACCOUNT, $this->accounts, true)) {
                throw new ConfigError("$key: $what #$n names no account (write account:$what), and `default` is not in GATEWAY_ACCOUNTS");
            }
            $check($entry, $n);
            if (isset($seen[$entry])) {
                throw new ConfigError("$key: $what #$n is the same as $what #{$seen[$entry]}: each names one account");
            }
            $seen[$entry] = $n;
            $out[] = [$account, $entry];
        }
        return $out;
    }

    /**
     * The AMOCRM_* keys of the .env, per account: AMOCRM_<KEY> for every
     * account (the default's own), AMOCRM_<ACCOUNT>_<KEY> for that account
     * alone, as the extension reads its environment. An account without a
     * token_path of its own keeps its pair in <folder of AMOCRM_TOKEN_PATH>/<account>/,
     * the extension's rule (given here explicitly: options handed to
     * configure() count as the account's own).
     *
     * @return array{0: array<string, array<string, string>>, 1: array<string, array<string, string>>}
     */
    private function clientOptions(#[\SensitiveParameter] array $env, string $root): array
    {
        $known = self::extensionKeys();
        $names = [];
        foreach ($known as $k) {
            $names['AMOCRM_' . strtoupper($k)] = [null, $k];
        }
        foreach ($this->accounts as $a) {
            if ($a === self::DEFAULT_ACCOUNT) {
                continue;
            }
            foreach ($known as $k) {
                $name = self::envPrefix($a) . strtoupper($k);
                if (isset($names[$name])) {
                    // e.g. an account `connect`: AMOCRM_CONNECT_TIMEOUT is also connect_timeout.
                    $other = $names[$name][0] === null ? 'the shared `' . $names[$name][1] . '`' : "account `{$names[$name][0]}`'s `{$names[$name][1]}`";
                    throw new ConfigError("GATEWAY_ACCOUNTS: account `$a` makes $name ambiguous (also $other); rename the account");
                }
                $names[$name] = [$a, $k];
            }
        }
        $shared = $own = [];
        foreach ($env as $name => $v) {
            if (!str_starts_with($name, 'AMOCRM_')) {
                continue;
            }
            if (!isset($names[$name])) {
                throw new ConfigError(self::unknownKey($name, $known));
            }
            if ($v === '') {
                continue; // unset: the shared value, or the extension's default
            }
            [$a, $k] = $names[$name];
            if ($a === null) {
                $shared[$k] = $v;
            } else {
                $own[$a][$k] = $v;
            }
        }
        $sharedTokenPath = self::path($shared['token_path'] ?? '', $this->dataDir . '/tokens.json', $root);
        $options = $sources = $byPath = [];
        foreach ($this->accounts as $a) {
            $mine = $own[$a] ?? [];
            $opts = $mine + $shared;
            $src = [];
            foreach ($opts as $k => $unused) {
                $src[$k] = isset($mine[$k]) ? self::envPrefix($a) . strtoupper($k) : 'AMOCRM_' . strtoupper($k);
            }
            if (isset($mine['token_path'])) {
                $opts['token_path'] = self::path($mine['token_path'], $sharedTokenPath, $root);
            } elseif ($a === self::DEFAULT_ACCOUNT) {
                $opts['token_path'] = $sharedTokenPath;
                $src['token_path'] = 'AMOCRM_TOKEN_PATH';
            } else {
                $opts['token_path'] = dirname($sharedTokenPath) . "/$a/" . basename($sharedTokenPath);
                $src['token_path'] = 'GATEWAY_ACCOUNTS';
            }
            $path = $opts['token_path'];
            if (isset($byPath[$path])) {
                throw new ConfigError("{$src['token_path']}: account `$a` would share the token file of account `{$byPath[$path]}`; each account needs its own");
            }
            $byPath[$path] = $a;
            if (in_array($opts['store'] ?? 'file', ['', 'file'], true)) {
                foreach (self::OWN_FOLDERS as $folder) {
                    $f = $this->dataDir . '/' . $folder;
                    if (dirname($path) === $f || str_starts_with(dirname($path), "$f/")) {
                        throw new ConfigError("{$src['token_path']}: account `$a` would keep its token file in the gateway's own folder $f, where files are swept; "
                            . ($src['token_path'] === 'GATEWAY_ACCOUNTS' ? 'rename the account or set ' . self::envPrefix($a) . 'TOKEN_PATH' : 'choose another path'));
                    }
                }
            }
            $options[$a] = $opts;
            $sources[$a] = $src;
        }
        return [$options, $sources];
    }

    /** The extension's configuration keys, as it declares them (its php.ini entries amocrm.<key>). @return list<string> */
    private static function extensionKeys(): array
    {
        $ini = extension_loaded('amocrm') ? ini_get_all('amocrm', false) : false;
        if (!is_array($ini) || $ini === []) {
            throw new ConfigError('the amocrm extension is not loaded in this PHP (php -m | grep amocrm)');
        }
        return array_map(static fn (string $k): string => substr($k, strlen('amocrm.')), array_keys($ini));
    }

    /** Why an AMOCRM_* key of the .env names nothing: an account not configured, or no such key. @param list<string> $known */
    private static function unknownKey(string $name, array $known): string
    {
        $key = null;
        foreach ($known as $k) {
            // The longest key that ends the name: CONNECT_TIMEOUT before TIMEOUT.
            $suffix = '_' . strtoupper($k);
            if (str_ends_with($name, $suffix) && strlen($name) > strlen('AMOCRM_' . $suffix) && strlen($k) > strlen($key ?? '')) {
                $key = $k;
            }
        }
        if ($key !== null) {
            $account = substr($name, 7, -strlen($key) - 1);
            return $account === 'DEFAULT'
                ? "$name: the default account's keys have no account part (AMOCRM_" . strtoupper($key) . ')'
                : "$name names an account ($account) that is not in GATEWAY_ACCOUNTS";
        }
        return "$name is not a key of the amocrm extension (AMOCRM_<KEY> or AMOCRM_<ACCOUNT>_<KEY>; keys: " . implode(', ', $known) . ')';
    }

    /** Whether $account is configured. */
    public function hasAccount(string $account): bool
    {
        return in_array($account, $this->accounts, true);
    }

    /**
     * The extension's refusal of an account's options, naming the .env key
     * that set the value (AMOCRM_SHOP_1_RATE_LIMIT, or the shared AMOCRM_RATE_LIMIT).
     */
    public function explainClientError(string $account, string $message): string
    {
        if (preg_match('/`([a-z_]+)`/', $message, $m) && isset($this->amocrmSources[$account][$m[1]])) {
            return $this->amocrmSources[$account][$m[1]] . " (account $account): $message";
        }
        return "account $account: $message";
    }

    public static function load(?string $file = null): self
    {
        $file ??= (getenv('GATEWAY_ENV_FILE') ?: dirname(__DIR__) . '/.env');
        if (!is_file($file) || !is_readable($file)) {
            throw new ConfigError("cannot read $file: copy php/.env.example to php/.env (or set GATEWAY_ENV_FILE)");
        }
        return new self(self::parse((string) file_get_contents($file), $file), $file);
    }

    /** @return array<string, string> */
    public static function parse(#[\SensitiveParameter] string $text, string $file = '.env'): array
    {
        $env = [];
        foreach (preg_split('/\R/', $text) ?: [] as $n => $line) {
            $line = trim($line);
            if ($line === '' || $line[0] === '#') {
                continue;
            }
            if (str_starts_with($line, 'export ')) {
                $line = substr($line, 7);
            }
            if (!preg_match('/^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/', $line, $m)) {
                throw new ConfigError("$file line " . ($n + 1) . ': expected KEY=value');
            }
            $value = $m[2];
            if (strlen($value) >= 2 && ($value[0] === '"' || $value[0] === "'") && $value[strlen($value) - 1] === $value[0]) {
                $value = substr($value, 1, -1);
            } else {
                $value = trim((string) preg_replace('/\s+#.*$/', '', $value));
            }
            $env[$m[1]] = $value;
        }
        return $env;
    }


    /** @param array<string, string> $env */
    private static function minLength(#[\SensitiveParameter] array $env, string $key, int $min): string
    {
        if (strlen($env[$key]) < $min) {
            throw new ConfigError("$key must be at least $min characters");
        }
        return $env[$key];
    }

    /** @param array<string, string> $env */
    private static function int(#[\SensitiveParameter] array $env, string $key, int $default, int $min, int $max): int
    {
        $v = $env[$key] ?? '';
        if ($v === '') {
            return $default;
        }
        if (!preg_match('/^\d+$/', $v) || (int) $v < $min || (int) $v > $max) {
            throw new ConfigError("$key must be a whole number from $min to $max");
        }
        return (int) $v;
    }

    /** @param array<string, string> $env */
    private static function optionalId(#[\SensitiveParameter] array $env, string $key): ?int
    {
        $v = $env[$key] ?? '';
        if ($v === '') {
            return null;
        }
        if (!preg_match('/^[1-9]\d*$/', $v)) {
            throw new ConfigError("$key must be a positive id");
        }
        return (int) $v;
    }

    private static function path(string $value, string $default, string $root): string
    {
        if ($value === '') {
            return $default;
        }
        return $value[0] === '/' ? $value : dirname($root) . '/' . $value;
    }
}
