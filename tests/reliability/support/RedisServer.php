<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

/**
 * Debian's redis-server (or redis-sentinel) started by a test on a free
 * loopback port with a folder of its own — never the system's service —
 * and killed when the test is done. Data servers run with `appendonly yes`
 * and `appendfsync always`, what the README asks of production, so that a
 * pair survives a kill. `command()` speaks RESP over a plain socket: the
 * test's own hands, without any PHP redis extension.
 */
final class RedisServer
{
    public int $port;
    public string $dir;
    /** @var resource|null */
    private $proc = null;
    /** @var list<string> */
    private array $args;
    private ?string $password;
    private bool $sentinel;

    /** @param list<string> $args extra settings, e.g. ['--replicaof', '127.0.0.1', '6379'] */
    private function __construct(string $dir, array $args, ?string $password, bool $sentinel)
    {
        $this->dir = $dir;
        $this->args = $args;
        $this->password = $password;
        $this->sentinel = $sentinel;
        $this->port = self::freePort();
    }

    /** @param list<string> $args */
    public static function start(string $dir, array $args = [], ?string $password = null): self
    {
        foreach (['redis-server', 'redis-sentinel'] as $bin) {
            if (!is_executable("/usr/bin/$bin")) {
                throw new \RuntimeException("/usr/bin/$bin is missing: the Redis tests need Debian's redis-server and redis-sentinel (apt-get install redis-server redis-sentinel; ./build.sh test installs them)");
            }
        }
        @mkdir($dir, 0700, true);
        $s = new self($dir, $password === null ? $args : [...$args, '--requirepass', $password, '--masterauth', $password], $password, false);
        $s->restart();
        return $s;
    }

    /** A sentinel watching the primary at $primaryPort as `$name` (quorum 1: it decides alone). */
    public static function sentinel(string $dir, string $name, int $primaryPort, ?string $password = null): self
    {
        @mkdir($dir, 0700, true);
        $s = new self($dir, [], null, true);
        $conf = "port {$s->port}\nbind 127.0.0.1\ndir $dir\nlogfile $dir/sentinel.log\n"
            . "sentinel monitor $name 127.0.0.1 $primaryPort 1\n"
            . "sentinel down-after-milliseconds $name 1000\n"
            . "sentinel failover-timeout $name 10000\n"
            . "sentinel parallel-syncs $name 1\n"
            . ($password === null ? '' : "sentinel auth-pass $name $password\n");
        file_put_contents("$dir/sentinel.conf", $conf);
        $s->restart();
        return $s;
    }

    public function restart(): void
    {
        if ($this->proc !== null) {
            throw new \LogicException('already running');
        }
        $cmd = $this->sentinel
            ? ['/usr/bin/redis-sentinel', "{$this->dir}/sentinel.conf"]
            : ['/usr/bin/redis-server', '--port', (string) $this->port, '--bind', '127.0.0.1', '--dir', $this->dir,
               '--daemonize', 'no', '--appendonly', 'yes', '--appendfsync', 'always', '--save', '',
               '--logfile', "{$this->dir}/redis.log", ...$this->args];
        $proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'a'], 2 => ['file', '/dev/null', 'a']], $pipes);
        if (!is_resource($proc)) {
            throw new \RuntimeException('cannot start ' . $cmd[0]);
        }
        $this->proc = $proc;
        $deadline = microtime(true) + 10;
        while (true) {
            try {
                $this->command('PING');
                return;
            } catch (\RuntimeException $e) {
                if (microtime(true) > $deadline) {
                    throw new \RuntimeException("{$cmd[0]} did not answer on {$this->port} within 10 s: " . $e->getMessage()
                        . "\n" . @file_get_contents($this->dir . ($this->sentinel ? '/sentinel.log' : '/redis.log')));
                }
                usleep(20000);
            }
        }
    }

    /** SIGKILL: no chance to write anything more. */
    public function kill(): void
    {
        if ($this->proc !== null) {
            $pid = proc_get_status($this->proc)['pid'];
            posix_kill($pid, SIGKILL);
            proc_close($this->proc);
            $this->proc = null;
        }
    }

    public function running(): bool
    {
        return $this->proc !== null;
    }

    public function url(int $db = 0): string
    {
        $auth = $this->password === null ? '' : ':' . rawurlencode($this->password) . '@';
        return "redis://{$auth}127.0.0.1:{$this->port}/$db";
    }

    /** One command on a fresh connection; a Redis error reply throws. */
    public function command(string ...$args): mixed
    {
        $s = @stream_socket_client("tcp://127.0.0.1:{$this->port}", $errno, $errstr, 2);
        if ($s === false) {
            throw new \RuntimeException("127.0.0.1:{$this->port}: $errstr");
        }
        stream_set_timeout($s, 10);
        try {
            if ($this->password !== null && !$this->sentinel) {
                $this->send($s, ['AUTH', $this->password]);
            }
            return $this->send($s, $args);
        } finally {
            fclose($s);
        }
    }

    /** @param resource $s */
    private function send($s, array $args): mixed
    {
        $out = '*' . count($args) . "\r\n";
        foreach ($args as $a) {
            $out .= '$' . strlen((string) $a) . "\r\n$a\r\n";
        }
        fwrite($s, $out);
        return $this->reply($s);
    }

    /** @param resource $s */
    private function reply($s): mixed
    {
        $line = fgets($s);
        if ($line === false) {
            throw new \RuntimeException("127.0.0.1:{$this->port}: no answer");
        }
        $body = substr($line, 1, -2);
        switch ($line[0]) {
            case '+':
                return $body;
            case '-':
                throw new \RuntimeException("127.0.0.1:{$this->port}: $body");
            case ':':
                return (int) $body;
            case '$':
                if ((int) $body < 0) {
                    return null;
                }
                $data = '';
                while (strlen($data) < (int) $body + 2) {
                    $chunk = fread($s, (int) $body + 2 - strlen($data));
                    if ($chunk === false || $chunk === '') {
                        throw new \RuntimeException("127.0.0.1:{$this->port}: answer cut short");
                    }
                    $data .= $chunk;
                }
                return substr($data, 0, -2);
            case '*':
                if ((int) $body < 0) {
                    return null;
                }
                $items = [];
                for ($i = 0; $i < (int) $body; $i++) {
                    $items[] = $this->reply($s);
                }
                return $items;
        }
        throw new \RuntimeException("127.0.0.1:{$this->port}: unexpected answer " . json_encode($line));
    }

    private static function freePort(): int
    {
        $s = stream_socket_server('tcp://127.0.0.1:0');
        $name = stream_socket_get_name($s, false);
        fclose($s);
        return (int) substr($name, strrpos($name, ':') + 1);
    }

    public function __destruct()
    {
        $this->kill();
    }
}
