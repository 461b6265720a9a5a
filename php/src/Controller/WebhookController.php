<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\App;
use AmoGateway\Config;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Webhook\Spool;

/**
 * amoCRM's webhooks: the raw body is stored durably before the 200 (amoCRM
 * waits 2 s and switches off a hook after 100 bad answers); parsing and the
 * handlers come after the answer. A body that cannot be parsed is kept in
 * failed/ with the reason: amoCRM still gets its 200, nothing is lost.
 * (The secret in the path is checked by Auth::webhook first.)
 */
final class WebhookController
{
    public function __construct(private readonly Config $config)
    {
    }

    /** @param string $account the account the webhook secret names (Auth::webhook) */
    public function receive(Request $r, string $account): Response
    {
        $spool = new Spool($this->config);
        $id = $spool->store($r->body($this->config->webhookMaxBody), (string) ($r->header('content-type') ?? ''), $r->remoteAddr, $account);
        App::defer(static fn () => $spool->dispatch($id));
        return Response::text("ok\n");
    }
}
