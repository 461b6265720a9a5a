<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\App;
use AmoGateway\Config;
use AmoGateway\Http\HttpError;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Webhook\Spool;

/**
 * amoCRM's webhooks: stored durably before the 200 (amoCRM waits 2 s and
 * switches off a hook after 100 bad answers), handled after the answer.
 */
final class WebhookController
{
    public function __construct(private readonly Config $config)
    {
    }

    public function receive(Request $r, string $secret): Response
    {
        if (!hash_equals($this->config->webhookSecret, $secret)) {
            throw new HttpError(404, 'Not Found', 'no such webhook endpoint');
        }
        $body = $r->body($this->config->maxBody);
        $type = $r->contentType();
        if ($type === 'application/json') {
            $parsed = json_decode($body, true);
            if (!is_array($parsed)) {
                throw HttpError::badInput('body', 'the JSON body is not valid', 400);
            }
        } else {
            // amoCRM sends application/x-www-form-urlencoded with bracketed keys.
            parse_str($body, $parsed);
        }
        $spool = new Spool($this->config);
        $id = $spool->store($body, $parsed, $r->remoteAddr);
        App::defer(static fn () => $spool->dispatch($id));
        return Response::text("ok\n");
    }
}
