<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\TestCase;

/** An emulator and a private token folder per test, and helpers to run PHP. */
abstract class AmoTestCase extends TestCase
{
    public const CLIENT_ID = 'emulator-client-id';
    public const CLIENT_SECRET = 'emulator-client-secret';
    public const REDIRECT_URI = 'http://127.0.0.1:9095/oauth/callback';

    protected Emulator $emu;
    protected string $dir;
    protected string $tokenPath;

    protected function setUp(): void
    {
        $this->emu = Emulator::start();
        $this->dir = sys_get_temp_dir() . '/amocrm-test-' . bin2hex(random_bytes(6));
        mkdir($this->dir, 0700);
        $this->tokenPath = $this->dir . '/tokens.json';
    }

    protected function tearDown(): void
    {
        $this->emu->stop();
        if (is_dir($this->dir)) {
            foreach (scandir($this->dir) as $f) {
                if ($f !== '.' && $f !== '..') {
                    @unlink($this->dir . '/' . $f);
                }
            }
            @rmdir($this->dir);
        }
    }

    /** Configuration through the environment, pointing at this test's emulator. */
    protected function env(array $extra = []): array
    {
        return array_merge([
            'AMOCRM_CLIENT_ID' => self::CLIENT_ID,
            'AMOCRM_CLIENT_SECRET' => self::CLIENT_SECRET,
            'AMOCRM_REDIRECT_URI' => self::REDIRECT_URI,
            'AMOCRM_TOKEN_PATH' => $this->tokenPath,
            'AMOCRM_ALLOWED_DOMAINS' => 'localhost',
            'AMOCRM_INSECURE_HTTP' => '1',
            'AMOCRM_CONNECT_TIMEOUT' => '2',
            'AMOCRM_TIMEOUT' => '5',
        ], $extra);
    }

    /**
     * Writes a pair minted by the emulator, as the gateway would have stored it.
     * @return array{access_token:string, refresh_token:string}
     */
    protected function seedTokens(int $expiresIn = 86400, ?string $path = null): array
    {
        $t = $this->emu->mintTokens();
        $pair = [
            'access_token' => $t['access_token'],
            'refresh_token' => $t['refresh_token'],
            'expires_at' => time() + $expiresIn,
            'base_domain' => $this->emu->referer(),
            'updated_at' => time(),
        ];
        file_put_contents($path ?? $this->tokenPath, json_encode($pair));
        chmod($path ?? $this->tokenPath, 0600);
        return $pair;
    }

    protected function storedPair(): array
    {
        $pair = json_decode((string) file_get_contents($this->tokenPath), true);
        $this->assertIsArray($pair, 'the token file holds a JSON object');
        return $pair;
    }

    /** Starts $n processes that wait for a common start time, then run $code; returns what each reported. */
    protected function together(int $n, string $code, array $env = []): array
    {
        $start = microtime(true) + 1.0;
        $procs = [];
        for ($i = 0; $i < $n; $i++) {
            $procs[] = new PhpProcess(
                "while (microtime(true) < (float) getenv('START_AT')) { usleep(500); }\n" . $code,
                $this->env($env + ['START_AT' => (string) $start])
            );
        }
        return array_map(static fn (PhpProcess $p) => $p->wait(), $procs);
    }

    /** Runs a snippet in a fresh PHP process; returns what child.php reported. */
    protected function php(string $code, array $env = [], array $ini = []): array
    {
        $r = PhpProcess::run($code, $this->env($env), $ini);
        $this->assertIsArray($r['result'], "the PHP process reported nothing:\nstdout: {$r['out']}\nstderr: {$r['err']}");
        return $r['result'];
    }

    /** Like php(), but the snippet must succeed; returns its result. */
    protected function ok(string $code, array $env = [], array $ini = [])
    {
        $r = $this->php($code, $env, $ini);
        $this->assertTrue($r['ok'], 'the snippet threw: ' . json_encode($r, JSON_UNESCAPED_UNICODE));
        return $r['result'];
    }

    /** Like php(), but the snippet must throw $class; returns the description. */
    protected function fails(string $class, string $code, array $env = [], array $ini = []): array
    {
        $r = $this->php($code, $env, $ini);
        $this->assertFalse($r['ok'], "expected $class, got a result: " . json_encode($r));
        $this->assertSame($class, $r['class'], json_encode($r, JSON_UNESCAPED_UNICODE));
        return $r;
    }
}
