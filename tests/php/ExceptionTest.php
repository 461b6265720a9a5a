<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** The exception family, panics, and what reaches PHP from a bad answer. */
final class ExceptionTest extends AmoTestCase
{
    public function testFamilyCanBeConstructedAndSubclassedFromPhp(): void
    {
        $r = $this->ok(<<<'PHP'
            $out = [];
            foreach (['AmoAuthException', 'AmoValidationException', 'AmoRateLimitException', 'AmoTransportException',
                      'AmoConfigException', 'AmoStorageException', 'AmoApiException'] as $c) {
                $e = new $c("msg $c", 7);
                $out[$c] = [$e instanceof AmoException, $e instanceof \Exception, $e->getMessage(), $e->getCode(),
                            $e->getTitle(), $e->getDescription(), $e->getErrorCode(), $e->getValidationErrors(), $e->getLastRequestInfo()];
            }
            eval('class MyLeadException extends AmoApiException { public function extra(): string { return $this->getTitle() . "+"; } }');
            $mine = new \MyLeadException('mine');
            try { throw $mine; } catch (AmoException $caught) { $out['sub'] = [$caught->getMessage(), $caught->extra()]; }
            return $out;
            PHP);
        $this->assertCount(8, $r);
        foreach ($r as $class => $row) {
            if ($class !== 'sub') {
                $this->assertSame([true, true, "msg $class", 7, '', '', 7, [], []], $row, $class);
            }
        }
        $this->assertSame(['mine', '+'], $r['sub']);
    }

    /** A caller's bad argument and the integration's bad configuration are told apart by the title. */
    public function testConfigExceptionsSayWhetherAnArgumentOrTheConfigurationIsWrong(): void
    {
        $this->seedTokens();
        $e = $this->fails('AmoConfigException', 'AmoClient::getInstance()->leads()->getOne(0);');
        $this->assertSame('Invalid argument', $e['title']);
        $this->assertStringContainsString('`id`', $e['message']);
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", ['AMOCRM_CA_FILE' => $this->dir . '/missing-ca.pem']);
        $this->assertSame('Invalid configuration', $e['title']);
        $this->assertStringContainsString('`ca_file`', $e['message']);
    }

    /**
     * An answer whose PHP arrays would not fit in memory_limit is refused
     * while they are built (what was built is freed): PHP would otherwise end
     * with a fatal error in the middle of the extension's code.
     */
    public function testAnAnswerTooBigForMemoryLimitIsAnExceptionNotAFatalError(): void
    {
        $this->seedTokens();
        $this->emu->fault(['path' => '/api/v4/leads', 'method' => 'PATCH', 'action' => 'echo']);
        $code = <<<'PHP'
            $page = ['_embedded' => ['leads' => []]];
            for ($i = 0; $i < 2000; $i++) {
                $page['_embedded']['leads'][] = ['id' => $i, 'name' => "Сделка $i", 'custom_fields_values' => [['field_id' => 1, 'values' => [['value' => "v$i"]]]]];
            }
            $before = memory_get_usage();
            $r = AmoClient::getInstance()->request('PATCH', '/api/v4/leads', null, $page);
            return ['leads' => count($r['_embedded']['leads']), 'cost' => memory_get_usage() - $before];
            PHP;
        $fits = $this->ok($code, [], ['memory_limit' => '128M']);
        $this->assertSame(2000, $fits['leads']);
        // Enough for the page PHP built itself, not for a second copy from the answer.
        $tight = (string) intdiv(4 * 1024 * 1024 + $fits['cost'], 1024) . 'K';
        $e = $this->fails('AmoApiException', $code, [], ['memory_limit' => $tight]);
        $this->assertSame('Answer too large for memory_limit', $e['title']);
        $this->assertStringContainsString('memory_limit', $e['message']);
    }

