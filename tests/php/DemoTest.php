<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\TestCase;

/**
 * What a newcomer does first: `./build.sh run` (php/bin/serve.php) in demo
 * mode, the OAuth flow against the bundled emulator, then a lead with curl.
 */
final class DemoTest extends TestCase
{
    /** @var resource|null */
    private $proc = null;
    private int $pid = 0;
    private string $dir;

    protected function setUp(): void
    {
        $this->dir = sys_get_temp_dir() . '/amocrm-demo-test-' . bin2hex(random_bytes(4));
        mkdir($this->dir, 0700);
    }

    protected function tearDown(): void
    {
        if ($this->pid > 0) {
            posix_kill(-$this->pid, SIGTERM); // the whole session: serve.php, php -S workers, the emulator
            proc_close($this->proc);
        }
        exec('rm -rf ' . escapeshellarg($this->dir));
    }

    private static function freePort(): int
    {
        $s = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr((string) stream_socket_get_name($s, false), strrpos((string) stream_socket_get_name($s, false), ':') + 1);
        fclose($s);
        return $port;
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
        $port = self::freePort();
        $root = dirname(__DIR__, 2);
        $cmd = ['setsid', PHP_BINARY, '-n', "$root/php/bin/serve.php", '--emulator', getenv('AMOCRM_EMULATOR'),
            '--ext', getenv('AMOCRM_EXT'), '--port', (string) $port, '--demo-dir', $this->dir];
        $this->proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['file', "{$this->dir}/serve.err", 'a']],
            $pipes, null, ['PATH' => getenv('PATH'), 'GATEWAY_ENV_FILE' => "{$this->dir}/no-such.env"]);
        $this->pid = proc_get_status($this->proc)['pid'];
        $out = '';
        $deadline = microtime(true) + 20;
        while (!str_contains($out, 'Listening on') && microtime(true) < $deadline && ($line = fgets($pipes[1])) !== false) {
            $out .= $line;
        }
        $this->assertStringContainsString('Demo mode', $out);
        $this->assertMatchesRegularExpression('/password: (\w+)/', $out);
        preg_match('/password: (\w+)/', $out, $pw);
        preg_match("/Bearer ([\\w-]+)/", $out, $key);
        $base = "http://127.0.0.1:$port";
        for ($i = 0; $i < 100 && @fsockopen('127.0.0.1', $port) === false; $i++) {
            usleep(50000);
        }
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
}
