<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/**
 * HTTPS in front of the emulator, the way a corporate TLS proxy or a private
 * CA would present amoCRM: a CA made by openssl for this test only, a
 * certificate for localhost signed by it, and Debian's nginx on a loopback
 * port terminating TLS and passing requests to the emulator.
 */
final class TlsFront
{
    public const NGINX = '/usr/sbin/nginx';

    public int $port;
    public string $caFile;
    /** @var resource */
    private $proc;

    public function __construct(private string $dir, int $upstreamPort)
    {
        mkdir("$dir/tmp", 0700, true);
        $ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
        self::openssl(['req', '-x509', ...$ec, '-keyout', "$dir/ca.key", '-out', "$dir/ca.pem", '-days', '2', '-subj', '/CN=amocrm test CA']);
        self::openssl(['req', ...$ec, '-keyout', "$dir/server.key", '-out', "$dir/server.csr", '-subj', '/CN=localhost']);
        file_put_contents("$dir/ext.cnf", "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
            . "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n");
        self::openssl(['x509', '-req', '-in', "$dir/server.csr", '-CA', "$dir/ca.pem", '-CAkey', "$dir/ca.key", '-CAcreateserial',
            '-out', "$dir/server.pem", '-days', '2', '-extfile', "$dir/ext.cnf"]);
        $this->caFile = "$dir/ca.pem";

        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $this->port = (int) substr(strrchr((string) stream_socket_get_name($probe, false), ':'), 1);
        fclose($probe);
        $tmp = "$dir/tmp";
        file_put_contents("$dir/nginx.conf", <<<CONF
            worker_processes 1;
            pid $dir/nginx.pid;
            error_log $dir/error.log warn;
            events { worker_connections 64; }
            http {
                access_log off;
                client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fcgi;
                uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
                server {
                    listen 127.0.0.1:{$this->port} ssl;
                    ssl_certificate $dir/server.pem;
                    ssl_certificate_key $dir/server.key;
                    location / {
                        proxy_pass http://127.0.0.1:$upstreamPort;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_buffering off;
                    }
                }
            }
            CONF);
        $this->proc = proc_open([self::NGINX, '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log", '-g', 'daemon off;'],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', "$dir/nginx.out", 'a'], 2 => ['file', "$dir/nginx.out", 'a']], $pipes);
        $deadline = microtime(true) + 10;
        while (!($s = @stream_socket_client("tcp://127.0.0.1:{$this->port}", $errno, $err, 0.2))) {
            if (microtime(true) > $deadline || !proc_get_status($this->proc)['running']) {
                throw new \RuntimeException('nginx did not start: ' . @file_get_contents("$dir/nginx.out") . @file_get_contents("$dir/error.log"));
            }
            usleep(20000);
        }
        fclose($s);
    }

    /** @param list<string> $args */
    private static function openssl(array $args): void
    {
        $p = proc_open(['openssl', ...$args], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        $out = stream_get_contents($pipes[1]) . stream_get_contents($pipes[2]);
        if (proc_close($p) !== 0) {
            throw new \RuntimeException('openssl ' . implode(' ', $args) . ": $out");
        }
    }

    public function stop(): void
    {
        if (is_resource($this->proc)) {
            proc_terminate($this->proc);
            proc_close($this->proc);
        }
    }

    public function __destruct()
    {
        $this->stop();
    }
}
