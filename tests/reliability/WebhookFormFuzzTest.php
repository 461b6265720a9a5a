<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

use AmoGateway\Http\FormError;
use AmoGateway\Http\FormParser;

require_once dirname(__DIR__, 2) . '/php/src/autoload.php';

/**
 * Fuzzing the gateway's webhook form parser (php/src/Http/FormParser.php)
 * against PHP's own parse_str(), which it replaces because parse_str()
 * and $_POST silently drop what is beyond max_input_vars (1000) and
 * max_input_nesting_level (64).
 *
 * Within PHP's limits (at most 1000 fields, 32 levels, indexes of at most
 * 18 digits, UTF-8) FormParser must build exactly what parse_str() builds,
 * apart from what its docblock says it does on purpose: names are kept as
 * sent. PHP renames a top-level name (drops leading spaces, turns `.` and
 * spaces into `_`, and a `[` without `]` into `_`), cuts a name at a NUL
 * byte, and reads one whitespace character in brackets (`a[ ]`) as `[]`;
 * FormParser does none of that. The comparison takes those differences out
 * by giving parse_str() the same names with such characters replaced by
 * stand-ins, and putting them back in its result (phpNames()).
 *
 * Beyond PHP's limits: more than 1000 fields all arrive; deeper than 32
 * levels, an index of 19+ digits, bytes that are not UTF-8 are a FormError
 * naming the field. Random mutations of real amoCRM webhook bodies and of
 * multipart bodies never give a warning or another exception, and a
 * multipart body parses as its urlencoded twin.
 *
 * Budget: `./build.sh test` 15 s; `--long` 30 minutes. AMOCRM_FUZZ_SEED
 * replays a failure's seed.
 */
final class WebhookFormFuzzTest extends \PHPUnit\Framework\TestCase
{
    /** Stand-ins for the characters PHP treats specially in names: none of them is generated otherwise. */
    private const STAND_INS = [' ' => "\u{2423}", '.' => "\u{2024}", '[' => "\u{2045}", "\0" => "\u{2400}", "\t" => "\u{2409}", "\n" => "\u{2424}", "\x0b" => "\u{240b}", "\x0c" => "\u{240c}", "\r" => "\u{240d}"];

    private FuzzGen $gen;
    /** @var array<string, int> */
    private array $stats = ['execs' => 0, 'compared' => 0, 'form_errors' => 0, 'many_fields' => 0, 'multipart' => 0];
    /** @var list<string> */
    private array $failures = [];

    public static function setUpBeforeClass(): void
    {
        FuzzReport::section();
    }

    public function testFormBodiesParseAsPhpWouldWithoutItsCuts(): void
    {
        $seed = FuzzReport::seed();
        $this->gen = new FuzzGen($seed);
        $seconds = Results::fuzzSeconds(15, 1800);
        $dir = FuzzReport::corpusDir('webhook_form');
        $corpus = ConvertFuzz::corpus($dir);
        $started = microtime(true);
        foreach ($corpus as $name => $bytes) {
            if (str_ends_with($name, '.multipart')) {
                [$head, $body] = explode("\r\n\r\n", $bytes, 2);
                $this->multipart($body, substr($head, strlen('Content-Type: ')), "corpus $name");
            } else {
                $this->urlencoded($bytes, "corpus $name");
            }
        }
        $bodies = array_values(array_filter($corpus, static fn ($n) => !str_ends_with($n, '.multipart'), ARRAY_FILTER_USE_KEY));
        $deadline = $started + $seconds;
        while (microtime(true) < $deadline && count($this->failures) < 5) {
            $what = "seed $seed, body {$this->stats['execs']}";
            switch (mt_rand(0, 9)) {
                case 0:
                    $this->manyFields($what);
                    break;
                case 1:
                    $this->beyondLimits($what);
                    break;
                case 2:
                    $pairs = $this->pairs(true);
                    $this->multipartOf($pairs, $what);
                    break;
                case 3:
                case 4:
                    $this->urlencoded($this->mutate($this->gen->pick($bodies)), $what);
                    break;
                default:
                    $this->urlencoded($this->encode($this->pairs(false)), $what);
            }
        }
        FuzzReport::row(
            'webhook form parser (php/src/Http/FormParser.php)',
            "PHPUnit property test, seeded random form bodies (seed $seed), differential against parse_str()",
            'bracketed names (appends, numeric and numeric-looking indexes, overwrites, unicode, reserved characters) build what parse_str() builds, names kept as sent (no `.`/space renaming, no cut at NUL, `a[ ]` kept); beyond PHP\'s limits nothing is lost: 1001–3000 fields all arrive, 33+ levels, 19-digit indexes and bytes that are not UTF-8 are a FormError naming the field; mutated amoCRM webhook bodies and multipart bodies never warn or throw anything else; multipart parses as its urlencoded twin',
            microtime(true) - $started,
            $this->stats['execs'],
            count($corpus),
            $this->failures,
            FuzzReport::regressions($dir),
        );
        $this->assertSame([], $this->failures, "seed $seed (AMOCRM_FUZZ_SEED=$seed replays it)");
        $this->assertGreaterThan(100, $this->stats['compared'], 'too few bodies compared with parse_str()');
        $this->assertGreaterThan(0, $this->stats['form_errors'], 'no body beyond the limits was tried');
    }

