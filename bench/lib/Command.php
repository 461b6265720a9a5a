<?php

declare(strict_types=1);

namespace AmoBench;

/** Running a command to its end. */
final class Command
{
    /**
     * @param list<string> $cmd
     * @param array<string, string> $env the child's whole environment
     * @return array{exit: int, out: string, err: string}
     */
    public static function run(array $cmd, array $env, float $timeout = 600.0): array
    {
        $proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        if (!is_resource($proc)) {
            throw new \RuntimeException('cannot start ' . implode(' ', $cmd));
        }
        $out = $err = '';
        self::drain($pipes, $out, $err, microtime(true) + $timeout, $proc, $cmd);
        return ['exit' => proc_close($proc), 'out' => $out, 'err' => $err];
    }

    /**
     * Reads both pipes to their end; kills the child at the deadline.
     * @param array<int, resource> $pipes
     * @param resource $proc
     * @param list<string> $cmd
     */
    public static function drain(array $pipes, string &$out, string &$err, float $deadline, $proc, array $cmd): void
    {
        stream_set_blocking($pipes[1], false);
        stream_set_blocking($pipes[2], false);
        while (!feof($pipes[1]) || !feof($pipes[2])) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                proc_terminate($proc, SIGKILL);
                throw new \RuntimeException('timed out: ' . implode(' ', $cmd) . "\n$out\n$err");
            }
            $r = array_values(array_filter([$pipes[1], $pipes[2]], static fn ($p) => !feof($p)));
            $w = $e = null;
            if (@stream_select($r, $w, $e, (int) $left, (int) (fmod($left, 1) * 1e6)) === false) {
                break;
            }
            foreach ($r as $p) {
                $chunk = (string) fread($p, 65536);
                if ($p === $pipes[1]) {
                    $out .= $chunk;
                } else {
                    $err .= $chunk;
                }
            }
        }
        fclose($pipes[1]);
        fclose($pipes[2]);
    }

    /** A loopback port that was free a moment ago, below Linux's ephemeral range. */
    public static function freePort(): int
    {
        for ($i = 0; $i < 200; $i++) {
            $port = random_int(20000, 32000);
            $s = @stream_socket_server("tcp://127.0.0.1:$port", $errno, $err);
            if ($s !== false) {
                fclose($s);
                return $port;
            }
        }
        throw new \RuntimeException('no free port');
    }
}
