<?php

declare(strict_types=1);

/*
 * Shared by the per-process workload scripts: each is started by run.php
 * with one argument, the path of a JSON file with its settings, and prints
 * one JSON line with what it measured.
 *
 * The AmoClient variants run under `php -n` with opcache and the extension;
 * the curl variants under `php -n` with opcache and ext-curl (and without
 * the extension): each process loads what its variant needs and nothing else.
 */

namespace AmoBench\Workload;

/** @return array<string, mixed> the settings run.php wrote for this process */
function settings(): array
{
    $file = $GLOBALS['argv'][1] ?? '';
    $json = is_string($file) && $file !== '' ? @file_get_contents($file) : false;
    if ($json === false) {
        fwrite(STDERR, "usage: php {$GLOBALS['argv'][0]} SETTINGS.json\n");
        exit(2);
    }
    return json_decode($json, true, 32, JSON_THROW_ON_ERROR);
}

/** Prints the result line run.php reads. */
function emit(array $result): void
{
    echo json_encode($result + ['opcache' => opcacheOn()], JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR), "\n";
}

function opcacheOn(): bool
{
    return function_exists('opcache_get_status') && (opcache_get_status(false)['opcache_enabled'] ?? false) === true;
}

/** @return array{php_peak: int, rss_hwm: int} PHP's peak (memory_get_peak_usage()) and the process's VmHWM, in bytes */
function memory(): array
{
    $status = (string) file_get_contents('/proc/self/status');
    $hwm = preg_match('/^VmHWM:\s+(\d+)\s+kB/m', $status, $m) ? (int) $m[1] * 1024 : 0;
    return ['php_peak' => memory_get_peak_usage(), 'rss_hwm' => $hwm];
}

/** Microseconds since $t0 (an hrtime(true) value). */
function usSince(int $t0): float
{
    return (hrtime(true) - $t0) / 1e3;
}

/**
 * AmoClient configured for the emulator, as a deployment would configure it.
 * @param array<string, mixed> $s the settings (`amo` holds the options)
 * @param array<string, string> $extra options of this workload (rate_limit, …)
 */
function amo(array $s, array $extra = [], ?string $account = null): \AmoClient
{
    \AmoClient::configure(array_map('strval', $extra + $s['amo']), $account);
    return \AmoClient::getInstance($account);
}

/**
 * Blocks until run.php releases the barrier: it holds an exclusive flock on
 * the file and lets go once every process has said "ready", so all of them
 * start within a scheduler tick of each other.
 */
function awaitBarrier(string $file): void
{
    $fh = fopen($file, 'r');
    if ($fh === false) {
        throw new \RuntimeException("cannot open the barrier $file");
    }
    echo "ready\n";
    fflush(STDOUT);
    flock($fh, LOCK_SH);
    flock($fh, LOCK_UN);
    fclose($fh);
}
