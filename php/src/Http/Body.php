<?php

declare(strict_types=1);

namespace AmoGateway\Http;

/** Request bodies: JSON or a website's form post, within the size limit. */
final class Body
{
    /** @return array<string, mixed> */
    public static function parse(Request $r, int $limit, bool $allowForm = true): array
    {
        $type = $r->contentType();
        $raw = $r->body($limit);
        if ($type === 'application/json' || str_ends_with($type, '+json')) {
            if (trim($raw) === '') {
                throw HttpError::badInput('body', 'the JSON body is empty', 400);
            }
            try {
                $data = json_decode($raw, true, 32, JSON_THROW_ON_ERROR);
            } catch (\JsonException $e) {
                throw HttpError::badInput('body', 'the body is not valid JSON: ' . $e->getMessage(), 400);
            }
            if (!is_array($data) || array_is_list($data) && $data !== []) {
                throw HttpError::badInput('body', 'the JSON body must be an object', 400);
            }
            return $data;
        }
        if ($allowForm && $type === 'application/x-www-form-urlencoded') {
            parse_str($raw, $data);
            return $data;
        }
        if ($allowForm && $type === 'multipart/form-data') {
            return $_POST;
        }
        throw new HttpError(415, 'Unsupported Media Type', $allowForm
            ? 'send application/json or a form (application/x-www-form-urlencoded, multipart/form-data)'
            : 'send application/json');
    }
}
