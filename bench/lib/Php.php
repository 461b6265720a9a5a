<?php

declare(strict_types=1);

namespace AmoBench;

/**
 * Runs the per-process workload scripts (bench/workloads/) in fresh PHP CLI
 * processes of either variant. Both run under `php -n` with opcache on
 * (opcache.enable_cli=1): the AmoClient variant loads the extension, the
 * curl variant ext-curl. No php.ini, so the machine's own configuration
 * (extensions in conf.d, an installed amocrm.so) changes nothing.
 */
final class Php
{
    public const AMO = 'AmoClient';
    public const CURL = 'curl';
    /** (c) and (d) only: curl trusting the private CA alone (CAINFO = a one-certificate file). */
    public const CURL_CA_ONLY = 'curl, CAINFO = the private CA alone';

    private int $seq = 0;

    public function __construct(private readonly string $extension, private readonly string $workDir)
    {
    }

    /** @return list<string> */
    public function command(string $variant): array
    {
        $cmd = [PHP_BINARY, '-n', '-d', 'zend_extension=opcache', '-d', 'opcache.enable_cli=1', '-d', 'display_errors=stderr'];
        return [...$cmd, '-d', $variant === self::AMO ? 'extension=' . $this->extension : 'extension=curl'];
    }

    /** Writes a workload's settings where its process will read them. */
    public function settingsFile(array $settings): string
    {
        $file = sprintf('%s/settings-%04d.json', $this->workDir, ++$this->seq);
        file_put_contents($file, json_encode($settings, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR));
        return $file;
    }

    /**
     * Runs bench/workloads/$script in a fresh process and returns the JSON
     * line it printed.
     * @param array<string, mixed> $settings
     * @return array<string, mixed>
     */
    public function run(string $variant, string $script, array $settings, float $timeout = 300.0): array
    {
        $cmd = [...$this->command($variant), self::script($script), $this->settingsFile($settings)];
        $r = Command::run($cmd, self::env(), $timeout);
        return self::result($r['exit'], $r['out'], $r['err'], $cmd);
    }

    /**
     * Starts $n processes of a barrier workload (they print "ready" and wait
     * on $barrier), releases them at once, and returns when all have
     * finished: the release time (microtime) and each one's result.
     * @param array<string, mixed> $settings `barrier` is added
     * @return array{released_at: float, results: list<array<string, mixed>>}
     */
    public function together(string $variant, string $script, int $n, array $settings, float $timeout = 120.0): array
    {
        $barrier = $this->workDir . '/barrier-' . (++$this->seq);
        touch($barrier);
        $hold = fopen($barrier, 'r');
        flock($hold, LOCK_EX);
        $cmd = [...$this->command($variant), self::script($script), $this->settingsFile($settings + ['barrier' => $barrier])];
        $procs = [];
        try {
            for ($i = 0; $i < $n; $i++) {
                $p = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, self::env());
                if (!is_resource($p)) {
                    throw new \RuntimeException("cannot start $script");
                }
                $procs[] = [$p, $pipes];
            }
            $deadline = microtime(true) + 30;
            foreach ($procs as [$p, $pipes]) {
                $line = fgets($pipes[1]);
                if ($line !== "ready\n" || microtime(true) > $deadline) {
                    throw new \RuntimeException("$script did not get ready: " . var_export($line, true) . ' ' . stream_get_contents($pipes[2]));
                }
            }
            // Every process has said "ready" and is (about to be) blocked on
            // the barrier's flock; a moment more for the last one to block.
            usleep(50_000);
            $released = microtime(true);
            flock($hold, LOCK_UN);
            $results = [];
            foreach ($procs as [$p, $pipes]) {
                $out = $err = '';
                Command::drain($pipes, $out, $err, microtime(true) + $timeout, $p, $cmd);
                $results[] = self::result(proc_close($p), $out, $err, $cmd);
            }
            $procs = [];
            return ['released_at' => $released, 'results' => $results];
        } finally {
            foreach ($procs as [$p]) {
                proc_terminate($p, SIGKILL);
            }
            fclose($hold);
        }
    }

    private static function script(string $name): string
    {
        return dirname(__DIR__) . '/workloads/' . $name;
    }

    /** @return array<string, string> */
    private static function env(): array
    {
        return ['PATH' => getenv('PATH') ?: '/usr/bin:/bin', 'LANG' => 'C.UTF-8'];
    }

    /**
     * @param list<string> $cmd
     * @return array<string, mixed>
     */
    private static function result(int $exit, string $out, string $err, array $cmd): array
    {
        $lines = array_values(array_filter(explode("\n", $out), static fn ($l) => str_starts_with($l, '{')));
        $json = $lines === [] ? null : json_decode($lines[count($lines) - 1], true);
        if ($exit !== 0 || !is_array($json)) {
            throw new \RuntimeException("exit $exit: " . implode(' ', $cmd) . "\nstdout: " . substr($out, -2000) . "\nstderr: " . substr($err, -2000));
        }
        if (($json['opcache'] ?? null) !== true) {
            throw new \RuntimeException('opcache is not on in ' . implode(' ', $cmd));
        }
        return $json;
    }
}
