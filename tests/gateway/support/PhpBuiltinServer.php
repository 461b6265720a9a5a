<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * PHP's built-in web server with 4 workers:
 * php -n -d extension=$AMOCRM_EXT -S 127.0.0.1:PORT -t php/public php/public/index.php
 */
final class PhpBuiltinServer implements GatewayServer
{
    private ?Proc $proc = null;

    public function __construct(
        private string $root,
        private int $port,
        private string $envFile,
        private string $workDir,
        private int $workers = 4,
    ) {
    }

    public function start(): void
    {
        $public = $this->root . '/php/public';
        $cmd = [
            PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT'),
            // As in production: errors to a log (checked by phpErrors()), never into an answer.
            '-d', 'display_errors=0', '-d', 'log_errors=1', '-d', 'error_log=' . $this->workDir . '/php-errors.log',
            '-d', 'enable_post_data_reading=0',
            '-S', '127.0.0.1:' . $this->port, '-t', $public, $public . '/index.php',
        ];
        $env = [
            'PATH' => getenv('PATH') ?: '/usr/bin:/bin',
            'PHP_CLI_SERVER_WORKERS' => (string) $this->workers,
            'GATEWAY_ENV_FILE' => $this->envFile,
        ];
        $this->proc = new Proc($cmd, $env, $this->workDir . '/php-server', $this->root);
        try {
            Proc::waitForPort('127.0.0.1', $this->port, 10, fn () => $this->proc->running());
        } catch (\RuntimeException $e) {
            $logs = $this->logs();
            $this->stop();
            throw new \RuntimeException($e->getMessage() . "\n" . $logs, 0, $e);
        }
    }

    public function stop(): void
    {
        $this->proc?->stop();
        $this->proc = null;
    }

    public function baseUrl(): string
    {
        return 'http://127.0.0.1:' . $this->port;
    }

    public function label(): string
    {
        return 'php -S';
    }

    public function logs(): string
    {
        $out = '';
        foreach (['php-server.err' => 'php -S log', 'php-errors.log' => 'PHP error log'] as $name => $label) {
            $f = $this->workDir . '/' . $name;
            $s = is_file($f) ? (string) file_get_contents($f) : '';
            // The built-in server logs every request; keep the tail.
            $out .= "$label (tail):\n" . substr($s, -3000) . "\n";
        }
        return $out;
    }

    public function errorLog(): string
    {
        $f = $this->workDir . '/php-errors.log';
        return is_file($f) ? (string) file_get_contents($f) : '';
    }

    public function phpErrors(): array
    {
        $log = $this->errorLog();
        return array_values(preg_grep('/\b(PHP Warning|PHP Notice|PHP Deprecated|PHP Fatal error|PHP Parse error|Uncaught)\b/', explode("\n", $log)) ?: []);
    }

    public function workers(): int
    {
        return $this->workers;
    }
}
