<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

/**
 * Issue 12.6: every event an operator needs reaches PHP's error log (by
 * default) and a PSR-3 logger (Debian's Monolog, through setLogger()), at
 * its level, filtered by log_level, and never with a token or the secret.
 * Issue 12.1: history() has the calls of the current minute and the
 * refreshes with their outcome.
 */
final class LoggingTest extends AmoTestCase
{
    private const MONOLOG = '/usr/share/php/Monolog/autoload.php';

    private string $errorLog;
    /** @var list<string> the tokens of the test, which no line may hold */
    private array $secrets = [self::CLIENT_SECRET];

    protected function setUp(): void
    {
        parent::setUp();
        $this->errorLog = $this->dir . '/php-errors.log';
    }

    /** Seeds a pair and remembers its tokens as secrets. */
    private function seed(int $expiresIn): array
    {
        $pair = $this->seedTokens($expiresIn);
        $this->secrets[] = $pair['access_token'];
        $this->secrets[] = $pair['refresh_token'];
        return $pair;
    }

    /** An expired pair whose refresh token amoCRM has revoked. */
    private function seedRevoked(): void
    {
        $pair = $this->seed(-60);
        $second = $this->emu->refreshDirectly($pair['refresh_token']);
        $this->secrets[] = $second['json']['access_token'];
        $this->secrets[] = $second['json']['refresh_token'];
        $this->assertSame(200, $this->emu->refreshDirectly($second['json']['refresh_token'])['status']);
    }

    /**
     * The events, each with what provokes it: [setup, the calls, env, the
     * expected kind, level and a piece of its message].
     */
    public static function events(): array
    {
        $call = "try { AmoClient::getInstance()->request('GET', '/api/v4/account'); } catch (AmoException \$e) { \$failed = get_class(\$e); }\n";
        return [
            'a refresh' => ['expired', $call, [], 'refresh', 'info', 'token refreshed (the access token was about to expire); expires '],
            'a refresh that failed' => ['expired+token500', $call, [], 'refresh_failed', 'error', 'token refresh failed: '],
            'a refused refresh token' => ['revoked', $call, [], 'refresh_refused', 'error', 'amoCRM refused the refresh token of '],
            'a retry' => ['fresh+api502', $call, ['AMOCRM_RETRY_BACKOFF_MS' => '10'], 'retry', 'warning', 'retrying GET /api/v4/account (retry 1 of 3): amoCRM answered 502'],
            // A forked child takes the only slot and its answer is slow
            // (1.5 s); once the emulator has its request, this process asks
            // too and waits for that answer and the window after it: about
            // 2.5 s, with no race between two waiters for one slot (which
            // either could win).
            'a long rate-limit wait' => ['fresh+slow', "\$pid = pcntl_fork();\nif (\$pid === 0) {\n" . $call . "exit(0);\n}\n"
                . "\$host = json_decode(file_get_contents(getenv('AMOCRM_TOKEN_PATH')), true)['base_domain'];\n"
                . "while ((json_decode((string) file_get_contents(\"http://\$host/_emulator/stats\"), true)['api_requests_by_method']['GET'] ?? 0) < 1) { usleep(5000); }\n"
                . $call . "pcntl_waitpid(\$pid, \$status);\n", ['AMOCRM_RATE_LIMIT' => '1'], 'rate_limit_wait', 'warning', 's for a rate-limit slot (rate_limit: 1 a second, shared by the host)'],
            'a storage error' => ['corrupt', $call, [], 'storage_error', 'error', 'token storage: '],
            'an account that moved' => ['fresh+renamed', $call, ['AMOCRM_ALLOWED_DOMAINS' => 'localhost,127.0.0.1'], 'account_moved', 'warning', 'the account moved from localhost:'],
        ];
    }

