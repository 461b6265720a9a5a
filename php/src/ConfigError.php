<?php

declare(strict_types=1);

namespace AmoGateway;

/** The .env is missing or invalid; the message names the key, never a value. */
final class ConfigError extends \RuntimeException
{
}
