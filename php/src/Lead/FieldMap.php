<?php

declare(strict_types=1);

namespace AmoGateway\Lead;

use AmoGateway\ConfigError;

/**
 * The field map (GATEWAY_FIELD_MAP) read as data: a .json file, or a .php
 * file that only returns an array. Anything else is refused before it is
 * read any further: a map pointing at the .env or a log must never run or
 * be printed.
 */
final class FieldMap
{
    /** @return array<string, array{entity: string, field_id?: int, field_code?: string}> */
    public static function load(string $file): array
    {
        if (!is_file($file) || !is_readable($file)) {
            throw new ConfigError("GATEWAY_FIELD_MAP: $file does not exist or is not readable");
        }
        $map = match (strtolower(pathinfo($file, PATHINFO_EXTENSION))) {
            'json' => self::json($file),
            'php' => self::php($file),
            default => throw new ConfigError("GATEWAY_FIELD_MAP: $file must be a .json file or a .php file that returns an array"),
        };
        foreach ($map as $key => $def) {
            $ok = is_string($key) && is_array($def)
                && in_array($def['entity'] ?? null, ['leads', 'contacts', 'companies'], true)
                && (is_int($def['field_id'] ?? null) xor is_string($def['field_code'] ?? null))
                && array_diff(array_keys($def), ['entity', 'field_id', 'field_code']) === [];
            if (!$ok) {
                throw new ConfigError('GATEWAY_FIELD_MAP: entry ' . (is_string($key) && preg_match('/^[\w.-]{1,64}$/', $key) ? "`$key`" : '#' . $key)
                    . ' needs entity (leads|contacts|companies) and one of field_id (int) or field_code (string)');
            }
        }
        return $map;
    }

    /** @return array<mixed> */
    private static function json(string $file): array
    {
        $map = json_decode((string) file_get_contents($file), true, 8);
        if (!is_array($map) || (array_is_list($map) && $map !== [])) {
            throw new ConfigError("GATEWAY_FIELD_MAP: $file is not a JSON object");
        }
        return $map;
    }

    /** @return array<mixed> */
    private static function php(string $file): array
    {
        $code = (string) file_get_contents($file);
        // PHP code from its first byte to its last, so that `require` has no
        // text outside the tags to print.
        if (!preg_match('/^<\?php\s/', $code) || str_contains($code, '?>')) {
            throw new ConfigError("GATEWAY_FIELD_MAP: $file must start with <?php and have no ?> (only `return [...];`)");
        }
        ob_start();
        try {
            $map = (static fn (string $f): mixed => require $f)($file);
        } catch (\Throwable $e) {
            throw new ConfigError("GATEWAY_FIELD_MAP: $file failed: " . get_class($e) . ' on line ' . $e->getLine());
        } finally {
            $printed = ob_get_clean();
        }
        if ($printed !== '' && $printed !== false) {
            throw new ConfigError("GATEWAY_FIELD_MAP: $file printed output; it must only return an array");
        }
        if (!is_array($map)) {
            throw new ConfigError("GATEWAY_FIELD_MAP: $file must return an array");
        }
        return $map;
    }
}
