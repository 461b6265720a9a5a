<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

/**
 * What the reliability tests measured, for docs/reliability.md: nothing in
 * that document is typed by hand. Each section is a JSON file in
 * $AMOCRM_RELIABILITY_DIR (`./build.sh test` sets it to target/reliability):
 * `<key>.json` holds its title, text, columns and rows written at once;
 * `<key>.rows.jsonl` gets one row per line from tests that measure a cell
 * at a time. tests/reliability/report.php renders them, sorted by key.
 */
final class Results
{
    public static function dir(): ?string
    {
        $dir = getenv('AMOCRM_RELIABILITY_DIR');
        if ($dir === false || $dir === '') {
            return null;
        }
        if (!is_dir($dir)) {
            @mkdir($dir, 0700, true);
        }
        return $dir;
    }

    /** Whether this is the long run (`./build.sh test --long`). */
    public static function long(): bool
    {
        return getenv('AMOCRM_LONG') === '1';
    }

    /** $short in `./build.sh test`, $long in `./build.sh test --long`. */
    public static function count(int $short, int $long): int
    {
        return self::long() ? $long : $short;
    }

    /**
     * A fuzzing budget in seconds: $short, or in the long run $long unless
     * AMOCRM_FUZZ_SECONDS sets every target's budget (as for the Rust targets).
     */
    public static function fuzzSeconds(int $short, int $long): int
    {
        $set = (int) getenv('AMOCRM_FUZZ_SECONDS');
        return self::long() && $set > 0 ? $set : self::count($short, $long);
    }

    /**
     * A section's header: its title, what it shows, and the columns of its rows.
     * @param list<string> $columns
     */
    public static function section(string $key, string $title, string $text, array $columns = []): void
    {
        self::write($key . '.json', json_encode(['title' => $title, 'text' => $text, 'columns' => $columns],
            JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRETTY_PRINT | JSON_THROW_ON_ERROR));
    }

    /** @param list<scalar|null> $cells one row of the section's table */
    public static function row(string $key, array $cells): void
    {
        $dir = self::dir();
        if ($dir === null) {
            return;
        }
        $line = json_encode(array_values($cells), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR) . "\n";
        file_put_contents("$dir/$key.rows.jsonl", $line, FILE_APPEND | LOCK_EX);
    }

    private static function write(string $name, string $bytes): void
    {
        $dir = self::dir();
        if ($dir !== null) {
            file_put_contents("$dir/$name", $bytes . "\n", LOCK_EX);
        }
    }
}
