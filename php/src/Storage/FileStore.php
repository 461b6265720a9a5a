<?php

declare(strict_types=1);

namespace AmoGateway\Storage;

/**
 * Small JSON records under the data dir: atomic writes (temp file, fsync,
 * rename) and per-key flock, so that PHP workers never read a torn record
 * and never do the same work twice at once. Every file is created 0600 and
 * every folder 0700, whatever the process umask: the records hold customer
 * data.
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

    /**
     * Creates $dir (and any missing parent) 0700, each new folder owned by
     * the owner of the folder it is made in: an admin who runs the CLI as
     * root must not make a folder php-fpm's user cannot enter (the
     * extension's files inside take their folder's owner). Not root: the
     * chown is refused, and the folder is the caller's, as it should be.
     */
    public static function ensureDirLikeParent(string $dir): void
    {
        if (is_dir($dir)) {
            return;
        }
        $parent = dirname($dir);
        if ($parent !== $dir) {
            self::ensureDirLikeParent($parent);
        }
        $old = umask(0077);
        try {
            if (!@mkdir($dir, 0700) && !is_dir($dir)) {
                return; // the extension names the path when it cannot use it
            }
        } finally {
            umask($old);
        }
        $owner = @fileowner($parent);
        $group = @filegroup($parent);
        if ($owner !== false && $owner !== @fileowner($dir)) {
            @chown($dir, $owner);
        }
        if ($group !== false && $group !== @filegroup($dir)) {
            @chgrp($dir, $group);
        }
    }

    /**
     * fopen() that creates the file with mode 0600 (the umask only ever
     * removes bits, so 0077 leaves exactly 0600 of fopen's 0666).
     * @return resource|false
     */
    public static function openPrivate(string $path, string $mode)
    {
        $old = umask(0077);
        try {
            return @fopen($path, $mode);
        } finally {
            umask($old);
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

    public function delete(string $name): void
    {
        @unlink($this->dir() . '/' . $name);
    }

    public static function writeAtomic(string $path, string $bytes): void
    {
        $tmp = $path . '.tmp.' . getmypid() . '.' . bin2hex(random_bytes(4));
        $f = self::openPrivate($tmp, 'xb');
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
        $lock = $this->lock($name, LOCK_EX);
        try {
            return $work();
        } finally {
            flock($lock, LOCK_UN);
            fclose($lock);
        }
    }

    /** @return resource|null the held lock, or null when $flags has LOCK_NB and another process holds it */
    private function lock(string $name, int $flags)
    {
        $path = $this->dir() . '/' . $name . '.lock';
        while (true) {
            $lock = self::openPrivate($path, 'c');
            if ($lock === false) {
                throw new \RuntimeException("cannot open $path");
            }
            if (!flock($lock, $flags)) {
                fclose($lock);
                if ($flags & LOCK_NB) {
                    return null;
                }
                throw new \RuntimeException("cannot lock $path");
            }
            // sweep() may have removed the file while we waited for it: then
            // the lock we hold guards nothing; take the lock on the new file.
            clearstatcache(true, $path);
            $now = @stat($path);
            if ($now !== false && $now['ino'] === fstat($lock)['ino']) {
                return $lock;
            }
            flock($lock, LOCK_UN);
            fclose($lock);
        }
    }

    /**
     * Removes records (and their lock files, and leftover temp files) not
     * written for $maxAge seconds. A record is removed only under its lock,
     * so a worker using it keeps it.
     */
    public function sweep(int $maxAge): void
    {
        $old = time() - $maxAge;
        $mtime = static function (string $path): ?int {
            clearstatcache(true, $path);
            $t = @filemtime($path);
            return $t === false ? null : $t;
        };
        foreach (glob($this->dir() . '/*') ?: [] as $path) {
            $file = basename($path);
            if (str_contains($file, '.tmp.')) {
                if (($mtime($path) ?? PHP_INT_MAX) < $old) {
                    @unlink($path);
                }
                continue;
            }
            $name = str_ends_with($file, '.lock') ? substr($file, 0, -5) : $file;
            $record = $this->dir . '/' . $name;
            if (($mtime($record) ?? $mtime($path) ?? PHP_INT_MAX) >= $old || !file_exists($path)) {
                continue;
            }
            $lock = $this->lock($name, LOCK_EX | LOCK_NB);
            if ($lock === null) {
                continue; // in use
            }
            if (($mtime($record) ?? 0) < $old) {
                @unlink($record);
                @unlink($record . '.lock');
            }
            flock($lock, LOCK_UN);
            fclose($lock);
        }
    }

    /** sweep($maxAge), at most once per $interval seconds for this folder. */
    public function sweepEvery(int $interval, int $maxAge): void
    {
        $marker = $this->dir() . '/.swept';
        clearstatcache(true, $marker);
        if ((int) @filemtime($marker) > time() - $interval) {
            return;
        }
        $f = self::openPrivate($marker, 'c');
        if ($f !== false) {
            fclose($f);
        }
        @touch($marker);
        $this->sweep($maxAge);
    }
}
