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

    /** @var list<string> */
    public readonly array $apiKeys;
    public readonly string $adminUser;
    public readonly string $adminPassword;
    public readonly string $secret;
    public readonly string $webhookSecret;
    public readonly string $dataDir;
    public readonly int $infoCacheTtl;
    public readonly int $maxBody;
    public readonly int $webhookMaxBody;
    public readonly int $idempotencyTtl;
    public readonly ?int $defaultPipelineId;
    public readonly ?int $defaultStatusId;
    public readonly ?int $defaultResponsibleUserId;
    /** @var array<string, array{entity: string, field_id?: int, field_code?: string}> */
    public readonly array $fieldMap;
    public readonly TrustedProxies $trustedProxies;
    /** @var list<string> */
    public readonly array $webhookHandlers;
    /** @var array<string, string> options for AmoClient::configure() */
    public readonly array $amocrm;
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
        $keys = array_values(array_filter(array_map('trim', explode(',', $env['GATEWAY_API_KEYS'])), 'strlen'));
        foreach ($keys as $i => $key) {
            if (strlen($key) < 16) {
                throw new ConfigError('GATEWAY_API_KEYS: key #' . ($i + 1) . ' is shorter than 16 characters');
            }
        }
        $this->apiKeys = $keys;
        if (preg_match('/[:\x00-\x1F\x7F]/', $env['GATEWAY_ADMIN_USER'])) {
            // HTTP Basic splits user and password at the first colon.
            throw new ConfigError('GATEWAY_ADMIN_USER may not contain a colon or control characters');
        }
        $this->adminUser = $env['GATEWAY_ADMIN_USER'];
        $this->adminPassword = self::minLength($env, 'GATEWAY_ADMIN_PASSWORD', 12);
        $this->secret = self::minLength($env, 'GATEWAY_SECRET', 32);
        $this->webhookSecret = self::minLength($env, 'GATEWAY_WEBHOOK_SECRET', 16);
        if (!preg_match('/^[A-Za-z0-9_-]+$/', $this->webhookSecret)) {
            throw new ConfigError('GATEWAY_WEBHOOK_SECRET may hold only letters, digits, _ and - (it is part of a URL)');
        }
        $this->dataDir = rtrim(self::path($env['GATEWAY_DATA_DIR'] ?? '', "$root/var", $root), '/');
        $this->infoCacheTtl = self::int($env, 'GATEWAY_INFO_CACHE_TTL', 300, 0, 86400);
        $this->maxBody = self::int($env, 'GATEWAY_MAX_BODY', 65536, 1024, 10 * 1024 * 1024);
        // amoCRM's deliveries carry whole entities (a mass status change, many
        // custom fields): a refused delivery is lost, so their limit is larger.
        $this->webhookMaxBody = self::int($env, 'GATEWAY_WEBHOOK_MAX_BODY', 1024 * 1024, 1024, 16 * 1024 * 1024);
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
        $amocrm = [];
        foreach ($env as $k => $v) {
            if (str_starts_with($k, 'AMOCRM_') && $v !== '') {
                $amocrm[strtolower(substr($k, 7))] = $v;
            }
        }
        $amocrm['token_path'] = self::path($amocrm['token_path'] ?? '', $this->dataDir . '/tokens.json', $root);
        $this->amocrm = $amocrm;
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
