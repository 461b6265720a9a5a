<?php

declare(strict_types=1);

namespace AmoGateway\Security;

use AmoGateway\App;
use AmoGateway\Http\HttpError;
use AmoGateway\Log;
use AmoGateway\Storage\FileStore;

/**
 * A brake on guessing: at most LIMIT wrong credentials of one kind (admin,
 * API key, webhook secret) per client address in any WINDOW seconds; past
 * that, requests of that kind from that address get 429 with Retry-After
 * without their credential being looked at, so a right guess cannot be told
 * from a wrong one either. The counts are flock'd files under the data dir,
 * shared by every PHP-FPM worker. A refused (429) request does not count, so
 * an address is never locked out longer than WINDOW after its last counted
 * failure.
 */
final class Throttle
{
    public const LIMIT = 10;
    public const WINDOW = 60;
    /** Seconds between sweeps of counts (and lock files) older than WINDOW. */
    private const SWEEP_INTERVAL = 600;

    private readonly FileStore $store;

    public function __construct(string $dataDir)
    {
        $this->store = new FileStore($dataDir . '/throttle');
    }

    /**
     * Runs $check (true: the credential is right, false: wrong, null: none
     * was given) unless $client is throttled for $kind; counts and logs a
     * wrong one. Returns what $check returned.
     *
     * @param \Closure(): ?bool $check
     */
    public function guard(string $kind, string $client, \Closure $check): ?bool
    {
        $name = hash('sha256', $kind . "\0" . $client) . '.json';
        $store = $this->store;
        App::defer(static fn () => $store->sweepEvery(self::SWEEP_INTERVAL, self::WINDOW));
        return $this->store->locked($name, function () use ($name, $kind, $client, $check): ?bool {
            $now = time();
            $failures = array_values(array_filter($this->store->read($name)['failures'] ?? [],
                static fn ($t) => is_int($t) && $t > $now - self::WINDOW));
            if (count($failures) >= self::LIMIT) {
                $wait = max(1, $failures[count($failures) - self::LIMIT] + self::WINDOW - $now);
                throw new HttpError(429, 'Too Many Requests', "too many wrong credentials from this address; try again in $wait s", [], ['Retry-After' => (string) $wait]);
            }
            $ok = $check();
            if ($ok === false) {
                $failures[] = $now;
                $this->store->write($name, ['failures' => $failures]);
                Log::write("auth failure: wrong $kind from $client (" . count($failures) . ' of ' . self::LIMIT . ' allowed in ' . self::WINDOW . ' s'
                    . (count($failures) >= self::LIMIT ? '; refusing this address with 429 for up to ' . self::WINDOW . ' s' : '') . ')');
            }
            return $ok;
        });
    }
}
