<?php

declare(strict_types=1);

namespace AmoGateway;

use AmoGateway\Http\HttpError;
use AmoGateway\Http\Request;

/** API keys (Bearer) for websites and services; an admin credential (Basic) for people. */
final class Auth
{
    public function __construct(private readonly Config $config)
    {
    }

    public function apiKey(Request $r): void
    {
        $given = self::credential($r, 'Bearer');
        $ok = false;
        foreach ($this->config->apiKeys as $key) {
            // Compare with every key, always: the time taken says nothing.
            $ok = hash_equals($key, $given ?? '') || $ok;
        }
        if (!$ok) {
            throw new HttpError(401, 'Unauthorized', $given === null ? 'send Authorization: Bearer <API key>' : 'the API key is not valid', [], ['WWW-Authenticate' => 'Bearer']);
        }
    }

    public function admin(Request $r): void
    {
        $given = self::credential($r, 'Basic');
        $pair = $given === null ? false : base64_decode($given, true);
        [$user, $password] = is_string($pair) && str_contains($pair, ':') ? explode(':', $pair, 2) : ['', ''];
        $ok = hash_equals($this->config->adminUser, $user) & hash_equals($this->config->adminPassword, $password);
        if (!$ok) {
            throw new HttpError(401, 'Unauthorized', 'the admin credential is required', [], ['WWW-Authenticate' => 'Basic realm="amoCRM gateway", charset="UTF-8"']);
        }
    }

    private static function credential(Request $r, string $scheme): ?string
    {
        $h = $r->header('authorization') ?? '';
        return stripos($h, "$scheme ") === 0 ? trim(substr($h, strlen($scheme) + 1)) : null;
    }
}
