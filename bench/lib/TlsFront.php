<?php

declare(strict_types=1);

namespace AmoBench;

/**
 * amoCRM over HTTPS with a private CA: a CA made by openssl for this run, a
 * certificate for localhost signed by it, and nginx on a loopback port
 * terminating TLS in front of the emulator (as tests/php/support/TlsFront.php,
 * plus an access log of each request's connection number, so that the TCP
 * connections the clients opened can be counted). The front keeps a client
 * connection for 300 s idle and 100 000 requests, and its own connections to
 * the emulator alive, so that what is counted is what the client does.
 */
final class TlsFront
{
    public const NGINX = '/usr/sbin/nginx';
    public const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

    public readonly int $port;
    /** The private CA alone (the extension's ca_file). */
    public readonly string $caFile;
    /** The system bundle with the private CA appended (curl's CAINFO). */
    public readonly string $bundle;
    private readonly string $accessLog;
    private Service $nginx;

    public function __construct(private readonly string $dir, int $upstreamPort)
    {
        mkdir("$dir/tmp", 0700, true);
        $ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
        self::openssl(['req', '-x509', ...$ec, '-keyout', "$dir/ca.key", '-out', "$dir/ca.pem", '-days', '2', '-subj', '/CN=amocrm bench CA']);
        self::openssl(['req', ...$ec, '-keyout', "$dir/server.key", '-out', "$dir/server.csr", '-subj', '/CN=localhost']);
        file_put_contents("$dir/ext.cnf", "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
            . "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n");
        self::openssl(['x509', '-req', '-in', "$dir/server.csr", '-CA', "$dir/ca.pem", '-CAkey', "$dir/ca.key", '-CAcreateserial',
            '-out', "$dir/server.pem", '-days', '2', '-extfile', "$dir/ext.cnf"]);
        $this->caFile = "$dir/ca.pem";
        $this->bundle = "$dir/system-plus-ca.pem";
        file_put_contents($this->bundle, rtrim((string) file_get_contents(self::SYSTEM_BUNDLE)) . "\n" . file_get_contents($this->caFile));
        $this->accessLog = "$dir/access.log";
        touch($this->accessLog);

        $this->port = Command::freePort();
        $tmp = "$dir/tmp";
        file_put_contents("$dir/nginx.conf", <<<CONF
            worker_processes 2;
            pid $dir/nginx.pid;
            error_log $dir/error.log warn;
            daemon off;
            events { worker_connections 1024; }
            http {
                log_format connections '\$connection \$connection_requests \$status';
                access_log {$this->accessLog} connections;
                client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fcgi;
                uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
                keepalive_timeout 300s;
                keepalive_requests 100000;
                upstream emulator {
                    server 127.0.0.1:$upstreamPort;
                    keepalive 32;
                }
                server {
                    listen 127.0.0.1:{$this->port} ssl;
                    ssl_certificate $dir/server.pem;
                    ssl_certificate_key $dir/server.key;
                    ssl_session_cache shared:SSL:1m;
                    location / {
                        proxy_pass http://emulator;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_set_header Host \$http_host;
                        proxy_buffering off;
                    }
                }
            }
            CONF);
        $this->nginx = new Service('nginx (TLS front)', [self::NGINX, '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log"],
            ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'], "$dir/nginx");
        $this->nginx->waitForPort($this->port);
    }

    /** The account host to put in a token file: this front. */
    public function host(): string
    {
        return 'localhost:' . $this->port;
    }

    /**
     * Where the access log ends once it is quiet: connectionsSince() counts
     * from here. wrk stops a thread once it has sent its share, leaving up
     * to one request per connection in flight; those still reach this front
     * (a new connection each, on the curl route) and are logged as they end.
     * Waiting until nothing was logged for 300 ms (at most 10 s) keeps them
     * out of the next round's count.
     */
    public function mark(): int
    {
        $size = -1;
        $quietSince = microtime(true);
        $deadline = $quietSince + 10;
        while (true) {
            clearstatcache(true, $this->accessLog);
            $now = (int) filesize($this->accessLog);
            if ($now !== $size) {
                [$size, $quietSince] = [$now, microtime(true)];
            } elseif (microtime(true) - $quietSince >= 0.3 || microtime(true) > $deadline) {
                return $size;
            }
            usleep(50000);
        }
    }

    /**
     * The TCP connections that carried requests since $mark (their numbers,
     * distinct, from the access log), and the requests.
     * @return array{connections: list<string>, requests: int}
     */
    public function connectionsSince(int $mark): array
    {
        $fh = fopen($this->accessLog, 'r');
        fseek($fh, $mark);
        $seen = [];
        $requests = 0;
        while (($line = fgets($fh)) !== false) {
            $seen[strtok($line, ' ')] = true;
            $requests++;
        }
        fclose($fh);
        return ['connections' => array_map('strval', array_keys($seen)), 'requests' => $requests];
    }

    /** @param list<string> $args */
    private static function openssl(array $args): void
    {
        $r = Command::run(['openssl', ...$args], ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'], 30);
        if ($r['exit'] !== 0) {
            throw new \RuntimeException('openssl ' . implode(' ', $args) . ": {$r['out']}{$r['err']}");
        }
    }

    public function stop(): void
    {
        $this->nginx->stop();
    }
}
