<?php

declare(strict_types=1);

namespace AmoGateway\Webhook;

/** Receives each stored amoCRM webhook delivery; throw to leave it for replay. */
interface Handler
{
    /** @param array{id: string, received_at: int, parsed: array<string, mixed>, body: string} $delivery */
    public function handle(array $delivery): void;
}