    public function testRustPanicBecomesAnErrorAndTheProcessGoesOn(): void
    {
        $r = PhpProcess::run(<<<'PHP'
            $seen = [];
            try { AmoClient::panicForTest(); } catch (\Exception $e) { $seen[] = 'caught as Exception?!'; } catch (\Error $e) { $seen[] = $e->getMessage(); }
            try { AmoClient::panicForTest(); } catch (\Throwable $e) { $seen[] = get_class($e); }
            $seen[] = AmoClient::getInstance()->tokenStatus()['authorized'];
            return $seen;
            PHP, $this->env(['AMOCRM_TEST_HOOKS' => '1']));
        $this->assertSame(0, $r['exit'], $r['err']);
        $this->assertTrue($r['result']['ok']);
        [$first, $second, $authorized] = $r['result']['result'];
        $this->assertStringStartsWith('Rust panic: ', $first);
        $this->assertSame('Error', $second);
        $this->assertFalse($authorized);
    }

    public function testValidationErrorCarriesAmoCrmsDetailsAndNoToken(): void
    {
        $pair = $this->seedTokens();
        $e = $this->fails('AmoValidationException', <<<'PHP'
            AmoClient::getInstance()->request('POST', '/api/v4/leads', [], [['name' => 'x', 'price' => 'lots']]);
            PHP);
        $this->assertSame(400, $e['errorCode']);
        $this->assertSame(400, $e['code']);
        $this->assertSame('Bad Request', $e['title']);
        $this->assertSame('price', $e['validationErrors'][0]['errors'][0]['path']);
        $this->assertSame('POST', $e['lastRequestInfo']['method']);
        $this->assertSame(400, $e['lastRequestInfo']['status']);
        $this->assertSame('http://' . $this->emu->referer() . '/api/v4/leads', $e['lastRequestInfo']['url']);
        $this->assertStringNotContainsString($pair['access_token'], json_encode($e));
    }

    public function testBodiesThatAreNotJsonBecomeTheRightException(): void
    {
        $this->seedTokens();
        $noRetries = ['AMOCRM_MAX_RETRIES' => '0'];
        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 502, 'content_type' => 'text/html', 'body' => "<html><body><h1>502 Bad Gateway</h1>\n<hr>nginx</body></html>", 'times' => 1]);
        $e = $this->fails('AmoApiException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", $noRetries);
        $this->assertSame(502, $e['errorCode']);
        $this->assertStringContainsString('502 Bad Gateway', $e['description']);

        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html', 'body' => '<html>429 Too Many Requests</html>', 'times' => 1]);
        $e = $this->fails('AmoRateLimitException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", $noRetries);
        $this->assertSame(429, $e['errorCode']);

        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 403, 'content_type' => 'text/html', 'body' => '<html><center>403 Forbidden</center></html>', 'times' => 1]);
        $e = $this->fails('AmoRateLimitException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", $noRetries);
        $this->assertStringContainsString('blocked', $e['message']);

        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 200, 'content_type' => 'application/json', 'body' => '{"id": 1, "na', 'times' => 1]);
        $e = $this->fails('AmoApiException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", $noRetries);
        $this->assertStringContainsString('not JSON', $e['message']);

        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'truncate', 'times' => 1]);
        $e = $this->fails('AmoTransportException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", $noRetries);
        $this->assertSame(0, $e['errorCode']);
    }

    public function testRedirectsAreNeverFollowed(): void
    {
        // A request carries the token: it goes only where it was addressed.
        $trap = Emulator::start('127.0.0.2');
        try {
            $this->seedTokens();
            $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 302, 'body' => '',
                'headers' => ['Location' => $trap->url('/api/v4/account')]]);
            $e = $this->fails('AmoApiException', "AmoClient::getInstance()->request('GET', '/api/v4/account');");
            $this->assertSame(302, $e['errorCode']);
            $this->assertSame(1, $trap->stats()['connections'], 'only our own stats call reached the trap');
        } finally {
            $trap->stop();
        }
    }

    public function testConnectionRefusedIsATransportError(): void
    {
        $pair = $this->seedTokens();
        $this->emu->stop();
        $e = $this->fails('AmoTransportException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", ['AMOCRM_RETRY_BACKOFF_MS' => '10']);
        $this->assertStringContainsString('could not connect', $e['message']);
        $this->assertSame($pair['access_token'], $this->storedPair()['access_token']);
    }
}