    /**
     * Found by this test (fuzz/corpus/webhook_form/regression-append-after-negative-index.txt):
     * after a negative index, `a[]` took index 0 (`$a[] =` before PHP 8.3) where
     * parse_str() and $_POST give one past it.
     */
    public function testAnAppendAfterANegativeIndexTakesTheIndexPhpGives(): void
    {
        $body = 'tags[-5]=a&tags[]=b&tags[]=c&leads[status][-1][id]=1&leads[status][][id]=2&m[x]=1&m[]=2&n[3]=1&n[-7]=2&n[]=3';
        parse_str($body, $php);
        $this->assertSame([
            'tags' => [-5 => 'a', -4 => 'b', -3 => 'c'],
            'leads' => ['status' => [-1 => ['id' => '1'], 0 => ['id' => '2']]],
            'm' => ['x' => '1', 0 => '2'],
            'n' => [3 => '1', -7 => '2', 4 => '3'],
        ], $php);
        $this->assertSame($php, FormParser::urlencoded($body));
    }

    /**
     * Random fields within PHP's limits.
     * @return list<array{0: string, 1: string}>
     */
    private function pairs(bool $forMultipart): array
    {
        $g = $this->gen;
        $pairs = [];
        $names = [];
        for ($i = mt_rand(0, 25); $i > 0; $i--) {
            // Reuse a name now and then: appends, overwrites, scalar vs array.
            $name = $names !== [] && $g->chance(4) ? $g->pick($names) : $this->name();
            $names[] = $name;
            $value = $g->chance(10) ? '' : $g->utf8(12);
            if ($forMultipart) {
                $name = str_replace(['"', "\r", "\n"], '', $name);
            }
            $pairs[] = [$name, $value];
        }
        return $pairs;
    }

    private function name(): string
    {
        $g = $this->gen;
        $base = $g->pick(['leads', 'contacts', 'account', 'unsorted', 'task', 'message', 'a', '_x', 'Заявка', '0', '123', '-5', 'x-y', 'a.b', 'a b', ' lead', '  ', 'a[b', 'a+b', 'a&b', 'a=b', 'a%20b', 'a]b', "a\0b", '😀']);
        $name = $base;
        for ($i = $g->chance(5) ? 0 : mt_rand(1, 6); $i > 0; $i--) {
            $name .= '[' . $g->pick(['', '', '0', '1', (string) mt_rand(2, 30), '-1', '01', '-0', '999999999999999999', '-999999999999999999', 'id', 'status', 'custom_fields', 'values', 'value', 'name', 'Имя', ' ', "\t", ' x', 'x ', '  ', '.', 'a.b', 'a b', '[', 'a[b', '+', '%', '&', '😀', "\0", 'k' . mt_rand(0, 3)]) . ']';
        }
        if ($g->chance(15)) {
            $name .= $g->pick(['x', ']', '[', '[unclosed', 'tail[0]']);
        }
        return $name;
    }

