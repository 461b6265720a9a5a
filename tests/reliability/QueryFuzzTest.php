<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\AmoTestCase;
use AmoCRM\Tests\Gateway\Proc;

/**
 * Fuzzing the query encoder (client::encode_query) against the PHP that
 * reads it: amoCRM is PHP, so a PHP built-in server stands in for it and
 * answers the `$_GET` it built from the query string the extension sent.
 * Seeded random query arrays (amoCRM's parameters and odd names, lists of
 * maps, numeric-looking keys, values of every type) must arrive as the array
 * that was meant (ConvertFuzz::meantGet), or be refused naming `query`.
 * Intended differences, written in meantGet(): values arrive as strings
 * (true 1, false 0, a float in serde_json's shortest spelling), nulls and
 * empty arrays are not sent, a list arrives as the list of its non-empty
 * items, a top-level `with` list is sent comma-separated; PHP renames
 * top-level names (`.` and spaces to `_`) as it does for any client.
 * Queries stay within PHP's max_input_vars and max_input_nesting_level.
 *
 * Budget: `./build.sh test` 12 s; `--long` 30 minutes. AMOCRM_FUZZ_SEED
 * replays a failure's seed. The Rust target fuzz/fuzz_targets/query_encoder
 * checks the same with a model of PHP's rules, at a far higher rate.
 */
final class QueryFuzzTest extends AmoTestCase
{
    private ?Proc $server = null;
    private string $router;

    public static function setUpBeforeClass(): void
    {
        FuzzReport::section();
    }

    protected function setUp(): void
    {
        parent::setUp();
        $this->router = $this->dir . '/router.php';
        file_put_contents($this->router, ConvertFuzz::ECHO_ROUTER);
    }

    protected function tearDown(): void
    {
        $this->server?->stop();
        parent::tearDown();
    }

    public function testQueryArraysArriveAsPhpReadsThem(): void
    {
        $port = Proc::freePort();
        // PHP's defaults for what a request may carry (amoCRM's are not known to be larger).
        $this->server = new Proc(
            [PHP_BINARY, '-n', '-d', 'max_input_vars=1000', '-d', 'max_input_nesting_level=64', '-S', "127.0.0.1:$port", $this->router],
            ['PATH' => getenv('PATH') ?: '/usr/bin:/bin'],
            $this->dir . '/php-server',
        );
        Proc::waitForPort('127.0.0.1', $port, 10, fn () => $this->server->running());
        // The token file names the PHP server as the account host.
        $this->seedTokens();
        $pair = $this->storedPair();
        $pair['base_domain'] = "localhost:$port";
        file_put_contents($this->tokenPath, json_encode($pair));

        $seed = FuzzReport::seed();
        $seconds = Results::fuzzSeconds(12, 1800);
        $corpus = FuzzReport::corpusDir('query_encoder');
        $support = __DIR__ . '/support';
        $started = microtime(true);
        $r = $this->ok(
            "require '$support/FuzzGen.php';\nrequire '$support/ConvertFuzz.php';\n"
            . "return \\AmoCRM\\Tests\\Reliability\\ConvertFuzz::query($seed, $seconds, " . var_export($corpus, true) . ');',
            ['AMOCRM_RATE_LIMIT' => '0', 'AMOCRM_MAX_RETRIES' => '0'],
        );
        FuzzReport::row(
            'query encoder (client::encode_query), against PHP',
            "PHPUnit property test, seeded random query arrays (seed $seed), through AmoClient::request() to a PHP built-in server",
            'the $_GET PHP builds from the query string sent is the array meant (values as strings, lists of maps kept whole, numeric-looking keys, unicode, reserved characters); keys PHP would read as another name (brackets, NUL, empty), NAN/INF, bytes that are not UTF-8 and objects refused naming `query`; a list at the top refused',
            microtime(true) - $started,
            $r['execs'],
            $r['corpus'],
            $r['failures'],
            FuzzReport::regressions($corpus),
        );
        $this->assertSame([], $r['failures'], "seed $seed (AMOCRM_FUZZ_SEED=$seed replays it)");
        $this->assertGreaterThan(50, $r['sent'], 'too few queries went through to mean anything');
        $this->assertGreaterThan(0, $r['refused'], 'no query that must be refused was tried');
    }
}
