<?php
/**
 * The report's fuzzing section for build.sh's run_fuzz (see
 * tests/reliability/support/FuzzReport.php; the rows of the stable harness
 * are written by the harness itself, those of the PHP property tests by the
 * tests):
 *
 *   php tests/reliability/bin/fuzz.php section
 *   php tests/reliability/bin/fuzz.php libfuzzer TARGET LOG SECONDS EXIT_CODE
 *   php tests/reliability/bin/fuzz.php total
 */
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

require __DIR__ . '/../support/Results.php';
require __DIR__ . '/../support/FuzzReport.php';

$root = dirname(__DIR__, 3);
switch ($argv[1] ?? '') {
    case 'section':
        FuzzReport::section();
        break;

    case 'libfuzzer':
        [, , $target, $log, $seconds, $exit] = array_pad($argv, 6, '');
        $text = is_file($log) ? (string) file_get_contents($log) : '';
        $execs = preg_match('/stat::number_of_executed_units:\s*(\d+)/', $text, $m) ? (int) $m[1] : 0;
        $failures = [];
        if ($exit !== '0') {
            preg_match_all('/panicked at [^\n]*\n[^\n]*|Test unit written to \S+|ERROR: [^\n]*/', $text, $found);
            $failures[] = $found[0] !== [] ? implode(' ', $found[0]) : "exit code $exit, see $log";
        }
        $committed = count(glob("$root/fuzz/corpus/$target/*") ?: []);
        $grown = count(glob("$root/target/fuzz/corpus/$target/*") ?: []);
        $checks = trim((string) shell_exec(escapeshellarg("$root/target/release/$target") . ' --describe 2>/dev/null'));
        FuzzReport::row(
            "$target (Rust)",
            'cargo-fuzz: libFuzzer, coverage-guided, with AddressSanitizer and debug assertions',
            $checks,
            (float) $seconds,
            $execs,
            "$committed committed, $grown in the grown corpus (target/fuzz/corpus)",
            $failures,
            FuzzReport::regressions("$root/fuzz/corpus/$target"),
        );
        break;

    case 'total':
        $dir = Results::dir();
        $rows = $dir === null || !is_file("$dir/" . FuzzReport::KEY . '.rows.jsonl') ? [] : array_map(
            static fn (string $l) => json_decode($l, true),
            file("$dir/" . FuzzReport::KEY . '.rows.jsonl', FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [],
        );
        $seconds = array_sum(array_column($rows, 3));
        $execs = array_sum(array_column($rows, 4));
        $failed = array_filter(array_column($rows, 7), static fn ($f) => $f !== '0');
        Results::row(FuzzReport::KEY, [
            sprintf('all %d targets: %.2f hours of fuzzing', count($rows), $seconds / 3600),
            '—',
            '—',
            round($seconds, 1),
            $execs,
            $seconds > 0 ? (int) round($execs / $seconds) : 0,
            '—',
            (string) count($failed),
            '—',
        ]);
        break;

    default:
        fwrite(STDERR, "usage: php {$argv[0]} section | libfuzzer TARGET LOG SECONDS EXIT_CODE | total\n");
        exit(64);
}