    private function arrange(string $setup): void
    {
        foreach (explode('+', $setup) as $step) {
            match ($step) {
                'expired' => $this->seed(-60),
                'fresh' => $this->seed(86400),
                'revoked' => $this->seedRevoked(),
                'corrupt' => file_put_contents($this->tokenPath, '{"access_token": "torn'),
                'token500' => $this->emu->fault(['path' => '/oauth2/access_token', 'action' => 'respond', 'status' => 500, 'content_type' => 'text/html', 'body' => '<html>500</html>', 'times' => 1]),
                'slow' => $this->emu->fault(['path' => '/api/v4/account', 'action' => 'delay', 'delay_ms' => 1500, 'times' => 1]),
                'api502' => $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 502, 'content_type' => 'text/html', 'body' => '<html>502</html>', 'times' => 1]),
                'renamed' => $this->emu->control('POST', 'rename', ['host' => "127.0.0.1:{$this->emu->port}"]),
            };
        }
    }

    /** @return list<string> the extension's lines in the error log */
    private function errorLogLines(): array
    {
        $all = is_file($this->errorLog) ? file($this->errorLog, FILE_IGNORE_NEW_LINES) : [];
        return array_values(array_filter($all, static fn (string $l) => str_contains($l, 'amocrm[')));
    }

    private function assertNoSecret(string $where, string $text): void
    {
        foreach (array_unique($this->secrets) as $secret) {
            $this->assertStringNotContainsString($secret, $text, "$where holds a secret");
        }
        $this->assertStringNotContainsStringIgnoringCase('Bearer ', $text, "$where holds an Authorization header");
    }

    /** @dataProvider events */
    #[DataProvider('events')]
    public function testEachEventReachesTheErrorLog(string $setup, string $calls, array $env, string $kind, string $level, string $message): void
    {
        $this->arrange($setup);
        $this->ok($calls . 'return true;', $env, ['error_log' => $this->errorLog]);
        $lines = $this->errorLogLines();
        $this->assertNoSecret('the error log', implode("\n", $lines));
        $found = array_filter($lines, static fn (string $l) => str_contains($l, "amocrm[default] $level: ") && str_contains($l, $message));
        $this->assertNotEmpty($found, "no `$level` line with `$message`:\n" . implode("\n", $lines));
        // PHP's own format: a time stamp, then the line.
        $this->assertMatchesRegularExpression('/^\[\d{2}-\w{3}-\d{4} \d{2}:\d{2}:\d{2} [^\]]+\] amocrm\[default\] /', array_values($found)[0]);
    }

    /** @dataProvider events */
    #[DataProvider('events')]
    public function testEachEventReachesAPsr3Logger(string $setup, string $calls, array $env, string $kind, string $level, string $message): void
    {
        $this->arrange($setup);
        $records = $this->ok(
            "require '" . self::MONOLOG . "';\n"
            . "\$handler = new Monolog\\Handler\\TestHandler();\n"
            . "\$monolog = new Monolog\\Logger('amocrm', [\$handler]);\n"
            . "AmoClient::setLogger(fn (\$level, \$message, \$context) => \$monolog->log(\$level, \$message, \$context));\n"
            . $calls
            . "return array_map(fn (\$r) => [strtolower(\$r['level_name']), \$r['message'], \$r['context']], \$handler->getRecords());",
            $env,
            ['error_log' => $this->errorLog]
        );
        $this->assertNoSecret('the PSR-3 records', json_encode($records));
        $found = array_values(array_filter($records, static fn (array $r) => $r[2]['event'] === $kind));
        $this->assertNotEmpty($found, "no `$kind` record: " . json_encode($records));
        [$gotLevel, $gotMessage, $context] = $found[0];
        $this->assertSame($level, $gotLevel);
        $this->assertStringContainsString($message, $gotMessage);
        $this->assertSame('default', $context['account']);
        $this->assertSame([], $this->errorLogLines(), 'with a logger set, the error log gets nothing');
    }

    /** The threshold, per case: which of a call (debug), a refresh (info) and a storage error (error) are written. */
    public static function levels(): array
    {
        return [
            'debug: every call too' => ['debug', ['debug', 'error', 'info']],
            'info (the default)' => ['', ['error', 'info']],
            'notice' => ['notice', ['error']],
            'error' => ['error', ['error']],
            'off' => ['off', []],
        ];
    }

    /** @dataProvider levels */
    #[DataProvider('levels')]
    public function testLogLevelFilters(string $logLevel, array $levels): void
    {
        $this->seed(-60);
        $env = $logLevel === '' ? [] : ['AMOCRM_LOG_LEVEL' => $logLevel];
        $this->ok(
            "\$amo = AmoClient::getInstance();\n"
            . "\$amo->request('GET', '/api/v4/account');\n"
            . "file_put_contents(getenv('AMOCRM_TOKEN_PATH'), '{\"torn');\n"
            . "usleep(5000);\n"
            . "try { \$amo->request('GET', '/api/v4/account'); } catch (AmoStorageException \$e) {}\n"
            . "return true;",
            $env,
            ['error_log' => $this->errorLog]
        );
        $seen = array_values(array_unique(array_map(
            static fn (string $l) => preg_replace('/^.*amocrm\[default\] (\w+): .*$/', '$1', $l),
            $this->errorLogLines()
        )));
        sort($seen);
        $this->assertSame($levels, $seen, implode("\n", $this->errorLogLines()));
    }

    public function testABadLogLevelIsRefusedNamingTheKey(): void
    {
        $e = $this->fails('AmoConfigException', "AmoClient::configure(['log_level' => 'loud']);");
        $this->assertStringContainsString('log_level', $e['message']);
        $this->assertStringContainsString('debug, info, notice, warning, error or off', $e['message']);
    }

    /** A logger that throws does not break the call; its event goes to the error log, with a line saying why. */
    public function testALoggerThatThrowsBreaksNothing(): void
    {
        $this->seed(-60);
        $id = $this->ok(
            "AmoClient::setLogger(function (\$level, \$message, \$context) { throw new RuntimeException('logger down'); });\n"
            . "\$id = AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];\n"
            . "return \$id;",
            [],
            ['error_log' => $this->errorLog]
        );
        $this->assertSame(31000001, $id);
        $lines = implode("\n", $this->errorLogLines());
        $this->assertStringContainsString('amocrm[default] info: token refreshed', $lines);
        $this->assertStringContainsString('the logger set with AmoClient::setLogger() threw RuntimeException; the event above went to the error log instead', $lines);
    }

    /** The callable may not call the client (the core may hold the token lock): refused, and that event goes to the error log. */
    public function testALoggerThatCallsTheClientIsRefused(): void
    {
        $this->seed(-60);
        $r = $this->ok(
            "\$seen = [];\n"
            . "AmoClient::setLogger(function (\$level, \$message, \$context) use (&\$seen) { try { AmoClient::getInstance()->tokenStatus(); } catch (AmoConfigException \$e) { \$seen[] = \$e->getMessage(); } });\n"
            . "AmoClient::getInstance()->request('GET', '/api/v4/account');\n"
            . "AmoClient::setLogger(null);\n"
            . "AmoClient::getInstance()->refreshToken(true);\n"
            . "return \$seen;",
            [],
            ['error_log' => $this->errorLog]
        );
        $this->assertCount(1, $r);
        $this->assertStringContainsString('must not call AmoClient', $r[0]);
        $lines = $this->errorLogLines();
        $this->assertCount(1, $lines, 'only the second refresh, after setLogger(null), is in the error log');
        $this->assertStringContainsString('info: token refreshed (asked for)', $lines[0]);
    }

    /**
     * One PHP process, several requests (PHP's built-in server, as php-fpm's
     * workers): the logger set by one request is gone in the next, which
     * logs to the error log again.
     */
    public function testTheLoggerLastsOneRequest(): void
    {
        $this->seed(86400);
        $router = $this->dir . '/router.php';
        $callableLog = $this->dir . '/callable.log';
        file_put_contents($router, <<<'PHP'
            <?php
            if (($_GET['set'] ?? '') === '1') {
                AmoClient::setLogger(static function (string $level, string $message, array $context): void {
                    file_put_contents(getenv('CALLABLE_LOG'), "$level $message\n", FILE_APPEND);
                });
            }
            AmoClient::getInstance()->refreshToken(true);
            echo 'ok';
            PHP);
        $port = 0;
        for ($try = 0; $try < 20 && $port === 0; $try++) {
            $p = random_int(20000, 60000);
            $probe = @stream_socket_server("tcp://127.0.0.1:$p");
            if ($probe !== false) {
                fclose($probe);
                $port = $p;
            }
        }
        $cmd = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('AMOCRM_EXT'), '-d', 'error_log=' . $this->errorLog, '-S', "127.0.0.1:$port", $router];
        $env = $this->env(['CALLABLE_LOG' => $callableLog]) + ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'];
        $server = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', $this->dir . '/server.err', 'w']], $pipes, null, $env);
        $this->assertIsResource($server);
        try {
            $get = static function (string $query) use ($port): string {
                for ($i = 0; $i < 100; $i++) {
                    $body = @file_get_contents("http://127.0.0.1:$port/?$query");
                    if ($body !== false) {
                        return $body;
                    }
                    usleep(50000);
                }
                return 'no answer';
            };
            $this->assertSame('ok', $get('set=1'));
            $this->assertSame('ok', $get('set=0'));
            $this->assertSame('ok', $get('set=1'));
        } finally {
            proc_terminate($server);
            proc_close($server);
        }
        $callable = file($callableLog, FILE_IGNORE_NEW_LINES);
        $this->assertCount(2, $callable, 'the first and the third request\'s refresh');
        $this->assertStringStartsWith('info token refreshed (asked for)', $callable[0]);
        $lines = $this->errorLogLines();
        $this->assertCount(1, $lines, 'the second request set no logger: its refresh went to the error log');
        $this->assertStringContainsString('amocrm[default] info: token refreshed (asked for)', $lines[0]);
    }

    public function testHistoryHasTheCallsOfTheMinuteAndTheRefreshes(): void
    {
        $this->seed(-60);
        $this->emu->fault(['path' => '/api/v4/leads', 'method' => 'POST', 'action' => 'respond', 'status' => 400, 'body' => ['title' => 'Bad Request', 'status' => 400], 'times' => 1]);
        $this->emu->fault(['path' => '/api/v4/leads', 'method' => 'PATCH', 'action' => 'respond', 'status' => 503, 'content_type' => 'text/html', 'body' => '<html>503</html>', 'times' => 1]);
        $h = $this->ok(
            "\$amo = AmoClient::getInstance();\n"
            . "for (\$i = 0; \$i < 3; \$i++) { \$amo->request('GET', '/api/v4/account'); }\n"
            . "try { \$amo->leads()->addOne(['name' => 'x']); } catch (AmoException \$e) {}\n"
            . "try { \$amo->leads()->updateOne(['id' => 1, 'name' => 'y']); } catch (AmoException \$e) {}\n"
            . "return ['before' => time(), 'history' => \$amo->history()];"
        );
        $history = $h['history'];
        $this->assertSame(['from', 'to', 'minutes', 'refreshes'], array_keys($history));
        $this->assertSame(intdiv($h['before'], 60) * 60, $history['to']);
        $this->assertSame($history['to'] - 1439 * 60, $history['from']);
        $this->assertNotEmpty($history['minutes']);
        $sum = ['2xx' => 0, '4xx' => 0, '429' => 0, '5xx' => 0, 'other' => 0, 'error' => 0, 'waits' => 0];
        foreach ($history['minutes'] as $m) {
            $this->assertSame(['at', '2xx', '4xx', 429, '5xx', 'other', 'error', 'waits', 'wait_ms'], array_keys($m), 'PHP makes the key "429" the integer 429');
            $this->assertSame(0, $m['at'] % 60);
            $this->assertGreaterThanOrEqual($history['to'] - 120, $m['at'], 'the calls were made in the last minute or two');
            foreach ($sum as $k => $_) {
                $sum[$k] += $m[$k];
            }
        }
        $this->assertSame(['2xx' => 3, '4xx' => 1, '429' => 0, '5xx' => 1, 'other' => 0, 'error' => 0, 'waits' => 0], $sum, json_encode($history));
        $this->assertCount(1, $history['refreshes']);
        $this->assertSame('ok', $history['refreshes'][0]['outcome']);
        $this->assertSame('the access token was about to expire', $history['refreshes'][0]['reason']);
        $this->assertEqualsWithDelta(time(), $history['refreshes'][0]['at'], 30);
    }

    public function testHistoryHasAFailedAndARefusedRefreshNewestFirst(): void
    {
        $this->seedRevoked();
        $this->emu->fault(['path' => '/oauth2/access_token', 'action' => 'respond', 'status' => 500, 'content_type' => 'text/html', 'body' => '<html>500</html>', 'times' => 1]);
        $h = $this->ok(
            "\$amo = AmoClient::getInstance();\n"
            . "foreach ([1, 2] as \$i) { try { \$amo->request('GET', '/api/v4/account'); } catch (AmoException \$e) {} }\n"
            . "return \$amo->history();"
        );
        $outcomes = array_map(static fn (array $r) => $r['outcome'], $h['refreshes']);
        $this->assertSame(['refused', 'failed'], $outcomes, json_encode($h['refreshes']));
        $this->assertStringContainsString('500', $h['refreshes'][1]['reason']);
        $this->assertNoSecret('history()', json_encode($h));
        $sum = array_sum(array_map(static fn (array $m) => $m['2xx'] + $m['4xx'] + $m['5xx'] + $m['error'], $h['minutes']));
        $this->assertSame(0, $sum, 'no API call was made: the token endpoint is not an API call');
    }
}
