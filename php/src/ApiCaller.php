<?php

declare(strict_types=1);

namespace AmoGateway;

/** Who called an /api/* route: the account its API key names, and who it is (never the key). */
final class ApiCaller
{
    /**
     * @param string $account the account every call of this request works on
     * @param string $id a hash of the account and the key: scopes Idempotency-Key records, so
     *                   that a key moved to another account never replays the first one's answers
     */
    public function __construct(public readonly string $account, public readonly string $id)
    {
    }
}
