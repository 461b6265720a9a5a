<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\TestCase;

/**
 * What a newcomer does first: `./build.sh run` (php/bin/serve.php) in demo
 * mode, the OAuth flow against the bundled emulator, then a lead with curl;
 * and how serve.php behaves as a process: stopped by a plain `kill`, careful
 * with the folder it is given, no PHP warning in an answer.
 */
final class DemoTest extends TestCase
{
    /** @var resource|null */
    private $proc = null;
    private int $pid = 0;
    private ?int $exit = null;
    private int $port = 0;
    private string $dir;

    protected function setUp(): void
    {
        $this->dir = sys_get_temp_dir() . '/amocrm-demo-test-' . bin2hex(random_bytes(4));
        mkdir($this->dir, 0700);
    }

    protected function tearDown(): void
    {
        $this->stop();
        exec('rm -rf ' . escapeshellarg($this->dir));
    }

    private static function freePort(): int
    {
        $s = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr((string) stream_socket_get_name($s, false), strrpos((string) stream_socket_get_name($s, false), ':') + 1);
        fclose($s);
        return $port;
    }

    private function answers(): bool
    {
        $c = @fsockopen('127.0.0.1', $this->port, $errno, $errstr, 0.5);
        if ($c === false) {
            return false;
        }
        fclose($c);
        return true;
    }

