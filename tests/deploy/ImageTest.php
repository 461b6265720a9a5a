<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Deploy;

use AmoCRM\Tests\Emulator;
use AmoCRM\Tests\Gateway\HttpClient;
use AmoCRM\Tests\Gateway\Proc;
use PHPUnit\Framework\TestCase;

/**
 * The Dockerfile, as far as this machine allows: no registry (both stages
 * start from a local bookworm image, docker/base-image.sh, and the build
 * stage takes the extension built on the host through PREBUILT_EXT), and no
 * `podman run` (cgroups), so the image is built with `buildah bud
 * --isolation chroot` and its php-fpm runs under `buildah run --isolation
 * chroot` on a loopback port, with the image's own command. The host's nginx
 * runs compose's site (docker/nginx-site.conf) in front of it, and the
 * gateway inside answers /health, /ready after a pair is imported, and
 * creates a lead at the emulator. Containers, the image and temp folders are
 * removed at the end.
 */
final class ImageTest extends TestCase
{
    private const NGINX = '/usr/sbin/nginx';

    private string $root;
    private string $dir;
    private string $image;
    private ?string $container = null;
    private ?Proc $fpm = null;
    private ?Proc $nginx = null;
    private ?Emulator $emulator = null;

    protected function setUp(): void
    {
        foreach (['buildah', 'debootstrap'] as $tool) {
            $this->assertSame(0, $this->sh(['sh', '-c', "command -v $tool"])['exit'], "$tool is needed (./build.sh test --deploy installs it)");
        }
        $this->root = dirname(__DIR__, 2);
        $this->dir = sys_get_temp_dir() . '/amocrm-image-' . bin2hex(random_bytes(6));
        mkdir($this->dir . '/etc', 0755, true);
        mkdir($this->dir . '/log', 0755, true);
        $this->image = 'localhost/amocrm-gateway:test-' . bin2hex(random_bytes(4));
    }

    protected function tearDown(): void
    {
        $failed = $this->getStatus() !== \PHPUnit\Runner\BaseTestRunner::STATUS_PASSED;
        if ($failed && $this->fpm !== null) {
            fwrite(STDERR, "\n--- php-fpm in the container ---\n" . $this->fpm->output() . "\n--- nginx ---\n" . ($this->nginx?->output() ?? '') . "\n");
        }
        $this->nginx?->stop();
        if ($this->fpm !== null) {
            $this->stopContainerProcesses($this->fpm);
        }
        $this->emulator?->stop();
        if ($this->container !== null) {
            $this->sh(['buildah', 'rm', $this->container]);
        }
        $this->sh(['buildah', 'rmi', '-f', $this->image]);
        $this->sh(['rm', '-rf', $this->dir]);
    }

