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

    /** Issue 7.6: a running gateway whose .env changed passes new options; they apply, never a 500. */
    public function testNewOptionsTakeEffectAtOnceAndInvalidOnesChangeNothing(): void
    {
        $other = $this->dir . '/other/tokens.json';
        $r = $this->ok(<<<PHP
            AmoClient::configure(['refresh_margin' => 300]);
            \$before = AmoClient::getInstance()->tokenStatus()['token_path'];
            AmoClient::configure(['refresh_margin' => 300]); // the same options, as on every FPM request
            AmoClient::configure(['refresh_margin' => 300, 'token_path' => '$other']);
            \$after = AmoClient::getInstance()->tokenStatus()['token_path'];
            try {
                AmoClient::configure(['token_path' => 'relative.json']);
                \$invalid = 'accepted';
            } catch (AmoConfigException \$e) {
                \$invalid = \$e->getMessage();
            }
            return [\$before, \$after, \$invalid, AmoClient::getInstance()->tokenStatus()['token_path']];
            PHP);
        [$before, $after, $invalid, $kept] = $r;
        $this->assertSame($this->tokenPath, $before);
        $this->assertSame($other, $after, 'the new token_path applies at once');
        $this->assertStringContainsString('`token_path`', $invalid);
        $this->assertSame($other, $kept, 'invalid options leave the client as it was');
    }

    /** Issue 9.3: one client per account, each with its own configuration and token folder. */
    public function testEachAccountHasItsOwnClientConfigurationAndPair(): void
    {
        $this->seedTokens();
        $r = $this->ok(<<<'PHP'
            AmoClient::configure(['timeout' => 7], 'shop-3');
            $default = AmoClient::getInstance();
            $two = AmoClient::getInstance('shop-2');
            $out = [
                'same' => $two === AmoClient::getInstance('shop-2') && $default === AmoClient::getInstance('default'),
                'apart' => $default !== $two,
                'accounts' => [$default->getAccount(), $two->getAccount(), $two->withContextUser(3)->getAccount()],
                'paths' => [$default->tokenStatus()['token_path'], $two->tokenStatus()['token_path']],
                'authorized' => [$default->tokenStatus()['authorized'], $two->tokenStatus()['authorized']],
                'id' => $default->request('GET', '/api/v4/account')['id'],
            ];
            try {
                $two->request('GET', '/api/v4/account');
                $out['two'] = 'answered';
            } catch (AmoAuthException $e) {
                $out['two'] = 'not authorized';
            }
            ob_start();
            phpinfo(INFO_MODULES);
            ob_end_clean();
            try {
                AmoClient::getInstance('Shop 2');
            } catch (AmoConfigException $e) {
                $out['bad'] = $e->getMessage();
            }
            return $out;
            PHP, ['AMOCRM_SHOP_2_CONNECT_TIMEOUT' => '4']);
        $this->assertTrue($r['same']);
        $this->assertTrue($r['apart']);
        $this->assertSame(['default', 'shop-2', 'shop-2'], $r['accounts']);
        $this->assertSame([$this->tokenPath, $this->dir . '/shop-2/tokens.json'], $r['paths'], 'an account gets a folder of its own beside the shared token_path');
        $this->assertSame([true, false], $r['authorized'], 'the default account\'s pair is not shop-2\'s');
        $this->assertSame(31000001, $r['id']);
        $this->assertSame('not authorized', $r['two']);
        $this->assertStringContainsString('`account`', $r['bad']);
    }

    /** Issue 7.1: getInstance() is one object; withContextUser() handles are separate ones. */
    public function testGetInstanceReturnsOneObject(): void
    {
        $r = $this->ok(<<<'PHP'
            $a = AmoClient::getInstance();
            $b = AmoClient::getInstance();
            $u = $a->withContextUser(7);
            $id = spl_object_id($a);
            unset($a, $b);
            return [
                'same' => AmoClient::getInstance() === AmoClient::getInstance(),
                'kept' => spl_object_id(AmoClient::getInstance()) === $id,
                'handle' => $u !== AmoClient::getInstance() && $u->getContextUser() === 7 && AmoClient::getInstance()->getContextUser() === null,
                'handles' => $u !== AmoClient::getInstance()->withContextUser(7),
            ];
            PHP);
        $this->assertSame(['same' => true, 'kept' => true, 'handle' => true, 'handles' => true], $r);
    }

    /** Issue 7.2: constructors are private, as the stubs declare them, so `new` fails the way an IDE says. */
    public function testNoClassCanBeConstructedWithNew(): void
    {
        $r = $this->ok(<<<'PHP'
            $out = [];
            foreach ((new ReflectionExtension('amocrm'))->getClasses() as $name => $class) {
                if ($class->isSubclassOf(Exception::class)) {
                    continue; // the exception family is constructed and subclassed by PHP code
                }
                $ctor = $class->getConstructor();
                try {
                    new $name();
                    $new = 'constructed';
                } catch (Error $e) {
                    $new = $e->getMessage();
                }
                $out[$name] = [$ctor !== null && $ctor->isPrivate(), $new];
            }
            return $out;
            PHP);
        $this->assertCount(23, $r, 'AmoClient, twenty service classes and two iterators');
        foreach ($r as $class => [$private, $new]) {
            $this->assertTrue($private, "$class::__construct is private");
            $this->assertSame("Call to private $class::__construct() from global scope", $new);
        }
        $stubs = (string) file_get_contents(dirname(__DIR__, 2) . '/php/stubs/amocrm.stub.php');
        $this->assertSame(23, substr_count($stubs, 'private function __construct() {}'), 'the stubs declare them as reflection shows them');
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
