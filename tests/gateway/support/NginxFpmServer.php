<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * Debian's nginx and the php-fpm of the PHP running the tests (8.2 on the
 * host, 8.4 in ./build.sh test --php 8.4's chroot) on a loopback port, run with the production
 * files php/deploy/nginx-site.conf and php/deploy/php-fpm-pool.conf. Only the
 * placeholders documented at the top of those files are substituted; a
 * minimal main nginx.conf / php-fpm.conf in a temp folder includes them.
 */
final class NginxFpmServer implements GatewayServer
{
    public const NGINX = '/usr/sbin/nginx';
    public const FPM = '/usr/sbin/php-fpm' . PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION;

    private ?Proc $nginx = null;
    private ?Proc $fpm = null;
    private string $dir;

    public function __construct(
        private string $root,
        private int $port,
        private string $envFile,
        string $workDir,
        private int $workers = 4,
    ) {
        $this->dir = $workDir . '/nginx-fpm';
    }

    public static function available(): bool
    {
        return is_executable(self::NGINX) && is_executable(self::FPM);
    }

    public function start(): void
    {
        foreach (['', '/log', '/tmp'] as $sub) {
            if (!is_dir($this->dir . $sub)) {
                mkdir($this->dir . $sub, 0700, true);
            }
        }
        $socket = $this->dir . '/fpm.sock';
        $this->writeFpmConfig($socket);
        $this->writeNginxConfig($socket);

        $this->fpm = new Proc(
            [self::FPM, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT'), '-y', $this->dir . '/php-fpm.conf', '-F', '-R'],
            ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'],
            $this->dir . '/log/fpm-main',
        );
        $this->nginx = new Proc(
            [self::NGINX, '-p', $this->dir . '/', '-c', $this->dir . '/nginx.conf', '-e', $this->dir . '/log/nginx-startup.log'],
            ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'],
            $this->dir . '/log/nginx-main',
        );
        try {
            $deadline = microtime(true) + 10;
            // The socket file appears at bind(), a moment before listen():
            // wait until it accepts, or nginx's first request may be refused (502).
            while (($probe = @stream_socket_client("unix://$socket", $errno, $errstr, 1)) === false) {
                if (!$this->fpm->running()) {
                    throw new \RuntimeException('php-fpm exited');
                }
                if (microtime(true) > $deadline) {
                    throw new \RuntimeException("php-fpm does not accept on $socket");
                }
                usleep(20000);
            }
            fclose($probe);
            Proc::waitForPort('127.0.0.1', $this->port, 10, fn () => $this->nginx->running());
        } catch (\RuntimeException $e) {
            $logs = $this->logs();
            $this->stop();
            throw new \RuntimeException('nginx + php-fpm did not start: ' . $e->getMessage() . "\n" . $logs, 0, $e);
        }
    }

    private function writeFpmConfig(string $socket): void
    {
        $pool = (string) file_get_contents($this->root . '/php/deploy/php-fpm-pool.conf');
        $pool = $this->substitute($pool, [
            // The env file first: it lives under the checkout placeholder.
            '#^env\[GATEWAY_ENV_FILE\][ \t]*=.*$#m' => 'env[GATEWAY_ENV_FILE] = ' . $this->envFile,
            '#/run/php/amocrm-gateway\.sock#' => $socket,
            '#/srv/amocrm-gateway#' => $this->root,
            // Tests run as root (php-fpm -R); the production user is www-data.
            '#^(user|group|listen\.owner|listen\.group)[ \t]*=[ \t]*www-data[ \t]*$#m' => '$1 = root',
            '#/var/log/#' => $this->dir . '/log/',
            '#^pm[ \t]*=.*$#m' => 'pm = static',
            '#^pm\.max_children[ \t]*=.*$#m' => 'pm.max_children = ' . $this->workers,
        ]);
        $this->assertNoPlaceholderLeft($pool, 'php-fpm-pool.conf');
        file_put_contents($this->dir . '/pool.conf', $pool);
        file_put_contents($this->dir . '/php-fpm.conf', implode("\n", [
            '[global]',
            'pid = ' . $this->dir . '/php-fpm.pid',
            'error_log = ' . $this->dir . '/log/php-fpm.log',
            'log_level = notice',
            'daemonize = no',
            'include = ' . $this->dir . '/pool.conf',
            '',
        ]));
    }

    private function writeNginxConfig(string $socket): void
    {
        $site = (string) file_get_contents($this->root . '/php/deploy/nginx-site.conf');
        $site = $this->substitute($site, [
            '#^[ \t]*listen[ \t]+\[::\]:80;[ \t]*\n#m' => '',
            '#^([ \t]*)listen[ \t]+80;[ \t]*$#m' => '$1listen 127.0.0.1:' . $this->port . ';',
            '#unix:/run/php/amocrm-gateway\.sock#' => 'unix:' . $socket,
            '#/srv/amocrm-gateway#' => $this->root,
            '#/var/log/nginx/#' => $this->dir . '/log/',
        ]);
        $this->assertNoPlaceholderLeft($site, 'nginx-site.conf');
        file_put_contents($this->dir . '/site.conf', $site);
        // The site includes `fastcgi_params` relative to the configuration
        // folder, as in Debian's /etc/nginx.
        copy('/etc/nginx/fastcgi_params', $this->dir . '/fastcgi_params');
        $d = $this->dir;
        file_put_contents($d . '/nginx.conf', <<<CONF
            user root;
            worker_processes 2;
            daemon off;
            pid $d/nginx.pid;
            error_log $d/log/nginx-error.log notice;
            events { worker_connections 512; }
            http {
                include /etc/nginx/mime.types;
                default_type application/octet-stream;
                sendfile on;
                client_body_temp_path $d/tmp/body;
                fastcgi_temp_path $d/tmp/fastcgi;
                proxy_temp_path $d/tmp/proxy;
                uwsgi_temp_path $d/tmp/uwsgi;
                scgi_temp_path $d/tmp/scgi;
                access_log $d/log/access.log;
                include $d/site.conf;
            }

            CONF);
    }

    /** @param array<string, string> $rules regex => replacement */
    private function substitute(string $text, array $rules): string
    {
        foreach ($rules as $re => $to) {
            $text = (string) preg_replace($re, str_replace('\\', '\\\\', $to), $text);
        }
        return $text;
    }

    private function assertNoPlaceholderLeft(string $conf, string $name): void
    {
        $active = implode("\n", array_filter(
            explode("\n", $conf),
            static fn (string $l) => !preg_match('/^\s*[#;]/', $l)
        ));
        foreach (['/srv/', '/run/php/', 'www-data', '/var/log/'] as $p) {
            if (str_contains($active, $p)) {
                throw new \RuntimeException("$name: a placeholder the test harness does not know is left: $p");
            }
        }
    }

    public function stop(): void
    {
        $this->nginx?->stop();
        $this->fpm?->stop();
        $this->nginx = $this->fpm = null;
    }

    public function baseUrl(): string
    {
        return 'http://127.0.0.1:' . $this->port;
    }

    public function label(): string
    {
        return 'nginx + php-fpm';
    }

    public function logs(): string
    {
        $out = '';
        foreach (glob($this->dir . '/log/*') ?: [] as $f) {
            $s = (string) @file_get_contents($f);
            if ($s !== '' && !str_ends_with($f, 'access.log')) {
                $out .= basename($f) . " (tail):\n" . substr($s, -3000) . "\n";
            }
        }
        return $out;
    }

    public function errorLog(): string
    {
        $f = $this->dir . '/log/amocrm-gateway.php-error.log';
        return is_file($f) ? (string) file_get_contents($f) : '';
    }

    public function phpErrors(): array
    {
        $lines = [];
        foreach (['amocrm-gateway.php-error.log', 'php-fpm.log'] as $name) {
            $f = $this->dir . '/log/' . $name;
            $log = is_file($f) ? (string) file_get_contents($f) : '';
            $lines = array_merge($lines, preg_grep('/\b(PHP Warning|PHP Notice|PHP Deprecated|PHP Fatal error|PHP Parse error|Uncaught)\b/', explode("\n", $log)) ?: []);
        }
        return array_values($lines);
    }

    public function workers(): int
    {
        return $this->workers;
    }
}
