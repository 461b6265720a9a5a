<?php

declare(strict_types=1);

namespace AmoBench;

/**
 * A long-running child (a server) in its own session and process group,
 * started through setsid(1), so that stopping it stops every worker it
 * forked. Its output goes to files, for diagnostics.
 */
final class Service
{
    /** @var resource|null */
    private $proc;
    public readonly int $pid;

    /**
     * @param list<string> $cmd
     * @param array<string, string> $env the child's whole environment
     */
    public function __construct(public readonly string $name, array $cmd, array $env, private readonly string $logPrefix)
    {
        $proc = proc_open(['setsid', ...$cmd], [
            0 => ['file', '/dev/null', 'r'],
            1 => ['file', "$logPrefix.out", 'a'],
            2 => ['file', "$logPrefix.err", 'a'],
        ], $pipes, null, $env);
        if (!is_resource($proc)) {
            throw new \RuntimeException("cannot start $name");
        }
        $this->proc = $proc;
        $this->pid = (int) proc_get_status($proc)['pid'];
    }

    public function running(): bool
    {
        return $this->proc !== null && proc_get_status($this->proc)['running'];
    }

    /** SIGTERM to the group, SIGKILL to what is left after a grace period; always reaps. */
    public function stop(float $grace = 5.0): void
    {
        if ($this->proc === null) {
            return;
        }
        // setsid(1) execs without forking here: the pid is the group's id.
        @posix_kill(-$this->pid, SIGTERM);
        $deadline = microtime(true) + $grace;
        while ($this->running() && microtime(true) < $deadline) {
            usleep(20_000);
        }
        @posix_kill(-$this->pid, SIGKILL);
        proc_close($this->proc);
        $this->proc = null;
    }

    public function output(): string
    {
        $out = '';
        foreach (["$this->logPrefix.out", "$this->logPrefix.err"] as $f) {
            $s = is_file($f) ? (string) file_get_contents($f) : '';
            if ($s !== '') {
                $out .= basename($f) . ":\n" . substr($s, -3000) . "\n";
            }
        }
        return $out;
    }

    public function __destruct()
    {
        $this->stop(1.0);
    }

    /** Waits until something accepts on 127.0.0.1:$port. */
    public function waitForPort(int $port, float $timeout = 10.0): void
    {
        $deadline = microtime(true) + $timeout;
        while (($s = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $err, 0.2)) === false) {
            if (!$this->running() || microtime(true) > $deadline) {
                throw new \RuntimeException("$this->name does not listen on 127.0.0.1:$port\n" . $this->output());
            }
            usleep(20_000);
        }
        fclose($s);
    }

    /** Waits until something accepts on the unix socket $path. */
    public function waitForSocket(string $path, float $timeout = 10.0): void
    {
        $deadline = microtime(true) + $timeout;
        while (($s = @stream_socket_client("unix://$path", $errno, $err, 0.2)) === false) {
            if (!$this->running() || microtime(true) > $deadline) {
                throw new \RuntimeException("$this->name does not accept on $path\n" . $this->output());
            }
            usleep(20_000);
        }
        fclose($s);
    }
}
