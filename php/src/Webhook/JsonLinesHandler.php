<?php

declare(strict_types=1);

namespace AmoGateway\Webhook;

use AmoGateway\Storage\FileStore;

/** Appends each delivery as one JSON line to a file (for other systems to tail). */
final class JsonLinesHandler implements Handler
{
    public function __construct(private readonly string $path)
    {
    }

    public function handle(array $delivery): void
    {
        $line = json_encode(['id' => $delivery['id'], 'account' => $delivery['account'] ?? 'default', 'received_at' => $delivery['received_at'], 'data' => $delivery['parsed']],
            JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR) . "\n";
        $f = FileStore::openPrivate($this->path, 'ab'); // customer data: 0600 when it creates the file
        if ($f === false) {
            throw new \RuntimeException("cannot open {$this->path} for appending");
        }
        try {
            if (!flock($f, LOCK_EX) || fwrite($f, $line) !== strlen($line) || !fflush($f)) {
                throw new \RuntimeException("cannot append to {$this->path}");
            }
        } finally {
            flock($f, LOCK_UN);
            fclose($f);
        }
    }
}
