<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

/**
 * The report's fuzzing section (`50-fuzzing`): one row per target, written
 * by the Rust harness (fuzz/src/stable.rs), by tests/reliability/bin/fuzz.php
 * for libFuzzer runs and the total, and by the *FuzzTest.php property tests.
 */
final class FuzzReport
{
    public const KEY = '50-fuzzing';
    public const COLUMNS = ['target', 'engine', 'what it checks', 'run time (s)', 'executions', 'exec/s', 'corpus files', 'failures (this run)', 'fixed defects replayed (regression-* corpus files)'];

    public static function section(): void
    {
        Results::section(self::KEY, 'Fuzzing', implode(' ', [
            'Every parser that takes bytes from outside: the token file, amoCRM\'s answers (error bodies included), the query encoder',
            '(Rust targets in fuzz/), the PHP values the extension converts in both directions, and the gateway\'s webhook form parser',
            '(PHP property tests in tests/reliability/*FuzzTest.php). Each replays its committed corpus (fuzz/corpus/<target>/,',
            'real-shaped inputs and one file per defect found, named regression-*), then runs random inputs for its time budget.',
            'Engines: `./build.sh test` runs the Rust targets on the stable toolchain with the stable harness (random mutation of the',
            'corpus, JSON-aware, without coverage instrumentation); `./build.sh test --long` runs the same targets under cargo-fuzz',
            '(libFuzzer with AddressSanitizer, coverage-guided) for an hour each (AMOCRM_FUZZ_SECONDS), and the PHP property tests',
            'for 20 to 30 minutes each. The PHP tests compare with PHP itself: json_decode(json_encode()), json_decode(),',
            'the $_GET a PHP server builds from the query sent, parse_str(). A failure stops the run and fails `./build.sh test`;',
            'its input is saved (target/fuzz/artifacts, fuzz/artifacts) or named by its seed (AMOCRM_FUZZ_SEED replays it).',
            'The last row adds up the run.',
        ]), self::COLUMNS);
    }

    /**
     * @param list<string> $failures
     * @param list<string> $regressions
     */
    public static function row(string $target, string $engine, string $checks, float $seconds, int $execs, int|string $corpus, array $failures, array $regressions): void
    {
        $cut = static fn (string $s): string => strlen($s) > 300 ? substr($s, 0, 300) . '…' : $s;
        Results::row(self::KEY, [
            $target,
            $engine,
            $checks,
            round($seconds, 1),
            $execs,
            $seconds > 0 ? (int) round($execs / $seconds) : 0,
            $corpus,
            $failures === [] ? '0' : count($failures) . ': ' . implode('; ', array_map($cut, $failures)),
            $regressions === [] ? '—' : implode(', ', $regressions),
        ]);
    }

    /**
     * The defects a corpus keeps fixed: its regression-NAME.* files.
     * @return list<string>
     */
    public static function regressions(string $dir): array
    {
        $names = [];
        foreach (glob($dir . '/regression-*') ?: [] as $f) {
            $names[] = (string) preg_replace('/^regression-|\..*$/', '', basename($f));
        }
        sort($names);
        return $names;
    }

    /** The seed of this run: AMOCRM_FUZZ_SEED, or a fresh one. */
    public static function seed(): int
    {
        $s = getenv('AMOCRM_FUZZ_SEED');
        return $s !== false && ctype_digit($s) ? (int) $s : random_int(1, 2 ** 31 - 1);
    }

    public static function corpusDir(string $target): string
    {
        return dirname(__DIR__, 3) . '/fuzz/corpus/' . $target;
    }
}
