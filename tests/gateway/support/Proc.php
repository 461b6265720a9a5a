<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * A child process in its own session and process group (started through
 * setsid(1)), so that stopping it also stops every worker it forked. Output
 * goes to files, for diagnostics.
 */
final class Proc
{
    /** @var resource|null */
    private $proc;
    public int $pid;
    public string $stdoutFile;
    public string $stderrFile;
    private ?int $exitCode = null;

    /**
     * @param list<string> $cmd
     * @param array<string, string> $env the whole environment of the child
     */
    public function __construct(array $cmd, array $env, string $logPrefix, ?string $cwd = null)
    {
        $this->stdoutFile = $logPrefix . '.out';
        $this->stderrFile = $logPrefix . '.err';
        $proc = proc_open(
            array_merge(['setsid'], $cmd),
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $this->stdoutFile, 'a'], 2 => ['file', $this->stderrFile, 'a']],
            $pipes,
            $cwd,
            $env
        );
        if (!is_resource($proc)) {
            throw new \RuntimeException('cannot start ' . implode(' ', $cmd));
        }
        $this->proc = $proc;
        $this->pid = (int) proc_get_status($proc)['pid'];
    }

    public function running(): bool
    {
        if ($this->proc === null) {
            return false;
        }
        $st = proc_get_status($this->proc);
        if (!$st['running'] && $this->exitCode === null) {
            $this->exitCode = $st['exitcode'];
        }
        return $st['running'];
    }

    public function exitCode(): ?int
    {
        $this->running();
        return $this->exitCode;
    }

    /** SIGTERM to the whole group, SIGKILL after $graceMs; always reaps. */
    public function stop(int $graceMs = 5000): void
    {
        if ($this->proc === null) {
            return;
        }
        // The child ran setsid without forking, so its pid is its group id.
        @posix_kill(-$this->pid, SIGTERM);
        @posix_kill($this->pid, SIGTERM);
        $deadline = microtime(true) + $graceMs / 1000;
        while ($this->running() && microtime(true) < $deadline) {
            usleep(20000);
        }
        // Workers of the group may outlive their master: kill what is left.
        @posix_kill(-$this->pid, SIGKILL);
        proc_close($this->proc);
        $this->proc = null;
    }

    public function output(int $tail = 4000): string
    {
        $out = '';
        foreach ([$this->stdoutFile, $this->stderrFile] as $f) {
            $s = is_file($f) ? (string) file_get_contents($f) : '';
            if ($s !== '') {
                $out .= basename($f) . ":\n" . substr($s, -$tail) . "\n";
            }
        }
        return $out;
    }

    public function __destruct()
    {
        $this->stop(1000);
    }

    /**
     * Runs a command to its end (killed after $timeout seconds).
     *
     * @param list<string> $cmd
     * @param array<string, string> $env the whole environment of the child
     * @return array{exit:int, out:string, err:string}
     */
    public static function run(array $cmd, array $env, float $timeout = 60.0, ?string $cwd = null, ?string $stdin = null): array
    {
        $input = ['file', '/dev/null', 'r'];
        if ($stdin !== null) {
            $input = tmpfile();
            fwrite($input, $stdin);
            rewind($input);
        }
        $proc = proc_open($cmd, [0 => $input, 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, $cwd, $env);
        if (!is_resource($proc)) {
            throw new \RuntimeException('cannot start ' . implode(' ', $cmd));
        }
        stream_set_blocking($pipes[1], false);
        stream_set_blocking($pipes[2], false);
        $out = $err = '';
        $deadline = microtime(true) + $timeout;
        $timedOut = false;
        while (!feof($pipes[1]) || !feof($pipes[2])) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                $timedOut = true;
                proc_terminate($proc, SIGKILL);
                break;
            }
            $r = array_filter([$pipes[1], $pipes[2]], static fn ($p) => !feof($p));
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
        $exit = proc_close($proc);
        if ($timedOut) {
            throw new \RuntimeException(sprintf("timed out after %.0f s: %s\nstdout: %s\nstderr: %s", $timeout, implode(' ', $cmd), $out, $err));
        }
        return ['exit' => $exit, 'out' => $out, 'err' => $err];
    }

    /**
     * A port that was free a moment ago on $host, below Linux's ephemeral
     * range (32768+), so that no emulator (port 0) or client socket takes it
     * before the server binds it.
     */
    public static function freePort(string $host = '127.0.0.1'): int
    {
        for ($i = 0; $i < 100; $i++) {
            $port = random_int(20000, 32000);
            $s = @stream_socket_server("tcp://$host:$port", $errno, $errstr);
            if ($s !== false) {
                fclose($s);
                return $port;
            }
        }
        throw new \RuntimeException("no free port on $host between 20000 and 32000");
    }

    /** Waits until something accepts connections on host:port. */
    public static function waitForPort(string $host, int $port, float $timeout, ?callable $alive = null): void
    {
        $deadline = microtime(true) + $timeout;
        while (microtime(true) < $deadline) {
            $c = @stream_socket_client("tcp://$host:$port", $errno, $errstr, 0.5);
            if ($c !== false) {
                fclose($c);
                return;
            }
            if ($alive !== null && !$alive()) {
                throw new \RuntimeException("the server exited before it listened on $host:$port");
            }
            usleep(20000);
        }
        throw new \RuntimeException("nothing listens on $host:$port after {$timeout} s");
    }
}