    /**
     * php/bin/serve.php in demo mode with --demo-dir, in its own session (as a
     * terminal or a service manager starts it); returns what it printed up to
     * "Listening on", once the port answers.
     */
    private function start(?string $demoDir = null): string
    {
        $this->port = self::freePort();
        $root = dirname(__DIR__, 2);
        $cmd = ['setsid', PHP_BINARY, '-n', "$root/php/bin/serve.php", '--emulator', getenv('AMOCRM_EMULATOR'),
            '--ext', getenv('AMOCRM_EXT'), '--port', (string) $this->port, '--demo-dir', $demoDir ?? "{$this->dir}/demo"];
        $this->proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['file', "{$this->dir}/serve.err", 'a']],
            $pipes, null, ['PATH' => getenv('PATH'), 'GATEWAY_ENV_FILE' => "{$this->dir}/no-such.env"]);
        $this->pid = proc_get_status($this->proc)['pid'];
        $this->exit = null;
        $out = '';
        $deadline = microtime(true) + 20;
        while (!str_contains($out, 'Listening on') && microtime(true) < $deadline && ($line = fgets($pipes[1])) !== false) {
            $out .= $line;
        }
        for ($i = 0; $i < 100 && $this->running() && !$this->answers(); $i++) {
            usleep(50000);
        }
        return $out;
    }

    private function running(): bool
    {
        $st = proc_get_status($this->proc);
        if (!$st['running'] && $this->exit === null) {
            $this->exit = $st['exitcode'];
        }
        return $st['running'];
    }

    /** SIGTERM to serve.php; then, whatever it left, its whole session. */
    private function stop(): void
    {
        if ($this->pid > 0) {
            posix_kill($this->pid, SIGTERM);
            for ($i = 0; $i < 250 && $this->running(); $i++) {
                usleep(20000);
            }
            posix_kill(-$this->pid, SIGKILL);
            proc_close($this->proc);
            $this->pid = 0;
        }
    }

    /** @return array{status:int, headers:array<string,string>, body:string} */
    private static function http(string $method, string $url, array $headers = [], ?string $body = null): array
    {
        $ch = curl_init($url);
        curl_setopt_array($ch, [CURLOPT_CUSTOMREQUEST => $method, CURLOPT_RETURNTRANSFER => true, CURLOPT_HEADER => true,
            CURLOPT_HTTPHEADER => $headers, CURLOPT_TIMEOUT => 15, CURLOPT_FOLLOWLOCATION => false]);
        if ($body !== null) {
            curl_setopt($ch, CURLOPT_POSTFIELDS, $body);
        }
        $raw = (string) curl_exec($ch);
        $size = curl_getinfo($ch, CURLINFO_HEADER_SIZE);
        $status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        $headers = [];
        foreach (explode("\r\n", substr($raw, 0, $size)) as $line) {
            if (str_contains($line, ':')) {
                [$k, $v] = explode(':', $line, 2);
                $headers[strtolower(trim($k))] = trim($v);
            }
        }
        return ['status' => $status, 'headers' => $headers, 'body' => substr($raw, $size)];
    }

    public function testDemoModeFromAuthorizeToALead(): void
    {
        $out = $this->start();
        $this->assertStringContainsString('Demo mode', $out);
        $this->assertMatchesRegularExpression('/password: (\w+)/', $out);
        preg_match('/password: (\w+)/', $out, $pw);
        preg_match("/Bearer ([\\w-]+)/", $out, $key);
        $base = "http://127.0.0.1:{$this->port}";
        $admin = ['Authorization: Basic ' . base64_encode("admin:{$pw[1]}")];

        $this->assertSame(401, self::http('GET', "$base/oauth/status")['status']);
        $go = self::http('GET', "$base/oauth/authorize", $admin);
        $this->assertSame(302, $go['status']);
        $cookie = explode(';', $go['headers']['set-cookie'])[0];
        $consent = self::http('GET', $go['headers']['location']);
        $this->assertStringContainsString('Предоставить доступ', $consent['body']);
        parse_str((string) parse_url($go['headers']['location'], PHP_URL_QUERY), $q);
        $emulator = parse_url($go['headers']['location'], PHP_URL_HOST) . ':' . parse_url($go['headers']['location'], PHP_URL_PORT);
        $allow = self::http('POST', "http://$emulator/oauth/decision", [], http_build_query(['client_id' => $q['client_id'], 'state' => $q['state'], 'mode' => $q['mode'], 'decision' => 'allow']));
        $this->assertSame(302, $allow['status']);
        $back = self::http('GET', $allow['headers']['location'], [...$admin, "Cookie: $cookie"]);
        $this->assertSame(200, $back['status'], $back['body']);
        $this->assertStringContainsString('Connected', $back['body']);

        $status = json_decode(self::http('GET', "$base/oauth/status", $admin)['body'], true);
        $this->assertTrue($status['authorized']);
        $this->assertSame($emulator, $status['base_domain']);

        $lead = self::http('POST', "$base/api/leads", ["Authorization: Bearer {$key[1]}", 'Content-Type: application/json'],
            json_encode(['name' => 'Заявка с сайта', 'contact' => ['name' => 'Иван', 'phone' => '+7 900 123-45-67']]));
        $this->assertSame(201, $lead['status'], $lead['body']);
        $this->assertIsInt(json_decode($lead['body'], true)['id']);
    }

    public function testAKillOfServePhpAloneStopsTheServer(): void
    {
        $this->start();
        $this->assertTrue($this->answers(), 'the demo serves');
        posix_kill($this->pid, SIGTERM); // serve.php only, not its process group
        $deadline = microtime(true) + 10;
        while ($this->answers() && microtime(true) < $deadline) {
            usleep(50000);
        }
        $this->assertFalse($this->answers(), 'after serve.php is killed, nothing serves its port (php -S workers included); listening: '
            . shell_exec("ss -ltnp 'sport = :{$this->port}' 2>&1") . ' processes: ' . shell_exec('ps -eo pid,pgid,stat,args 2>&1 | grep -e "php.*-S" -e amocrm-emulator | grep -v grep'));
    }

    public function testTheDemoDirKeepsWhatServePhpDidNotMake(): void
    {
        $demo = "{$this->dir}/demo";
        mkdir("$demo/notes", 0700, true);
        file_put_contents("$demo/keep.txt", 'mine');
        file_put_contents("$demo/notes/todo.txt", 'mine too');
        $this->start($demo);
        $this->stop();
        $this->start($demo); // the second run clears the first run's state, and only that
        $this->assertSame('mine', @file_get_contents("$demo/keep.txt"));
        $this->assertSame('mine too', @file_get_contents("$demo/notes/todo.txt"));
        $this->assertFileExists("$demo/.env", 'the demo .env it writes');
        $this->stop();

        // A folder with someone else's .env: refused, the file untouched.
        $other = "{$this->dir}/other";
        mkdir($other, 0700);
        file_put_contents("$other/.env", "AMOCRM_CLIENT_ID=\nGATEWAY_NOTE=someone else's\n");
        $out = $this->start($other);
        $this->assertStringNotContainsString('Listening on', $out);
        $this->assertSame(64, $this->exitCode(), (string) @file_get_contents("{$this->dir}/serve.err"));
        $this->assertSame("AMOCRM_CLIENT_ID=\nGATEWAY_NOTE=someone else's\n", file_get_contents("$other/.env"));
    }

    private function exitCode(): ?int
    {
        for ($i = 0; $i < 250 && $this->running(); $i++) {
            usleep(20000);
        }
        return $this->exit;
    }

    public function testAPhpWarningNeverReachesAnAnswer(): void
    {
        $this->start();
        // 1001 query variables: PHP warns "Input variables exceeded 1000" while it starts the request.
        $query = implode('&', array_map(static fn ($i) => "v$i=1", range(0, 1000)));
        $r = self::http('GET', "http://127.0.0.1:{$this->port}/health?$query");
        $this->assertSame(200, $r['status']);
        $this->assertSame(['status' => 'ok'], json_decode($r['body'], true), 'the answer is the JSON alone: ' . $r['body']);
        $this->assertStringNotContainsString('Warning', $r['body']);
    }
}
