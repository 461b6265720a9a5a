<?php

declare(strict_types=1);

namespace AmoGateway\Webhook;

/** Receives each stored amoCRM webhook delivery; throw to leave it for replay. */
interface Handler
{
    /**
     * @param array{id: string, received_at: int, remote_addr: string, content_type: string, parsed: array<mixed>, body: string} $delivery
     *        body: the raw bytes as amoCRM sent them; parsed: the body as nested arrays (bracketed form names), complete
     */
    public function handle(array $delivery): void;
}