    public function testTheImageBuildsAndItsGatewayAnswers(): void
    {
        // -- build: the Dockerfile as it is, with local bases and the host's extension
        $base = $this->sh([$this->root . '/docker/base-image.sh'], [], 600);
        $this->assertSame(0, $base['exit'], "docker/base-image.sh:\n" . $base['err']);
        $baseImage = trim($base['out']);
        @mkdir($this->root . '/target/prebuilt', 0755, true);
        copy((string) getenv('AMOCRM_EXT'), $this->root . '/target/prebuilt/amocrm.so');
        $bud = $this->sh(['buildah', 'bud', '--isolation', 'chroot', '--format', 'docker', '--layers=false',
            '--build-arg', "RUST_IMAGE=$baseImage", '--build-arg', "PHP_IMAGE=$baseImage",
            '--build-arg', 'PREBUILT_EXT=target/prebuilt/amocrm.so', '-t', $this->image, $this->root], [], 900);
        $this->assertSame(0, $bud['exit'], "buildah bud:\n" . substr($bud['out'] . $bud['err'], -4000));
        $config = json_decode($this->sh(['buildah', 'inspect', '--type', 'image', $this->image])['out'], true);
        $docker = $config['Docker']['config'] ?? [];
        $this->assertSame(['/var/lib/amocrm' => []], array_map(static fn ($v) => (array) $v, (array) ($docker['Volumes'] ?? [])), 'the tokens are on a volume');
        $this->assertStringContainsString('amocrm-healthcheck', implode(' ', $docker['Healthcheck']['Test'] ?? []), 'the image has a healthcheck');
        $cmd = $docker['Cmd'] ?? [];
        $this->assertNotSame([], $cmd);

        $this->container = trim($this->sh(['buildah', 'from', $this->image])['out']);
        $this->assertNotSame('', $this->container);
        $modules = $this->inside(['php', '-m']);
        $this->assertContains('amocrm', array_map('trim', explode("\n", $modules['out'])), 'php -m in the image lists amocrm');
        $this->assertSame('', $modules['err'], 'PHP in the image starts without a warning');
        $this->assertSame("www-data 700\n", $this->inside(['stat', '-c', '%U %a', '/var/lib/amocrm'])['out']);

        // -- php-fpm from the image, with its own command, on a loopback port
        $this->emulator = Emulator::start('127.0.0.1');
        $fpmPort = Proc::freePort();
        $apiKey = 'site-key-' . bin2hex(random_bytes(8));
        $this->writeGatewayEnv($apiKey);
        $this->fpm = new Proc(['buildah', 'run', '--isolation', 'chroot', '--network', 'host',
            '-e', "FPM_LISTEN=127.0.0.1:$fpmPort", '-v', $this->dir . '/etc:/etc/amocrm-gateway', $this->container, '--', ...$cmd],
            ['PATH' => (string) getenv('PATH')], $this->dir . '/log/fpm');
        Proc::waitForPort('127.0.0.1', $fpmPort, 30, fn () => $this->fpm->running());

        // -- compose's nginx site on the host's nginx, in front of it
        $this->assertSame($this->composeSite(), (string) file_get_contents($this->root . '/docker/nginx-site.conf'),
            'docker/nginx-site.conf is php/deploy/nginx-site.conf with the installed paths and php:9000 (regenerate it)');
        $port = Proc::freePort();
        $this->startNginx($port, $fpmPort);
        $http = new HttpClient("http://127.0.0.1:$port");

        $health = $http->request('GET', '/health');
        $this->assertSame(200, $health->status, $health->describe());
        $this->assertSame(['status' => 'ok'], json_decode($health->body, true));
        $this->assertSame(0, $this->healthcheck($fpmPort, '/health')['exit'], 'the image\'s healthcheck passes on /health');
        $this->assertSame(503, $http->request('GET', '/ready')->status, 'not ready before a pair is there');
        $this->assertNotSame(0, $this->healthcheck($fpmPort, '/ready')['exit'], 'the /ready healthcheck fails before a pair is there');

        // -- a pair imported with the gateway's CLI inside, as www-data
        $t = $this->emulator->mintTokens();
        file_put_contents($this->dir . '/etc/pair.json', json_encode([
            'access_token' => $t['access_token'], 'refresh_token' => $t['refresh_token'],
            'expires_at' => time() + 86400, 'base_domain' => $this->emulator->referer(), 'updated_at' => time(),
        ]));
        chmod($this->dir . '/etc/pair.json', 0644);
        $import = $this->inside(['php', '/usr/share/amocrm-gateway/bin/amocrm', 'import', '/etc/amocrm-gateway/pair.json'], 'www-data');
        $this->assertSame(0, $import['exit'], $import['out'] . $import['err']);
        unlink($this->dir . '/etc/pair.json');
        $this->assertSame("www-data 600\n", $this->inside(['stat', '-c', '%U %a', '/var/lib/amocrm/tokens.json'])['out'], 'the pair is on the volume, private to www-data');

        $ready = $http->request('GET', '/ready');
        $this->assertSame(200, $ready->status, $ready->describe());
        $this->assertSame(0, $this->healthcheck($fpmPort, '/ready')['exit'], 'the /ready healthcheck passes');
        $lead = $http->request('POST', '/api/leads', ['bearer' => $apiKey, 'json' => [
            'name' => 'Заявка из контейнера', 'price' => 1200, 'contact' => ['name' => 'Иван', 'phone' => '+79001234567'],
        ]]);
        $this->assertSame(201, $lead->status, $lead->describe());
        $id = json_decode($lead->body, true)['id'] ?? null;
        $this->assertIsInt($id);
        $atAmo = $this->emulator->http('GET', "/api/v4/leads/$id", null, ['Authorization: Bearer ' . $t['access_token']]);
        $this->assertSame(200, $atAmo['status'], 'the lead is at the emulator');
        $this->assertSame('Заявка из контейнера', $atAmo['json']['name'] ?? null);

        // -- the cron service's keepalive, inside
        $keepalive = $this->inside(['php', '/usr/share/amocrm-gateway/bin/amocrm', 'keepalive', '--all-accounts', '--max-age=30'], 'www-data');
        $this->assertSame(0, $keepalive['exit'], $keepalive['out'] . $keepalive['err']);
        foreach ([$this->fpm->output(100000), $import['out'], $import['err'], $lead->body, $ready->body] as $text) {
            $this->assertStringNotContainsString($t['access_token'], $text);
            $this->assertStringNotContainsString($t['refresh_token'], $text);
        }
    }

