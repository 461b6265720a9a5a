<?php

declare(strict_types=1);

namespace AmoGateway;

use AmoGateway\Http\HttpError;
use AmoGateway\Http\Request;
use AmoGateway\Security\Throttle;

/**
 * API keys (Bearer) for websites and services; an admin credential (Basic)
 * for people; the webhook secret in amoCRM's URL. Wrong ones are counted per
 * client address (Throttle).
 */
final class Auth
{
    private readonly Throttle $throttle;

    public function __construct(private readonly Config $config)
    {
        $this->throttle = new Throttle($config->dataDir);
    }

    /** Returns who the caller is: the account its API key names, and a hash of both (never the key). */
    public function apiKey(Request $r): ApiCaller
    {
        $given = self::credential($r, 'Bearer');
        $matched = null;
        $this->throttle->guard('API key', self::client($r), function () use ($given, &$matched): ?bool {
            foreach ($this->config->apiKeys as $entry) {
                // Compare with every key, always: the time taken says nothing.
                if (hash_equals($entry['key'], $given ?? '')) {
                    $matched = $entry;
                }
            }
            return $given === null || $given === '' ? null : $matched !== null;
        });
        if ($matched === null) {
            throw new HttpError(401, 'Unauthorized', $given === null ? 'send Authorization: Bearer <API key>' : 'the API key is not valid', [], ['WWW-Authenticate' => 'Bearer']);
        }
        return new ApiCaller($matched['account'], hash('sha256', $matched['account'] . "\0" . $matched['key']));
    }

    public function admin(Request $r): void
    {
        $given = self::credential($r, 'Basic');
        $ok = $this->throttle->guard('admin credential', self::client($r), function () use ($given): ?bool {
            if ($given === null || $given === '') {
                return null;
            }
            $pair = base64_decode($given, true);
            [$user, $password] = is_string($pair) && str_contains($pair, ':') ? explode(':', $pair, 2) : ['', ''];
            return (bool) (hash_equals($this->config->adminUser, $user) & hash_equals($this->config->adminPassword, $password));
        });
        if ($ok !== true) {
            throw new HttpError(401, 'Unauthorized', 'the admin credential is required', [], ['WWW-Authenticate' => 'Basic realm="amoCRM gateway", charset="UTF-8"']);
        }
    }

    /**
     * The {secret} of /webhooks/amocrm/{secret}, which names its account
     * (returned); a wrong one is a 404, as if the route did not exist.
     */
    public function webhook(#[\SensitiveParameter] Request $r, #[\SensitiveParameter] string $secret): string
    {
        $account = null;
        $ok = $this->throttle->guard('webhook secret', self::client($r), function () use ($secret, &$account): bool {
            foreach ($this->config->webhookSecrets as $entry) {
                if (hash_equals($entry['secret'], $secret)) {
                    $account = $entry['account'];
                }
            }
            return $account !== null;
        });
        if ($ok !== true || $account === null) {
            throw new HttpError(404, 'Not Found', 'no such webhook endpoint');
        }
        return $account;
    }

    private static function client(Request $r): string
    {
        return $r->remoteAddr !== '' ? $r->remoteAddr : 'unknown';
    }

    private static function credential(Request $r, string $scheme): ?string
    {
        $h = $r->header('authorization') ?? '';
        return stripos($h, "$scheme ") === 0 ? trim(substr($h, strlen($scheme) + 1)) : null;
    }
}
