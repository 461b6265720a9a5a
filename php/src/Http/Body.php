<?php

declare(strict_types=1);

namespace AmoGateway\Http;

/** Request bodies: JSON or a website's form post, within the size limit. */
final class Body
{
    /** JSON nests at most this deep (a lead is 4 levels). */
    public const JSON_DEPTH = 32;

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
                $data = json_decode($raw, true, self::JSON_DEPTH, JSON_THROW_ON_ERROR);
            } catch (\JsonException $e) {
                throw HttpError::badInput('body', 'the body is not valid JSON: ' . $e->getMessage(), 400);
            }
            if (!is_array($data) || array_is_list($data) && $data !== []) {
                throw HttpError::badInput('body', 'the JSON body must be an object', 400);
            }
            return $data;
        }
        if ($allowForm && ($type === 'application/x-www-form-urlencoded' || $type === 'multipart/form-data')) {
            if ($type === 'multipart/form-data' && $raw === '' && (int) $r->header('content-length') > 0) {
                // PHP read the body into $_POST before the gateway could.
                throw new HttpError(500, 'Gateway misconfigured', 'PHP consumed the form body: set enable_post_data_reading=Off (php/deploy/php-fpm-pool.conf)');
            }
            try {
                return $type === 'multipart/form-data'
                    ? FormParser::multipart($raw, (string) $r->header('content-type'))
                    : FormParser::urlencoded($raw);
            } catch (FormError $e) {
                throw HttpError::badInput($e->field, $e->getMessage(), $e->field === 'body' ? 400 : 422);
            }
        }
        throw new HttpError(415, 'Unsupported Media Type', $allowForm
            ? 'send application/json or a form (application/x-www-form-urlencoded, multipart/form-data)'
            : 'send application/json');
    }
}