    /** @param list<array{0: string, 1: string}> $pairs */
    private function encode(array $pairs): string
    {
        $g = $this->gen;
        $parts = [];
        foreach ($pairs as [$name, $value]) {
            $enc = $g->chance(2) ? 'urlencode' : 'rawurlencode';
            // Brackets as browsers send them (%5B%5D) or bare, as amoCRM's examples show them.
            $n = $enc($name);
            if ($g->chance(2)) {
                $n = str_replace(['%5B', '%5D'], ['[', ']'], $n);
            }
            $parts[] = $value === '' && $g->chance(3) ? $n : $n . '=' . $enc($value);
        }
        if ($g->chance(5)) {
            $parts[] = '';
        }
        return implode('&', $parts);
    }

    /** Byte mutations of a real body: flips, inserted separators and escapes, cuts. */
    private function mutate(string $body): string
    {
        $g = $this->gen;
        for ($i = mt_rand(1, 6); $i > 0; $i--) {
            $at = mt_rand(0, strlen($body));
            $body = match (mt_rand(0, 5)) {
                0 => substr($body, 0, $at) . $g->pick(['&', '=', '[', ']', '%', '%5B', '%5D', '%00', '%FF', '%C3', '+', '&&', '[]', '[0]', '%E2%82', "\xff", "\0"]) . substr($body, $at),
                1 => substr($body, 0, $at),
                2 => substr($body, 0, $at) . substr($body, min(strlen($body), $at + mt_rand(1, 20))),
                3 => $body === '' ? $body : substr_replace($body, chr(ord($body[min($at, strlen($body) - 1)]) ^ (1 << mt_rand(0, 7))), min($at, strlen($body) - 1), 1),
                4 => substr($body, 0, $at) . str_repeat('[a]', mt_rand(1, 40)) . substr($body, $at),
                default => $body . '&' . $body,
            };
        }
        return $body;
    }

    /** Parses with FormParser; a warning, a notice or any exception but FormError is a failure. */
    private function parse(callable $parse, string $what, string $shown): array|FormError|null
    {
        $warnings = [];
        set_error_handler(static function (int $no, string $msg) use (&$warnings): bool {
            $warnings[] = $msg;
            return true;
        });
        try {
            $out = $parse();
        } catch (FormError $e) {
            $out = $e;
        } catch (\Throwable $e) {
            $this->failures[] = FuzzGen::clean("$what: " . get_class($e) . ': ' . $e->getMessage() . ' for ' . $shown);
            return null;
        } finally {
            restore_error_handler();
        }
        if ($warnings !== []) {
            $this->failures[] = FuzzGen::clean("$what: PHP warned (" . implode('; ', $warnings) . ') for ' . $shown);
            return null;
        }
        return $out;
    }

    private function urlencoded(string $body, string $what): void
    {
        $this->stats['execs']++;
        $shown = self::shown($body);
        $got = $this->parse(static fn () => FormParser::urlencoded($body), $what, $shown);
        if ($got === null) {
            return;
        }
        // The fields as FormParser reads them (its split and urldecode are PHP's own).
        $pairs = [];
        foreach (explode('&', $body) as $part) {
            if ($part !== '') {
                [$n, $v] = array_pad(explode('=', $part, 2), 2, '');
                $pairs[] = [urldecode($n), urldecode($v)];
            }
        }
        $limit = $this->withinLimits($pairs);
        if ($got instanceof FormError) {
            $this->stats['form_errors']++;
            if ($limit === true) {
                $this->failures[] = FuzzGen::clean("$what: FormError ({$got->getMessage()}) for a body within PHP's limits: $shown");
            } elseif ($got->field !== 'body' && (!str_contains($got->getMessage(), "`{$got->field}`") || !in_array($got->field, array_map(fn ($p) => self::fieldName($p[0]), $pairs), true))) {
                // 'body' names the whole body (a name that is not UTF-8 cannot be shown).
                $this->failures[] = FuzzGen::clean("$what: FormError names `{$got->field}` ({$got->getMessage()}), not a field of $shown");
            }
            return;
        }
        if ($limit !== true) {
            $this->failures[] = FuzzGen::clean("$what: parsed although $limit: $shown");
            return;
        }
        if (count($pairs) > 1000 || str_contains($body, "\0")) {
            // parse_str() stops at max_input_vars (manyFields() checks that all
            // arrive) and at a NUL byte in the body; FormParser reads it all.
            return;
        }
        $this->stats['compared']++;
        $want = $this->phpParse($pairs);
        if (!FuzzGen::same($got, $want)) {
            $this->failures[] = FuzzGen::clean("$what: FormParser gives " . FuzzGen::show($got) . ', parse_str() ' . FuzzGen::show($want) . " for $shown");
        }
    }

