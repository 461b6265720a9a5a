<?php

declare(strict_types=1);

namespace AmoGateway\Lead;

use AmoGateway\App;
use AmoGateway\Config;
use AmoGateway\Http\HttpError;
use AmoGateway\Http\Response;
use AmoGateway\Log;
use AmoGateway\Storage\FileStore;

/**
 * `Idempotency-Key` for POST /api/leads: one lead per key, also when the
 * first attempt's outcome is unknown (amoCRM may have created the lead but
 * its answer was lost).
 *
 * A record per (API key, Idempotency-Key), under its flock:
 *   attempted  written before amoCRM is asked; carries a random marker that
 *              the lead carries as a tag, and the time of the first attempt.
 *              Left as it is when the outcome is unknown (or the worker died).
 *   done       the answer, replayed to every repeat.
 * A repeat that finds `attempted` first searches amoCRM for a lead with the
 * marker; it creates again only when that search says there is none, and
 * creates nothing when the search fails. Records (and their lock files) are
 * removed GATEWAY_IDEMPOTENCY_TTL after the first attempt.
 */
final class Idempotency
{
    public const MAX_KEY_LENGTH = 255;
    /** How often (seconds) a worker sweeps expired records after answering. */
    private const SWEEP_INTERVAL = 600;

    private readonly FileStore $store;
    private readonly string $name;

    /** @param string $client who asks (Auth::apiKey): one client never sees another's answers */
    public function __construct(private readonly Config $config, string $client, string $key)
    {
        if (strlen($key) > self::MAX_KEY_LENGTH) {
            throw HttpError::badInput('Idempotency-Key', 'the Idempotency-Key header may be at most ' . self::MAX_KEY_LENGTH . ' characters', 400);
        }
        $this->store = new FileStore($config->dataDir . '/idempotency');
        $this->name = hash('sha256', $client . "\0" . $key) . '.json';
    }

    /**
     * @param string $fingerprint the canonical input: the same lead gives the same one
     * @param \Closure(string): Response $create creates the lead carrying the marker tag
     * @param \Closure(string, int): ?Response $find the answer for a lead with the marker created since the time, or null
     */
    public function run(string $fingerprint, \Closure $create, \Closure $find): Response
    {
        $store = $this->store;
        $ttl = $this->config->idempotencyTtl;
        App::defer(static fn () => $store->sweepEvery(self::SWEEP_INTERVAL, $ttl));
        return $store->locked($this->name, function () use ($fingerprint, $create, $find, $ttl): Response {
            $seen = $this->store->read($this->name);
            if ($seen !== null && (int) ($seen['at'] ?? 0) + $ttl <= time()) {
                $seen = null; // expired
            }
            if ($seen !== null && !hash_equals((string) ($seen['fingerprint'] ?? ''), $fingerprint)) {
                throw HttpError::badInput('Idempotency-Key', 'this Idempotency-Key was used with a different lead');
            }
            if (($seen['state'] ?? null) === 'done') {
                return Response::json($seen['body'], (int) $seen['status'], ['Idempotent-Replayed' => 'true']);
            }
            if ($seen !== null) {
                $found = $this->search($find, (string) $seen['marker'], (int) $seen['at']);
                if ($found !== null) {
                    $this->done($seen, $found);
                    return $found->withHeader('Idempotent-Replayed', 'true');
                }
            }
            $record = $seen ?? ['state' => 'attempted', 'at' => time(), 'fingerprint' => $fingerprint, 'marker' => 'idem-' . bin2hex(random_bytes(8))];
            $this->store->write($this->name, $record);
            try {
                $response = $create($record['marker']);
            } catch (\Throwable $e) {
                if (!self::certainlyNothingCreated($e)) {
                    Log::write('lead outcome unknown for an Idempotency-Key (a repeat will search for tag ' . $record['marker'] . '): ' . get_class($e) . ': ' . $e->getMessage());
                    throw new HttpError(502, 'amoCRM outcome unknown', 'amoCRM may or may not have created the lead (its answer was lost). '
                        . 'Repeat the request with the same Idempotency-Key: the gateway checks amoCRM first and answers with the lead if it exists.',
                        ['amocrm_error' => $e instanceof \AmoException ? $e->getTitle() : 'error']);
                }
                if ($seen === null) {
                    $this->store->delete($this->name); // nothing happened: the key is free again
                }
                throw $e;
            }
            $this->done($record, $response);
            return $response;
        });
    }

    /** @param array<string, mixed> $record */
    private function done(array $record, Response $response): void
    {
        $this->store->write($this->name, ['state' => 'done', 'at' => $record['at'], 'fingerprint' => $record['fingerprint'],
            'marker' => $record['marker'], 'status' => $response->status, 'body' => json_decode($response->body, true)]);
    }

    /** $find, or 503 when amoCRM cannot say: never create blindly. */
    private function search(\Closure $find, string $marker, int $since): ?Response
    {
        try {
            return $find($marker, $since);
        } catch (\AmoException $e) {
            Log::write("cannot tell whether the lead with tag $marker exists: " . get_class($e) . ': ' . $e->getMessage());
            throw new HttpError(503, 'amoCRM outcome unknown', 'an earlier attempt with this Idempotency-Key may have created the lead, '
                . 'and amoCRM cannot be asked right now; nothing was created. Repeat the request later.', [], ['Retry-After' => '30']);
        }
    }

    /** Failures that prove amoCRM did not act on the request. */
    private static function certainlyNothingCreated(\Throwable $e): bool
    {
        return $e instanceof HttpError
            || $e instanceof \AmoValidationException || $e instanceof \AmoRateLimitException
            || $e instanceof \AmoAuthException || $e instanceof \AmoConfigException
            || ($e instanceof \AmoApiException && $e->getErrorCode() >= 400 && $e->getErrorCode() < 500);
    }
}