    /**
     * compose.yaml cannot run here (no registry, no `podman run`): what can be
     * checked is that it names what exists — the files it mounts, the
     * image's commands it runs, the volume for the tokens.
     */
    public function testComposeNamesWhatExists(): void
    {
        $compose = (string) file_get_contents(dirname(__DIR__, 2) . '/compose.yaml');
        $dockerfile = (string) file_get_contents(dirname(__DIR__, 2) . '/Dockerfile');
        preg_match_all('#^\s*- \./([^:\s]+):#m', $compose, $mounts);
        $this->assertContains('docker/nginx-site.conf', $mounts[1]);
        foreach ($mounts[1] as $path) {
            // php/.env is the admin's; the example is what it is made from.
            $this->assertFileExists(dirname(__DIR__, 2) . '/' . ($path === 'php/.env' ? 'php/.env.example' : $path), "compose.yaml mounts ./$path");
        }
        preg_match_all('#"(amocrm-[a-z]+)"#', $compose, $commands);
        $this->assertSame(['amocrm-healthcheck', 'amocrm-cron'], array_values(array_unique($commands[1])), 'the commands compose runs in the image');
        foreach (array_unique($commands[1]) as $command) {
            $this->assertMatchesRegularExpression('#^COPY docker/\S+ /usr/local/bin/' . $command . '$#m', $dockerfile, "the image has $command");
        }
        $this->assertMatchesRegularExpression('#^\s*- amocrm-data:/var/lib/amocrm$#m', $compose, 'the tokens are on a named volume');
        $this->assertMatchesRegularExpression('~^\s*#?\s*AMOCRM_STORE=redis://redis:6379$~m', $compose, 'the Redis store\'s URL is given');
    }

    /** docker/nginx-site.conf as made from php/deploy/nginx-site.conf. */
    private function composeSite(): string
    {
        $r = $this->sh(['sed', '-f', $this->root . '/packaging/package-paths.sed', '-e', 's#unix:/run/php/amocrm-gateway\.sock#php:9000#g',
            $this->root . '/php/deploy/nginx-site.conf']);
        $this->assertSame(0, $r['exit'], $r['err']);
        return "# Generated from php/deploy/nginx-site.conf (packaging/package-paths.sed, php-fpm at php:9000):\n"
            . "# the compose file's nginx site. tests/deploy/ImageTest checks that it is in step.\n" . $r['out'];
    }

    private function startNginx(int $port, int $fpmPort): void
    {
        $d = $this->dir . '/nginx';
        mkdir($d . '/tmp', 0755, true);
        $site = (string) file_get_contents($this->root . '/docker/nginx-site.conf');
        $site = (string) preg_replace('#^[ \t]*listen[ \t]+\[::\]:80;[ \t]*\n#m', '', $site);
        $site = (string) preg_replace('#^([ \t]*)listen[ \t]+80;#m', '$1listen 127.0.0.1:' . $port . ';', $site);
        $site = str_replace(['php:9000', '/var/log/nginx/'], ["127.0.0.1:$fpmPort", "$d/"], $site);
        file_put_contents("$d/site.conf", $site);
        copy('/etc/nginx/fastcgi_params', "$d/fastcgi_params");
        file_put_contents("$d/nginx.conf", "user root;\nworker_processes 1;\ndaemon off;\npid $d/nginx.pid;\nerror_log $d/error.log notice;\n"
            . "events { worker_connections 64; }\nhttp {\n include /etc/nginx/mime.types;\n client_body_temp_path $d/tmp/body;\n"
            . " fastcgi_temp_path $d/tmp/fastcgi;\n proxy_temp_path $d/tmp/proxy;\n uwsgi_temp_path $d/tmp/uwsgi;\n scgi_temp_path $d/tmp/scgi;\n"
            . " access_log $d/access.log;\n include $d/site.conf;\n}\n");
        $this->nginx = new Proc([self::NGINX, '-p', "$d/", '-c', "$d/nginx.conf", '-e', "$d/startup.log"], ['PATH' => (string) getenv('PATH')], "$d/main");
        Proc::waitForPort('127.0.0.1', $port, 10, fn () => $this->nginx->running());
    }