    /**
     * true, or why FormParser must refuse these fields: its bounds, and UTF-8.
     * @param list<array{0: string, 1: string}> $pairs
     */
    private function withinLimits(array $pairs): true|string
    {
        foreach ($pairs as [$name, $value]) {
            if (!preg_match('//u', $name) || !preg_match('//u', $value)) {
                return 'a name or value is not UTF-8';
            }
            [$base, $segments] = self::path($name);
            if ($base === null) {
                continue;
            }
            if (1 + count($segments) > FormParser::MAX_DEPTH) {
                return 'a name nests deeper than ' . FormParser::MAX_DEPTH;
            }
            foreach ($segments as $s) {
                if (preg_match('/^-?\d{19,}$/', $s)) {
                    return 'an index has 19 digits or more';
                }
            }
        }
        return true;
    }

    /**
     * A name as FormParser splits it: the base and the bracketed segments
     * (null base: ignored). Written from its docblock, not from its code.
     * @return array{0: ?string, 1: list<string>, 2: bool}
     */
    private static function path(string $name): array
    {
        $open = strpos($name, '[');
        if ($open === false || strpos($name, ']', $open) === false) {
            return [$name === '' ? null : $name, [], false];
        }
        $base = substr($name, 0, $open);
        if ($base === '') {
            return [null, [], true];
        }
        $segments = [];
        $rest = substr($name, $open);
        while ($rest !== '' && $rest[0] === '[' && ($close = strpos($rest, ']')) !== false) {
            $segments[] = substr($rest, 1, $close - 1);
            $rest = substr($rest, $close + 1);
        }
        return [$base, $segments, true];
    }

    /** The name a FormError should give for this field (FormParser's field()). */
    private static function fieldName(string $name): string
    {
        $short = strlen($name) > 100 ? substr($name, 0, 100) . '…' : $name;
        return preg_match('//u', $short) ? (string) preg_replace('/[\x00-\x1F\x7F]/', '?', $short) : 'body';
    }

    /**
     * What parse_str() builds from these fields, with PHP's renaming taken
     * out (see the class comment).
     * @param list<array{0: string, 1: string}> $pairs
     */
    private function phpParse(array $pairs): array
    {
        $standIn = static fn (string $s, array $chars): string => strtr($s, array_intersect_key(self::STAND_INS, array_flip($chars)));
        $parts = [];
        foreach ($pairs as [$name, $value]) {
            [$base, $segments, $bracketed] = self::path($name);
            if ($base === null) {
                continue; // no name before `[`, or none at all: both ignore it
            }
            if (!$bracketed) {
                $php = $standIn($base, [' ', '.', '[', "\0"]);
            } else {
                $php = $standIn($base, [' ', '.', "\0"]);
                foreach ($segments as $s) {
                    $php .= '[' . (strlen($s) === 1 ? $standIn($s, [' ', "\t", "\n", "\x0b", "\x0c", "\r", "\0"]) : $standIn($s, ["\0"])) . ']';
                }
            }
            $parts[] = rawurlencode($php) . '=' . rawurlencode($value);
        }
        parse_str(implode('&', $parts), $out);
        return self::back($out);
    }

    private static function back(array $a): array
    {
        $out = [];
        $from = array_flip(self::STAND_INS);
        foreach ($a as $k => $v) {
            $key = is_string($k) ? strtr($k, $from) : $k;
            $out[$key] = is_array($v) ? self::back($v) : $v;
        }
        return $out;
    }

