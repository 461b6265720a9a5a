<?php

declare(strict_types=1);

namespace AmoBench;

/**
 * nginx and php-fpm on loopback, as a deployment runs them:
 *
 * - the gateway (php/public/index.php) on its own port, run with the
 *   production files php/deploy/nginx-site.conf and php-fpm-pool.conf (the
 *   placeholders substituted as tests/gateway/support/NginxFpmServer.php
 *   does: `pm = static`, 4 workers);
 * - on a second port, the bench's own scripts (bench/workloads/fpm/): the
 *   curl version of the lead route (4 static workers, like the gateway), and
 *   the first-call scripts, each in a pool of one worker that is replaced
 *   after every request (pm.max_requests = 1); the curl scripts twice, with
 *   CAINFO = the system bundle plus the private CA, and (under /ca-only/ and
 *   /first/curl-ca) = the private CA alone.
 *
 * Two php-fpm masters: one with the extension loaded (the gateway and
 * first_amo.php), one with ext-curl (lead_curl.php and first_curl.php);
 * both `-n` with opcache on.
 */
final class WebStack
{
    public const NGINX = '/usr/sbin/nginx';
    public const FPM = '/usr/sbin/php-fpm8.2';
    public const WORKERS = 4;

    public readonly int $gatewayPort;
    public readonly int $scriptsPort;
    /** @var list<Service> */
    private array $services = [];

