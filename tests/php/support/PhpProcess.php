<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/**
 * A real PHP CLI process with the extension loaded, running a snippet through
 * support/child.php, which prints one JSON line: the snippet's return value,
 * or the exception it threw with every accessor of the AmoException family.
 */
final class PhpProcess
{
    /** @var resource */
    private $proc;
    /** @var array<int, resource> */
    private array $pipes = [];
    private string $script;
    public ?int $pid = null;

    /**
     * @param array<string, string> $env
     * @param array<string, string> $ini
     * @param list<string> $prefix runs PHP under this command, e.g. ['unshare', '-rn'] (no network)
     */
    public function __construct(string $code, array $env = [], array $ini = [], array $prefix = [])
    {
        $this->script = tempnam(sys_get_temp_dir(), 'amo-snippet-');
        file_put_contents($this->script, "<?php\n" . $code);
        $cmd = [...$prefix, PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT'), '-d', 'display_errors=stderr'];
        foreach ($ini as $k => $v) {
            array_push($cmd, '-d', "$k=$v");
        }
        array_push($cmd, __DIR__ . '/child.php', $this->script);
        $baseEnv = ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'];
        $this->proc = proc_open($cmd, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $this->pipes, null, $baseEnv + $env);
        if (!is_resource($this->proc)) {
            throw new \RuntimeException('cannot start php');
        }
        fclose($this->pipes[0]);
        $this->pid = proc_get_status($this->proc)['pid'];
    }

    /** @return array{exit:int, out:string, err:string, result:mixed} */
    public function wait(): array
    {
        $out = stream_get_contents($this->pipes[1]);
        $err = stream_get_contents($this->pipes[2]);
        fclose($this->pipes[1]);
        fclose($this->pipes[2]);
        $exit = proc_close($this->proc);
        @unlink($this->script);
        $lines = array_values(array_filter(explode("\n", (string) $out), 'strlen'));
        $last = $lines ? json_decode($lines[count($lines) - 1], true) : null;
        return ['exit' => $exit, 'out' => (string) $out, 'err' => (string) $err, 'result' => $last];
    }

    public function kill(): void
    {
        if ($this->pid !== null) {
            posix_kill($this->pid, 9);
        }
    }

    /**
     * @param array<string, string> $env
     * @return array{exit:int, out:string, err:string, result:mixed}
     */
    public static function run(string $code, array $env = [], array $ini = []): array
    {
        return (new self($code, $env, $ini))->wait();
    }
}
