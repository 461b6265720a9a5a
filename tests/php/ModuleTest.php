<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** Loading, php --ri, configuration sources and their precedence. */
final class ModuleTest extends AmoTestCase
{
    private function phpCli(array $args, array $env = []): string
    {
        $cmd = array_merge([PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT')], $args);
        $p = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, ['PATH' => getenv('PATH')] + $env);
        $out = stream_get_contents($pipes[1]) . stream_get_contents($pipes[2]);
        proc_close($p);
        return $out;
    }

    public function testPhpListsTheModule(): void
    {
        $this->assertMatchesRegularExpression('/^amocrm$/m', $this->phpCli(['-m']));
    }

    public function testRiShowsVersionAndEffectiveConfigWithSecretsMasked(): void
    {
        $out = $this->phpCli(
            ['-d', 'amocrm.timeout=17', '-d', 'amocrm.client_secret=ini-secret-value', '--ri', 'amocrm'],
            ['AMOCRM_CLIENT_ID' => 'id-from-env', 'AMOCRM_LONG_LIVED_TOKEN' => 'llt-secret-value', 'AMOCRM_BASE_DOMAIN' => 'acme.amocrm.ru']
        );
        $this->assertMatchesRegularExpression('/^version => \d+\.\d+\.\d+/m', $out);
        $this->assertStringContainsString('client_id => id-from-env (env)', $out);
        $this->assertStringContainsString('timeout => 17 (php.ini)', $out);
        $this->assertStringContainsString('refresh_margin => 600 (default)', $out);
        $this->assertStringContainsString('client_secret => (set, hidden) (php.ini)', $out);
        $this->assertStringNotContainsString('ini-secret-value', $out);
        $this->assertStringNotContainsString('llt-secret-value', $out);
    }

    public function testConfigureBeatsEnvBeatsIni(): void
    {
        $r = $this->ok(<<<'PHP'
            AmoClient::configure(['timeout' => 21]);
            ob_start(); phpinfo(INFO_MODULES); $info = ob_get_clean();
            preg_match_all('/^(timeout|connect_timeout|refresh_margin) => (.*)$/m', $info, $m);
            return array_combine($m[1], $m[2]);
            PHP, ['AMOCRM_TIMEOUT' => '9', 'AMOCRM_CONNECT_TIMEOUT' => '3'], ['amocrm.timeout' => '8', 'amocrm.connect_timeout' => '4', 'amocrm.refresh_margin' => '120']);
        $this->assertSame('21 (configure())', $r['timeout']);
        $this->assertSame('3 (env)', $r['connect_timeout']);
        $this->assertSame('120 (php.ini)', $r['refresh_margin']);
    }

    public function testUnknownKeyAndInvalidValuesNameTheKey(): void
    {
        $e = $this->fails('AmoConfigException', "AmoClient::configure(['client_idd' => 'x']);");
        $this->assertStringContainsString('`client_idd`', $e['message']);
        foreach ([
            "['timeout' => 'soon']" => 'timeout',
            "['refresh_margin' => -1]" => 'refresh_margin',
            "['insecure_http' => 'maybe']" => 'insecure_http',
            "['token_path' => 'relative.json']" => 'token_path',
            "['allowed_domains' => 'amocrm.ru, bad domain']" => 'allowed_domains',
            "['long_lived_token' => 'x']" => 'base_domain',
            "['timeout' => [1]]" => 'timeout',
        ] as $options => $key) {
            $e = $this->fails('AmoConfigException', "AmoClient::configure($options);");
            $this->assertStringContainsString("`$key`", $e['message'], $options);
        }
        // An invalid value from the environment is named the same way on first use.
        $e = $this->fails('AmoConfigException', 'AmoClient::getInstance();', ['AMOCRM_CONNECT_TIMEOUT' => 'fast']);
        $this->assertStringContainsString('`connect_timeout`', $e['message']);
    }

    public function testConfigureAppliesBeforeFirstUseOnly(): void
    {
        $r = $this->ok(<<<'PHP'
            AmoClient::configure(['refresh_margin' => 300]);
            AmoClient::getInstance();
            AmoClient::configure(['refresh_margin' => 300]); // same options: fine, as on every FPM request
            try {
                AmoClient::configure(['refresh_margin' => 100]);
                return 'no exception';
            } catch (AmoConfigException $e) {
                return $e->getMessage();
            }
            PHP);
        $this->assertStringContainsString('before first use', $r);
    }

    public function testAListOfDomainsIsAccepted(): void
    {
        $r = $this->ok(<<<'PHP'
            AmoClient::configure(['allowed_domains' => ['kommo.com', 'localhost']]);
            return AmoClient::getInstance()->tokenStatus()['authorized'];
            PHP);
        $this->assertFalse($r);
    }

    public function testStubsMatchTheExtension(): void
    {
        $root = dirname(__DIR__, 2);
        $generated = $this->phpCli([$root . '/php/bin/generate-stubs.php']);
        $this->assertSame(
            file_get_contents($root . '/php/stubs/amocrm.stub.php'),
            $generated,
            'php/stubs/amocrm.stub.php drifted from the extension: regenerate it with php/bin/generate-stubs.php'
        );
        $this->assertStringContainsString('public function request(string $method, string $path', $generated);
    }
}
