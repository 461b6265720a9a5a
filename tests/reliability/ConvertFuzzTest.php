<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoCRM\Tests\AmoTestCase;

/**
 * Fuzzing the extension's PHP ⇄ JSON conversion (src/php/convert.rs)
 * through the real binding: it cannot be linked into a Rust fuzzer (it
 * needs the Zend engine), so seeded random PHP values go through
 * AmoClient::request() in a PHP process with the extension, against the
 * emulator, and PHP's own json_encode/json_decode is the oracle. The loops
 * are in support/ConvertFuzz.php; their intended differences from PHP are
 * written there (refusal(), expectAnswer()).
 *
 * Budgets: `./build.sh test` 12 s and 8 s; `--long` 30 and 20 minutes.
 * AMOCRM_FUZZ_SEED replays a failure's seed.
 */
final class ConvertFuzzTest extends AmoTestCase
{
    public static function setUpBeforeClass(): void
    {
        FuzzReport::section();
    }

    protected function setUp(): void
    {
        parent::setUp();
        // Both rate limits off: the loops make thousands of calls.
        $this->emu->control('POST', 'rate-limit', ['rps' => 0]);
        $this->seedTokens();
    }

    /** @return array<string, mixed> the loop's report */
    private function loop(string $call, int $seconds): array
    {
        $support = __DIR__ . '/support';
        $code = "require '$support/FuzzGen.php';\nrequire '$support/ConvertFuzz.php';\n"
            . "return \\AmoCRM\\Tests\\Reliability\\ConvertFuzz::$call;";
        $started = microtime(true);
        $r = $this->ok($code, ['AMOCRM_RATE_LIMIT' => '0', 'AMOCRM_MAX_RETRIES' => '0']);
        $r['seconds'] = microtime(true) - $started;
        return $r;
    }

    public function testPhpValuesComeBackAsJsonDecodeOfJsonEncodeGivesThem(): void
    {
        $this->emu->fault(['path' => '/api/v4/leads', 'method' => 'PATCH', 'action' => 'echo']);
        $seed = FuzzReport::seed();
        $seconds = Results::fuzzSeconds(12, 1800);
        $corpus = FuzzReport::corpusDir('php_values');
        $r = $this->loop("echo($seed, $seconds, " . var_export($corpus, true) . ')', $seconds);
        FuzzReport::row(
            'PHP values → JSON → PHP (convert.rs, both directions)',
            "PHPUnit property test, seeded random values (seed $seed), through AmoClient::request() and the emulator's echo",
            'zval_to_json then json_to_zval: ints at the edges, finite floats bit for bit (subnormals, -0.0), strings in many scripts, lists, maps with numeric-looking keys, holes, references, 120–131 levels of nesting; equal to json_decode(json_encode($v, JSON_PRESERVE_ZERO_FRACTION), true); NAN/INF, bytes that are not UTF-8 (values and keys), objects and more than 128 levels refused with AmoConfigException naming `body`',
            $r['seconds'],
            $r['execs'],
            $r['corpus'],
            $r['failures'],
            FuzzReport::regressions($corpus),
        );
        $this->assertSame([], $r['failures'], "seed $seed (AMOCRM_FUZZ_SEED=$seed replays it)");
        $this->assertGreaterThan(50, $r['sent'], 'too few values went through to mean anything');
        $this->assertGreaterThan(0, $r['refused'], 'no value that must be refused was tried');
        $this->assertSame(ConvertFuzz::MAX_DEPTH, $r['deepest_sent'], 'the deepest value sent is the limit');
    }

    public function testJsonAnswersBecomeWhatJsonDecodeGives(): void
    {
        $seed = FuzzReport::seed();
        $seconds = Results::fuzzSeconds(8, 1200);
        $corpus = FuzzReport::corpusDir('php_answers');
        $r = $this->loop("answers($seed, $seconds, " . var_export($corpus, true) . ', ' . var_export($this->emu->url(''), true) . ')', $seconds);
        FuzzReport::row(
            'amoCRM JSON → PHP (convert.rs json_to_zval)',
            "PHPUnit property test, seeded random JSON (seed $seed), through the emulator's respond fault",
            'a 200 answer with any JSON: random values with random json_encode flags, numbers respelled (1E2, -0, 2^64, 1e400), duplicate members, escapes, lone surrogates, bytes that are not UTF-8, cut bodies, BOM; equal to json_decode($json, true); refused with AmoApiException where json_decode fails, for a bare scalar, more than 128 levels, numbers beyond float range',
            $r['seconds'],
            $r['execs'],
            $r['corpus'],
            $r['failures'],
            FuzzReport::regressions($corpus),
        );
        $this->assertSame([], $r['failures'], "seed $seed (AMOCRM_FUZZ_SEED=$seed replays it)");
        $this->assertGreaterThan(20, $r['decoded'], 'too few answers were decoded to mean anything');
        $this->assertGreaterThan(0, $r['refused'], 'no answer that must be refused was tried');
    }
}