    private function writeGatewayEnv(string $apiKey): void
    {
        $port = $this->emulator->port;
        $env = [
            'AMOCRM_CLIENT_ID' => 'emulator-client-id',
            'AMOCRM_CLIENT_SECRET' => 'emulator-client-secret',
            'AMOCRM_REDIRECT_URI' => "http://localhost:$port/oauth/callback",
            'AMOCRM_ALLOWED_DOMAINS' => 'localhost',
            'AMOCRM_INSECURE_HTTP' => '1',
            'AMOCRM_OAUTH_HOST' => "localhost:$port",
            'GATEWAY_API_KEYS' => $apiKey,
            'GATEWAY_ADMIN_USER' => 'admin',
            'GATEWAY_ADMIN_PASSWORD' => bin2hex(random_bytes(8)),
            'GATEWAY_SECRET' => bin2hex(random_bytes(24)),
            'GATEWAY_WEBHOOK_SECRET' => 'wh' . bin2hex(random_bytes(10)),
            'GATEWAY_DEFAULT_PIPELINE_ID' => '1001',
            'GATEWAY_DEFAULT_STATUS_ID' => '10001',
            // No GATEWAY_DATA_DIR: the image's default data dir is the volume.
        ];
        $text = '';
        foreach ($env as $k => $v) {
            $text .= "$k=$v\n";
        }
        file_put_contents($this->dir . '/etc/gateway.env', $text);
        chmod($this->dir . '/etc/gateway.env', 0644);
    }

    /** @return array{exit:int, out:string, err:string} */
    private function healthcheck(int $fpmPort, string $path): array
    {
        return $this->sh(['buildah', 'run', '--isolation', 'chroot', '--network', 'host', '-e', "FPM_LISTEN=127.0.0.1:$fpmPort",
            $this->container, '--', 'amocrm-healthcheck', $path], [], 60);
    }

    /** @return array{exit:int, out:string, err:string} a command in the container */
    private function inside(array $cmd, ?string $user = null): array
    {
        return $this->sh(['buildah', 'run', '--isolation', 'chroot', '--network', 'host',
            ...($user !== null ? ['--user', $user] : []),
            '-v', $this->dir . '/etc:/etc/amocrm-gateway', (string) $this->container, '--', ...$cmd], [], 120);
    }

    /**
     * php-fpm's workers outlive a killed `buildah run` (they are in a session
     * of their own, their root is the container's): SIGTERM to every process
     * below it (php-fpm's master then ends its workers), then SIGKILL to
     * whatever of them is left.
     */
    private function stopContainerProcesses(Proc $run): void
    {
        $below = self::descendants($run->pid);
        foreach ([SIGTERM, SIGKILL] as $sig) {
            foreach ($below as $pid) {
                @posix_kill($pid, $sig);
            }
            $deadline = microtime(true) + 3;
            while (microtime(true) < $deadline && array_filter($below, static fn (int $p) => is_dir("/proc/$p") && !str_contains((string) @file_get_contents("/proc/$p/stat"), ') Z '))) {
                usleep(50000);
            }
        }
        $run->stop();
    }

    /** @return list<int> every process below $pid, now */
    private static function descendants(int $pid): array
    {
        $children = [];
        foreach (glob('/proc/[0-9]*/stat') ?: [] as $f) {
            $stat = (string) @file_get_contents($f);
            // pid (comm) state ppid …: comm may hold spaces and parentheses.
            if (preg_match('/^(\d+) \(.*\) \S+ (\d+) /s', $stat, $m)) {
                $children[(int) $m[2]][] = (int) $m[1];
            }
        }
        $out = [];
        $queue = [$pid];
        while ($queue !== []) {
            foreach ($children[array_shift($queue)] ?? [] as $child) {
                $out[] = $child;
                $queue[] = $child;
            }
        }
        return $out;
    }

    /** @return array{exit:int, out:string, err:string} */
    private function sh(array $cmd, array $env = [], float $timeout = 60): array
    {
        return Proc::run($cmd, $env + ['PATH' => '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL' => 'C'], $timeout);
    }
}