    /** More fields than max_input_vars: every one arrives, in order. */
    private function manyFields(string $what): void
    {
        $this->stats['execs']++;
        $this->stats['many_fields']++;
        $n = mt_rand(1001, 3000);
        $nested = $this->gen->chance(2);
        $parts = [];
        for ($i = 0; $i < $n; $i++) {
            $parts[] = ($nested ? "leads%5Bstatus%5D%5B$i%5D%5Bid%5D" : "f$i") . '=' . $i;
        }
        $got = $this->parse(static fn () => FormParser::urlencoded(implode('&', $parts)), $what, "$n fields");
        if (!is_array($got)) {
            if ($got instanceof FormError) {
                $this->failures[] = "$what: $n fields refused: " . $got->getMessage();
            }
            return;
        }
        $values = $nested ? array_column($got['leads']['status'] ?? [], 'id') : array_values($got);
        if ($values !== array_map('strval', range(0, $n - 1))) {
            $this->failures[] = "$what: of $n fields " . count($values) . ' arrived';
        }
    }

    /** Deeper than 32 levels, 19-digit indexes, bytes that are not UTF-8: a FormError naming the field. */
    private function beyondLimits(string $what): void
    {
        $g = $this->gen;
        $name = match (mt_rand(0, 3)) {
            0 => 'leads' . str_repeat('[a]', mt_rand(FormParser::MAX_DEPTH, 70)),
            1 => 'leads[' . $g->pick(['', '-']) . str_repeat('9', mt_rand(19, 40)) . ']',
            2 => 'leads[' . $g->notUtf8() . ']',
            default => 'leads[name]',
        };
        $value = str_starts_with($name, 'leads[name]') ? $g->notUtf8() : 'x';
        $pairs = $this->pairs(false);
        array_splice($pairs, mt_rand(0, count($pairs)), 0, [[$name, $value]]);
        $this->urlencoded($this->encode($pairs), $what);
    }

    /** @param list<array{0: string, 1: string}> $pairs */
    private function multipartOf(array $pairs, string $what): void
    {
        $b = '----amo' . bin2hex(pack('N', mt_rand()));
        $body = '';
        foreach ($pairs as [$n, $v]) {
            $body .= "--$b\r\nContent-Disposition: form-data; name=\"$n\"\r\n\r\n$v\r\n";
        }
        $body .= "--$b--\r\n";
        $mutated = $this->gen->chance(3);
        if ($mutated) {
            $body = $this->mutateMultipart($body);
        }
        $this->multipart($body, "multipart/form-data; boundary=$b", $what, $mutated ? null : $pairs);
    }

    private function mutateMultipart(string $body): string
    {
        $g = $this->gen;
        $at = mt_rand(0, strlen($body));
        return match (mt_rand(0, 4)) {
            0 => substr($body, 0, $at),
            1 => str_replace('form-data; name=', 'form-data; filename="x.txt"; name=', $body),
            2 => substr($body, 0, $at) . $g->pick(["\r\n", '--', '"', "\xff", "\r\n\r\n"]) . substr($body, $at),
            3 => preg_replace('/\r\n\r\n/', "\r\n", $body, 1) ?? $body,
            default => str_replace('Content-Disposition', 'Content-Type', $body),
        };
    }

    /** @param list<array{0: string, 1: string}>|null $pairs the fields it was made of, if unchanged */
    private function multipart(string $body, string $type, string $what, ?array $pairs = null): void
    {
        $this->stats['execs']++;
        $this->stats['multipart']++;
        $got = $this->parse(static fn () => FormParser::multipart($body, $type), $what, self::shown($body));
        if ($got === null || $got instanceof FormError) {
            $this->stats['form_errors'] += $got instanceof FormError ? 1 : 0;
            return;
        }
        if ($pairs !== null && str_ends_with($body, "--\r\n") && $this->withinLimits($pairs) === true) {
            $twin = FormParser::build($pairs);
            if (!FuzzGen::same($got, $twin)) {
                $this->failures[] = FuzzGen::clean("$what: multipart gives " . FuzzGen::show($got) . ', its urlencoded twin ' . FuzzGen::show($twin));
            }
        }
    }

    private static function shown(string $body): string
    {
        $s = preg_match('//u', $body) ? $body : 'hex ' . bin2hex($body);
        return strlen($s) > 500 ? substr($s, 0, 500) . '…' : $s;
    }
}
