<?php

declare(strict_types=1);

namespace AmoGateway\Http;

/**
 * Form bodies (application/x-www-form-urlencoded, multipart/form-data text
 * fields) → the nested arrays PHP would build from bracketed names
 * (`leads[status][0][id]=1`), without PHP's silent cuts: parse_str() and
 * $_POST stop at max_input_vars (1000) and drop what nests deeper than
 * max_input_nesting_level (64). Here nothing is dropped: a body is parsed
 * whole or refused with a FormError naming the field.
 *
 * Bounds: the number of fields is bounded by the body size (GATEWAY_MAX_BODY);
 * a name nests at most MAX_DEPTH levels; a numeric index has at most 18
 * digits; every name and value must be valid UTF-8. Names are kept as sent
 * (PHP turns `.` and spaces of the first part into `_`, drops its leading
 * spaces, cuts a name at a NUL byte and reads `a[ ]` as `a[]`; this does
 * not). Otherwise the result is parse_str()'s, which
 * tests/reliability/WebhookFormFuzzTest.php checks on random bodies.
 */
final class FormParser
{
    public const MAX_DEPTH = 32;

    /** @return array<mixed> */
    public static function urlencoded(string $body): array
    {
        $pairs = [];
        foreach (explode('&', $body) as $part) {
            if ($part !== '') {
                [$name, $value] = array_pad(explode('=', $part, 2), 2, '');
                $pairs[] = [urldecode($name), urldecode($value)];
            }
        }
        return self::build($pairs);
    }

    /**
     * The text fields of a multipart/form-data body; a file part is refused.
     * @return array<mixed>
     */
    public static function multipart(string $body, string $contentType): array
    {
        if (!preg_match('/;\s*boundary="?([^";,]{1,70})"?/i', $contentType, $m)) {
            throw new FormError('body', 'the multipart body has no boundary parameter');
        }
        $parts = explode('--' . $m[1], $body);
        array_shift($parts); // the preamble
        $pairs = [];
        foreach ($parts as $part) {
            if (str_starts_with($part, '--')) {
                return self::build($pairs); // the closing delimiter
            }
            $split = strpos($part, "\r\n\r\n");
            if ($split === false
                || !preg_match('/^Content-Disposition:\s*form-data\s*;(.*)$/mi', substr($part, 0, $split), $d)
                || !preg_match('/(?:^|;)\s*name="([^"]*)"/i', $d[1], $name)) {
                throw new FormError('body', 'a part of the multipart body has no form-data name');
            }
            if (preg_match('/(?:^|;)\s*filename\*?=/i', $d[1])) {
                throw new FormError($name[1], 'file uploads are not accepted');
            }
            $value = substr($part, $split + 4);
            $pairs[] = [$name[1], str_ends_with($value, "\r\n") ? substr($value, 0, -2) : $value];
        }
        throw new FormError('body', 'the multipart body is cut off (no closing boundary)');
    }

    /**
     * @param list<array{0: string, 1: string}> $pairs name, value
     * @return array<mixed>
     */
    public static function build(array $pairs): array
    {
        $out = [];
        // `a[]` takes the index PHP's parser gives: one past the largest integer
        // key so far (after `a[-5]`, -4), where `$a[] =` before PHP 8.3 gives 0.
        // So each array built gets an id (by its parent's id and key) and its
        // next index is kept here, by id.
        $next = [];
        $ids = [];
        $serial = 0;
        foreach ($pairs as [$name, $value]) {
            if (!self::utf8($name)) {
                throw new FormError('body', 'a field name is not valid UTF-8');
            }
            if (!self::utf8($value)) {
                throw new FormError(self::field($name), '`' . self::field($name) . '` is not valid UTF-8');
            }
            $path = self::path($name);
            if ($path === []) {
                continue; // no name: PHP ignores it too
            }
            $last = array_pop($path);
            $ref = &$out;
            $id = 0;
            foreach ($path as $segment) {
                $key = $segment === '' ? ($next[$id] ?? 0) : $segment;
                if ($segment === '' || !is_array($ref[$key] ?? null)) {
                    $ref[$key] = [];
                    $ids["$id:$key"] = ++$serial;
                    self::advance($next, $id, $key);
                }
                $id = $ids["$id:$key"];
                $ref = &$ref[$key];
            }
            $key = $last === '' ? ($next[$id] ?? 0) : $last;
            $ref[$key] = $value;
            self::advance($next, $id, $key);
            unset($ref);
        }
        return $out;
    }

    /**
     * @param array<int, int> $next
     * PHP's rule: an integer key at or past an array's next index moves it on.
     */
    private static function advance(array &$next, int $id, int|string $key): void
    {
        $key = array_key_first([$key => true]); // "5" is the integer key 5, "05" a string
        if (is_int($key) && (!isset($next[$id]) || $key >= $next[$id])) {
            $next[$id] = $key + 1;
        }
    }

    /**
     * `a[b][][c]` → ['a', 'b', '', 'c']; text after the last `]` that does
     * not open another bracket is ignored, as PHP does.
     * @return list<string>
     */
    private static function path(string $name): array
    {
        $open = strpos($name, '[');
        if ($open === false || !str_contains(substr($name, $open), ']')) {
            return $name === '' ? [] : [$name];
        }
        $base = substr($name, 0, $open);
        if ($base === '') {
            return [];
        }
        $path = [$base];
        $rest = substr($name, $open);
        $offset = 0;
        while ($offset < strlen($rest) && $rest[$offset] === '[' && ($close = strpos($rest, ']', $offset)) !== false) {
            $segment = substr($rest, $offset + 1, $close - $offset - 1);
            if (preg_match('/^-?\d{19,}$/', $segment)) {
                throw new FormError(self::field($name), '`' . self::field($name) . '` has an index of more than 18 digits');
            }
            $path[] = $segment;
            $offset = $close + 1;
        }
        if (count($path) > self::MAX_DEPTH) {
            throw new FormError(self::field($name), '`' . self::field($name) . '` nests deeper than ' . self::MAX_DEPTH . ' levels');
        }
        return $path;
    }

    /** A field name fit for a message: bounded, printable. */
    private static function field(string $name): string
    {
        $short = strlen($name) > 100 ? substr($name, 0, 100) . '…' : $name;
        return self::utf8($short) ? (string) preg_replace('/[\x00-\x1F\x7F]/', '?', $short) : 'body';
    }

    private static function utf8(string $s): bool
    {
        return preg_match('//u', $s) === 1;
    }
}