    /**
     * @param array<string, string> $gatewayEnv the gateway's .env
     * @param array<string, string> $amoIni php_admin_value[amocrm.*] of the first-call pool
     * @param array<string, string> $curlEnv env[] of the curl pools
     * @param string $caOnly a CA bundle of the private CA alone, for the `-ca` curl pools
     */
    public function __construct(
        private readonly string $root,
        private readonly string $dir,
        string $extension,
        array $gatewayEnv,
        array $amoIni,
        array $curlEnv,
        string $caOnly,
    ) {
        foreach (['', '/log', '/tmp'] as $sub) {
            if (!is_dir($dir . $sub)) {
                mkdir($dir . $sub, 0700, true);
            }
        }
        $this->gatewayPort = Command::freePort();
        do {
            $this->scriptsPort = Command::freePort();
        } while ($this->scriptsPort === $this->gatewayPort);

        $envFile = "$dir/gateway.env";
        file_put_contents($envFile, implode("\n", array_map(static fn ($k, $v) => "$k=$v", array_keys($gatewayEnv), $gatewayEnv)) . "\n");
        chmod($envFile, 0600);

        $scripts = dirname(__DIR__) . '/workloads/fpm';
        $admin = "php_admin_flag[display_errors] = off\nphp_admin_flag[log_errors] = on\n"
            . "php_admin_value[error_log] = $dir/log/bench-scripts.php-error.log\nphp_admin_value[memory_limit] = 64M\n"
            . "catch_workers_output = yes\nclear_env = yes\nenv[PATH] = /usr/bin:/bin\n";
        $curlEnvLines = implode('', array_map(static fn ($k, $v) => "env[$k] = $v\n", array_keys($curlEnv), $curlEnv));
        $caOnlyEnv = ['BENCH_CA_BUNDLE' => $caOnly] + $curlEnv;
        $caOnlyEnvLines = implode('', array_map(static fn ($k, $v) => "env[$k] = $v\n", array_keys($caOnlyEnv), $caOnlyEnv));
        $amoIniLines = implode('', array_map(static fn ($k, $v) => "php_admin_value[amocrm.$k] = $v\n", array_keys($amoIni), $amoIni));

        $this->writeFpm('amo', $this->gatewayPool($envFile) . "\n"
            . $this->pool('first-amo', 1, 1) . $admin . $amoIniLines);
        $this->writeFpm('curl', $this->pool('lead-curl', self::WORKERS, 0) . $admin . $curlEnvLines . "\n"
            . $this->pool('first-curl', 1, 1) . $admin . $curlEnvLines . "\n"
            . $this->pool('lead-curl-ca', self::WORKERS, 0) . $admin . $caOnlyEnvLines . "\n"
            . $this->pool('first-curl-ca', 1, 1) . $admin . $caOnlyEnvLines);
        $this->writeNginx($scripts);

        $env = ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'];
        $opcache = ['-d', 'zend_extension=opcache', '-d', 'opcache.enable=1'];
        $this->services[] = $amo = new Service('php-fpm (AmoClient)',
            [self::FPM, '-n', ...$opcache, '-d', "extension=$extension", '-y', "$dir/php-fpm-amo.conf", '-F', '-R'], $env, "$dir/log/fpm-amo");
        $this->services[] = $curl = new Service('php-fpm (curl)',
            [self::FPM, '-n', ...$opcache, '-d', 'extension=curl', '-y', "$dir/php-fpm-curl.conf", '-F', '-R'], $env, "$dir/log/fpm-curl");
        foreach (['gateway', 'first-amo'] as $pool) {
            $amo->waitForSocket("$dir/$pool.sock");
        }
        foreach (['lead-curl', 'first-curl', 'lead-curl-ca', 'first-curl-ca'] as $pool) {
            $curl->waitForSocket("$dir/$pool.sock");
        }
        $this->services[] = $nginx = new Service('nginx', [self::NGINX, '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/log/nginx-startup.log"],
            $env, "$dir/log/nginx");
        $nginx->waitForPort($this->gatewayPort);
        $nginx->waitForPort($this->scriptsPort);
    }

    /** The production pool file with its placeholders filled in. */
    private function gatewayPool(string $envFile): string
    {
        $pool = (string) file_get_contents($this->root . '/php/deploy/php-fpm-pool.conf');
        $pool = self::substitute($pool, [
            '#^env\[GATEWAY_ENV_FILE\][ \t]*=.*$#m' => 'env[GATEWAY_ENV_FILE] = ' . $envFile,
            '#/run/php/amocrm-gateway\.sock#' => $this->dir . '/gateway.sock',
            '#/srv/amocrm-gateway#' => $this->root,
            // run as root here (php-fpm -R); the production user is www-data
            '#^(user|group|listen\.owner|listen\.group)[ \t]*=[ \t]*www-data[ \t]*$#m' => '$1 = root',
            '#/var/log/#' => $this->dir . '/log/',
            '#^pm[ \t]*=.*$#m' => 'pm = static',
            '#^pm\.max_children[ \t]*=.*$#m' => 'pm.max_children = ' . self::WORKERS,
        ]);
        return str_replace('[amocrm-gateway]', '[gateway]', $pool);
    }

    private function pool(string $name, int $workers, int $maxRequests): string
    {
        return "[$name]\nuser = root\ngroup = root\nlisten = {$this->dir}/$name.sock\nlisten.mode = 0600\n"
            . "pm = static\npm.max_children = $workers\npm.max_requests = $maxRequests\n";
    }

    private function writeFpm(string $name, string $pools): void
    {
        file_put_contents("{$this->dir}/php-fpm-$name.conf", "[global]\npid = {$this->dir}/php-fpm-$name.pid\n"
            . "error_log = {$this->dir}/log/php-fpm-$name.log\nlog_level = notice\ndaemonize = no\n\n$pools");
    }

    private function writeNginx(string $scripts): void
    {
        $d = $this->dir;
        $site = (string) file_get_contents($this->root . '/php/deploy/nginx-site.conf');
        $site = self::substitute($site, [
            '#^[ \t]*listen[ \t]+\[::\]:80;[ \t]*\n#m' => '',
            '#^([ \t]*)listen[ \t]+80;[ \t]*$#m' => '$1listen 127.0.0.1:' . $this->gatewayPort . ';',
            '#unix:/run/php/amocrm-gateway\.sock#' => "unix:$d/gateway.sock",
            '#/srv/amocrm-gateway#' => $this->root,
            '#/var/log/nginx/#' => "$d/log/",
        ]);
        file_put_contents("$d/gateway-site.conf", $site);
        copy('/etc/nginx/fastcgi_params', "$d/fastcgi_params");
        $location = static fn (string $path, string $pool, string $script): string => <<<LOC
                location = $path {
                    include fastcgi_params;
                    fastcgi_param SCRIPT_FILENAME $scripts/$script;
                    fastcgi_param SCRIPT_NAME /$script;
                    fastcgi_pass unix:$d/$pool.sock;
                }

            LOC;
        $scriptsSite = "server {\n    listen 127.0.0.1:{$this->scriptsPort};\n    access_log off;\n"
            . "    location /api/leads/ {\n        include fastcgi_params;\n"
            . "        fastcgi_param SCRIPT_FILENAME $scripts/lead_curl.php;\n        fastcgi_param SCRIPT_NAME /lead_curl.php;\n"
            . "        fastcgi_pass unix:$d/lead-curl.sock;\n    }\n"
            . "    location /ca-only/api/leads/ {\n        include fastcgi_params;\n"
            . "        fastcgi_param SCRIPT_FILENAME $scripts/lead_curl.php;\n        fastcgi_param SCRIPT_NAME /lead_curl.php;\n"
            . "        fastcgi_pass unix:$d/lead-curl-ca.sock;\n    }\n"
            . $location('/first/amo', 'first-amo', 'first_amo.php')
            . $location('/first/curl', 'first-curl', 'first_curl.php')
            . $location('/first/curl-ca', 'first-curl-ca', 'first_curl.php')
            . "}\n";
        file_put_contents("$d/scripts-site.conf", $scriptsSite);
        file_put_contents("$d/nginx.conf", <<<CONF
            user root;
            worker_processes 2;
            daemon off;
            pid $d/nginx.pid;
            error_log $d/log/nginx-error.log notice;
            events { worker_connections 1024; }
            http {
                include /etc/nginx/mime.types;
                default_type application/octet-stream;
                client_body_temp_path $d/tmp/body;
                fastcgi_temp_path $d/tmp/fastcgi;
                proxy_temp_path $d/tmp/proxy;
                uwsgi_temp_path $d/tmp/uwsgi;
                scgi_temp_path $d/tmp/scgi;
                include $d/gateway-site.conf;
                include $d/scripts-site.conf;
            }

            CONF);
    }

    /** @param array<string, string> $rules regex => replacement */
    private static function substitute(string $text, array $rules): string
    {
        foreach ($rules as $re => $to) {
            $text = (string) preg_replace($re, str_replace('\\', '\\\\', $to), $text);
        }
        return $text;
    }

    public function gatewayUrl(string $path): string
    {
        return "http://127.0.0.1:{$this->gatewayPort}$path";
    }

    public function scriptsUrl(string $path): string
    {
        return "http://127.0.0.1:{$this->scriptsPort}$path";
    }

    /** PHP warnings and errors the servers logged (a clean run has none). */
    public function phpErrors(): string
    {
        $out = '';
        foreach (glob($this->dir . '/log/*.log') ?: [] as $f) {
            if (str_contains($f, 'php-error') || str_contains($f, 'php-fpm')) {
                $lines = preg_grep('/PHP (Warning|Notice|Fatal|Parse)|Uncaught|WARNING: \[pool/', file($f) ?: []) ?: [];
                $out .= $lines === [] ? '' : basename($f) . ":\n" . implode('', array_slice($lines, -10));
            }
        }
        return $out;
    }

    public function stop(): void
    {
        foreach (array_reverse($this->services) as $s) {
            $s->stop();
        }
        $this->services = [];
    }
}
