<?php

declare(strict_types=1);

namespace AmoGateway\Storage;

/**
 * Small JSON records under the data dir: atomic writes (temp file, fsync,
 * rename) and per-key flock, so that PHP workers never read a torn record
 * and never do the same work twice at once.
 */
final class FileStore
{
    public function __construct(private readonly string $dir)
    {
    }

    public function dir(): string
    {
        self::ensureDir($this->dir);
        return $this->dir;
    }

    public static function ensureDir(string $dir): void
    {
        if (!is_dir($dir) && !@mkdir($dir, 0700, true) && !is_dir($dir)) {
            throw new \RuntimeException("cannot create $dir");
        }
    }

    /** @return array<mixed>|null */
    public function read(string $name): ?array
    {
        $raw = @file_get_contents($this->dir() . '/' . $name);
        if ($raw === false) {
            return null;
        }
        $data = json_decode($raw, true);
        return is_array($data) ? $data : null;
    }

    /** @param array<mixed> $data */
    public function write(string $name, array $data): void
    {
        self::writeAtomic($this->dir() . '/' . $name, json_encode($data, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR));
    }

    public static function writeAtomic(string $path, string $bytes): void
    {
        $tmp = $path . '.tmp.' . getmypid() . '.' . bin2hex(random_bytes(4));
        $f = fopen($tmp, 'xb');
        if ($f === false) {
            throw new \RuntimeException("cannot create $tmp");
        }
        try {
            if (fwrite($f, $bytes) !== strlen($bytes) || !fflush($f) || !fsync($f)) {
                throw new \RuntimeException("cannot write $tmp");
            }
        } finally {
            fclose($f);
        }
        chmod($tmp, 0600);
        if (!rename($tmp, $path)) {
            @unlink($tmp);
            throw new \RuntimeException("cannot rename $tmp");
        }
    }

    /**
     * Runs $work holding an exclusive lock on $name (waiting for it).
     * @template T
     * @param \Closure(): T $work
     * @return T
     */
    public function locked(string $name, \Closure $work): mixed
    {
        $lock = fopen($this->dir() . '/' . $name . '.lock', 'c');
        if ($lock === false || !flock($lock, LOCK_EX)) {
            throw new \RuntimeException("cannot lock $name");
        }
        try {
            return $work();
        } finally {
            flock($lock, LOCK_UN);
            fclose($lock);
        }
    }

}
