<?php

declare(strict_types=1);

namespace AmoGateway\Http;

/** A form body that cannot be read; $field names the part at fault ('body' for the whole). */
final class FormError extends \UnexpectedValueException
{
    public function __construct(public readonly string $field, string $message)
    {
        parent::__construct($message);
    }
}
