<?php

declare(strict_types=1);

namespace AmoGateway\Webhook;

use AmoGateway\Config;
use AmoGateway\Storage\FileStore;

/**
 * Webhook deliveries on disk: pending/ (stored before amoCRM gets its 200),
 * done/ (every handler succeeded), failed/ (a handler threw; replayable).
 */
final class Spool
{
    public function __construct(private readonly Config $config)
    {
    }

    private function dir(string $state): string
    {
        $dir = $this->config->dataDir . '/webhooks/' . $state;
        FileStore::ensureDir($dir);
        return $dir;
    }

    /** @param array<string, mixed> $parsed */
    public function store(string $body, array $parsed, string $remoteAddr): string
    {
        $id = sprintf('%.6F', microtime(true)) . '-' . bin2hex(random_bytes(4));
        $delivery = ['id' => $id, 'received_at' => time(), 'remote_addr' => $remoteAddr, 'body' => $body, 'parsed' => $parsed];
        FileStore::writeAtomic($this->dir('pending') . "/$id.json",
            json_encode($delivery, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR));
        return $id;
    }

    /** Runs the handlers on one stored delivery; moves it to done/ or failed/. */
    public function dispatch(string $id, string $from = 'pending'): bool
    {
        $path = $this->dir($from) . "/$id.json";
        $delivery = json_decode((string) @file_get_contents($path), true);
        if (!is_array($delivery)) {
            return false;
        }
        $errors = [];
        foreach ($this->handlers() as $spec => $handler) {
            try {
                $handler->handle($delivery);
            } catch (\Throwable $e) {
                $errors[] = "$spec: " . $e->getMessage();
            }
        }
        if ($errors === []) {
            unset($delivery['errors']);
            $to = 'done';
        } else {
            $delivery['errors'] = $errors;
            $delivery['failed_at'] = time();
            $to = 'failed';
        }
        FileStore::writeAtomic($this->dir($to) . "/$id.json",
            json_encode($delivery, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR));
        if ($to !== $from) {
            @unlink($path);
        }
        return $errors === [];
    }

    /**
     * Replays failed deliveries, and pending ones older than a minute (their
     * worker died before dispatching) — or every pending one with $all.
     * Returns [ok, still failing].
     * @return array{0: int, 1: int}
     */
    public function replay(bool $all = false): array
    {
        $ok = $failed = 0;
        foreach (['failed' => 0, 'pending' => $all ? 0 : 60] as $state => $minAge) {
            foreach (glob($this->dir($state) . '/*.json') ?: [] as $file) {
                if (time() - (int) filemtime($file) < $minAge) {
                    continue;
                }
                $this->dispatch(basename($file, '.json'), $state) ? $ok++ : $failed++;
            }
        }
        return [$ok, $failed];
    }

    public function count(string $state): int
    {
        return count(glob($this->dir($state) . '/*.json') ?: []);
    }

    /** @return array<string, Handler> */
    private function handlers(): array
    {
        $out = [];
        foreach ($this->config->webhookHandlers as $spec) {
            [$kind, $arg] = explode(':', $spec, 2);
            $out[$spec] = match ($kind) {
                'jsonl' => new JsonLinesHandler($arg),
                'class' => class_exists($arg) && is_subclass_of($arg, Handler::class)
                    ? new $arg()
                    : throw new \RuntimeException("handler class $arg does not exist or does not implement " . Handler::class),
            };
        }
        return $out;
    }
}
