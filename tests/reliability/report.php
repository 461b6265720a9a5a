<?php
/**
 * Renders the reliability tests' results (see support/Results.php) as
 * Markdown: php tests/reliability/report.php RESULTS_DIR OUT.md [--long]
 */
declare(strict_types=1);

[$self, $dir, $out] = array_pad($argv, 3, null);
if ($dir === null || $out === null || !is_dir($dir)) {
    fwrite(STDERR, "usage: php $self RESULTS_DIR OUT.md\n");
    exit(64);
}
$long = getenv('AMOCRM_LONG') === '1';
$cell = static fn ($v): string => str_replace(['|', "\n"], ['\|', ' '], match (true) {
    $v === null => '—',
    is_bool($v) => $v ? 'yes' : 'no',
    default => (string) $v,
});
$keys = [];
foreach (glob("$dir/*.json") ?: [] as $f) {
    $keys[basename($f, '.json')] = true;
}
foreach (glob("$dir/*.rows.jsonl") ?: [] as $f) {
    $keys[basename($f, '.rows.jsonl')] = true;
}
ksort($keys);
$commit = trim((string) shell_exec('git -C ' . escapeshellarg(dirname(__DIR__, 2)) . ' rev-parse --short HEAD 2>/dev/null'));
$md = "# Reliability: what the tests measured\n\n"
    . "Written by `tests/reliability/report.php` from the results of `./build.sh test" . ($long ? ' --long' : '') . "` "
    . '(commit ' . ($commit ?: 'unknown') . ', ' . gmdate('Y-m-d H:i') . ' UTC, ' . trim((string) shell_exec('nproc')) . ' cores, PHP ' . PHP_VERSION . '). '
    . "Nothing here is typed by hand: every number and every cell comes from the run. "
    . ($long ? 'These are the long runs\' counts.' : '`./build.sh test` runs the same tests with smaller counts; `./build.sh test --long` writes docs/reliability.md with the full ones.') . "\n";
foreach (array_keys($keys) as $key) {
    $head = is_file("$dir/$key.json") ? json_decode((string) file_get_contents("$dir/$key.json"), true) : [];
    $rows = [];
    foreach (is_file("$dir/$key.rows.jsonl") ? file("$dir/$key.rows.jsonl", FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) : [] as $line) {
        $rows[] = json_decode($line, true);
    }
    $md .= "\n## " . ($head['title'] ?? $key) . "\n\n";
    if (($head['text'] ?? '') !== '') {
        $md .= $head['text'] . "\n\n";
    }
    $columns = $head['columns'] ?? [];
    if ($rows !== []) {
        $columns = $columns ?: array_map(static fn ($i) => "column $i", array_keys($rows[0]));
        $md .= '| ' . implode(' | ', array_map($cell, $columns)) . " |\n|" . str_repeat(' --- |', count($columns)) . "\n";
        foreach ($rows as $row) {
            $md .= '| ' . implode(' | ', array_map($cell, $row)) . " |\n";
        }
    }
}
file_put_contents($out, $md);
fwrite(STDOUT, "wrote $out (" . count($keys) . " sections)\n");
