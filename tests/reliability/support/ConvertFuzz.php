<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

/**
 * The property loops of ConvertFuzzTest and QueryFuzzTest. They run inside a
 * PHP process with the extension (tests/php/support/child.php), for a time
 * budget, and return what they did and the first failures; the PHPUnit test
 * asserts on that.
 *
 * The oracle is PHP itself: what `json_decode(json_encode($v,
 * JSON_PRESERVE_ZERO_FRACTION), true)` gives, what `json_decode($json, true)`
 * gives, and what PHP builds as `$_GET` from the query string sent. Where the
 * extension differs from it on purpose, the expectation says so (see
 * refusal() and expectAnswer()).
 */
final class ConvertFuzz
{
    /** The extension's limit: a body or a query nests at most this many levels of arrays. */
    public const MAX_DEPTH = 128;

    /**
     * PHP value → JSON (zval_to_json) → the emulator's `echo` → JSON → PHP
     * (json_to_zval), for the corpus's values and then random ones.
     * @return array<string, mixed>
     */
    public static function echo(int $seed, float $seconds, string $corpusDir): array
    {
        $gen = new FuzzGen($seed);
        $amo = \AmoClient::getInstance();
        $r = ['execs' => 0, 'sent' => 0, 'refused' => 0, 'corpus' => 0, 'failures' => [], 'deepest_sent' => 0];
        foreach (self::corpus($corpusDir) as $name => $bytes) {
            // *.ser: PHP's serialize(), for what JSON cannot hold (keys that are not UTF-8, NAN).
            $v = str_ends_with($name, '.ser') ? unserialize($bytes, ['allowed_classes' => false]) : json_decode($bytes, true, 512);
            if (is_array($v)) {
                $r['corpus']++;
                self::checkEcho($amo, $v, $r, "corpus $name");
            }
        }
        $deadline = microtime(true) + $seconds;
        while (microtime(true) < $deadline && count($r['failures']) < 5) {
            $v = $gen->chance(25) ? $gen->nest(mt_rand(120, 130), $gen->scalar()) : $gen->fresh()->array(mt_rand(1, 6), true);
            self::checkEcho($amo, $v, $r, "seed $seed, value {$r['execs']}");
        }
        return $r;
    }

    /**
     * Why the extension must refuse to send $v (empty: it must send it):
     * PHP's json_encode would send some of these (objects, depth up to 512)
     * or fail on them (NAN, INF, bytes that are not UTF-8); the extension
     * refuses them all with AmoConfigException naming the argument.
     * @return list<string> the words its message must contain (any one)
     */
    public static function refusal(mixed $v, int $level = 0): array
    {
        if (is_float($v) && !is_finite($v)) {
            return ['NAN and INF'];
        }
        if (is_string($v)) {
            return preg_match('//u', $v) === 1 ? [] : ['not valid UTF-8'];
        }
        if (is_object($v)) {
            return ['cannot be sent as JSON'];
        }
        if (!is_array($v)) {
            return [];
        }
        if ($level + 1 > self::MAX_DEPTH) {
            return ['nested deeper than ' . self::MAX_DEPTH];
        }
        $why = [];
        foreach ($v as $k => $item) {
            if (is_string($k) && preg_match('//u', $k) !== 1) {
                $why[] = 'not valid UTF-8';
            }
            array_push($why, ...self::refusal($item, $level + 1));
        }
        return array_values(array_unique($why));
    }

    /** @param array<string, mixed> $r */
    private static function checkEcho(\AmoClient $amo, array $v, array &$r, string $what): void
    {
        $r['execs']++;
        $why = self::refusal($v);
        try {
            $got = $amo->request('PATCH', '/api/v4/leads', null, $v);
        } catch (\AmoConfigException $e) {
            $r['refused']++;
            $ok = $why !== [] && str_contains($e->getMessage(), '`body`')
                && array_filter($why, static fn ($w) => str_contains($e->getMessage(), $w)) !== [];
            if (!$ok) {
                $r['failures'][] = FuzzGen::clean("$what: refused (" . $e->getMessage() . ') ' . ($why === [] ? 'a value PHP sends as JSON' : 'for another reason than ' . implode(', ', $why)) . ': ' . FuzzGen::show($v));
            }
            return;
        } catch (\Throwable $e) {
            $r['failures'][] = FuzzGen::clean("$what: " . get_class($e) . ': ' . $e->getMessage() . ' for ' . FuzzGen::show($v));
            return;
        }
        if ($why !== []) {
            $r['failures'][] = FuzzGen::clean("$what: sent although " . implode(', ', $why) . ': ' . FuzzGen::show($v));
            return;
        }
        $r['sent']++;
        $r['deepest_sent'] = max($r['deepest_sent'], FuzzGen::depth($v));
        $want = json_decode(json_encode($v, JSON_PRESERVE_ZERO_FRACTION, 512), true, 512);
        if (!FuzzGen::same($got, $want)) {
            $r['failures'][] = FuzzGen::clean("$what: came back as " . FuzzGen::show($got) . ', json_decode(json_encode()) gives ' . FuzzGen::show($want));
        }
    }

    /**
     * JSON text amoCRM might send → json_to_zval, through the emulator's
     * `respond` fault; the corpus's bodies and then random JSON (random
     * values encoded with random flags, numbers respelled, members
     * duplicated, escapes, cuts).
     * @return array<string, mixed>
     */
    public static function answers(int $seed, float $seconds, string $corpusDir, string $emulator): array
    {
        $gen = new FuzzGen($seed);
        $amo = \AmoClient::getInstance();
        $r = ['execs' => 0, 'decoded' => 0, 'refused' => 0, 'corpus' => 0, 'failures' => []];
        foreach (self::corpus($corpusDir) as $name => $json) {
            $r['corpus']++;
            self::checkAnswer($amo, $emulator, $json, $r, "corpus $name");
        }
        $deadline = microtime(true) + $seconds;
        while (microtime(true) < $deadline && count($r['failures']) < 5) {
            self::checkAnswer($amo, $emulator, self::randomJson($gen), $r, "seed $seed, answer {$r['execs']}");
        }
        return $r;
    }

    public static function randomJson(FuzzGen $gen): string
    {
        $v = $gen->chance(20) ? $gen->nest(mt_rand(125, 131), $gen->scalar()) : $gen->fresh()->array(mt_rand(1, 5));
        $flags = JSON_PRESERVE_ZERO_FRACTION;
        foreach ([JSON_PRETTY_PRINT, JSON_UNESCAPED_UNICODE, JSON_UNESCAPED_SLASHES, JSON_FORCE_OBJECT] as $f) {
            $flags |= $gen->chance(3) ? $f : 0;
        }
        $json = (string) json_encode($v, $flags, 512);
        for ($i = mt_rand(0, 3); $i > 0; $i--) {
            $json = match (mt_rand(0, 6)) {
                // A number spelled another way amoCRM (or a proxy) might.
                0, 1 => (string) preg_replace_callback('/(?<=[:\[,])-?\d+(\.\d+)?([eE][-+]?\d+)?/', static fn () => $gen->pick(['1E2', '1e-7', '-0', '0.0', '-0.0', '0e0', '10000000000000000000', '18446744073709551616', '-9223372036854775809', '1e400', '-1e400', '123456789012345678901234567890', '1.000000000000000000001', '2.2250738585072011e-308', '4.9406564584124654e-324', '9007199254740993']), $json, 1),
                2 => (string) preg_replace('/"([^"\\\\]*)":/', '"$1":null,"$1":', $json, 1),
                3 => (string) preg_replace('/"([^"\\\\]*)"/', '"\\u00e9\\ud83d\\ude00$1"', $json, 1),
                4 => (string) preg_replace('/"([^"\\\\]*)"/', '"\\ud800$1"', $json, 1),
                5 => $gen->chance(2) ? substr($json, 0, mt_rand(0, strlen($json))) : (string) preg_replace('/"([^"\\\\]*)"/', '"' . $gen->notUtf8() . '$1"', $json, 1),
                default => $gen->pick(["\u{feff}", ' ', "\n", '']) . $json . $gen->pick(['', ' ', "\n", 'x', ',']),
            };
        }
        return $json;
    }

    /**
     * What the extension must make of a 200 answer with this body: what
     * json_decode($json, true) gives, except where it refuses on purpose
     * (AmoApiException): a bare scalar (amoCRM answers objects and lists),
     * nesting deeper than 128 (json_decode allows 512), a number beyond
     * float range (json_decode makes it INF). The last two are read in the
     * text, as the extension does: a member that a later duplicate replaces
     * counts too, although json_decode's array no longer holds it.
     * @return array{0: 'value', 1: mixed}|array{0: 'refused', 1: string}
     */
    public static function expectAnswer(string $json): array
    {
        // serde_json reads the integer -0 as the float -0.0 (json_decode: int 0);
        // amoCRM never writes it. Expect that spelling's float.
        $want = json_decode(self::minusZeroAsFloat($json), true, 100000);
        if (json_last_error() !== JSON_ERROR_NONE) {
            return ['refused', 'not JSON'];
        }
        if (!is_array($want)) {
            return ['refused', 'a bare JSON value'];
        }
        // Strings emptied: what is left is brackets, numbers and literals.
        $bare = self::withoutStrings($json);
        $brackets = (string) preg_replace('/[^\[\]{}]+/', '', $bare);
        $depth = $deepest = 0;
        for ($i = 0, $n = strlen($brackets); $i < $n; $i++) {
            $depth += $brackets[$i] === '[' || $brackets[$i] === '{' ? 1 : -1;
            $deepest = max($deepest, $depth);
        }
        if ($deepest > self::MAX_DEPTH) {
            return ['refused', 'nested deeper than ' . self::MAX_DEPTH];
        }
        preg_match_all('/-?\d+(\.\d+)?([eE][-+]?\d+)?/', $bare, $numbers);
        foreach ($numbers[0] as $n) {
            // PHP's json parser and (float) both read numbers with zend_strtod.
            if (!is_finite((float) $n)) {
                return ['refused', 'a number beyond float range'];
            }
        }
        return ['value', $want];
    }

    /** $json (valid JSON) with every string, keys included, spelled `""`. */
    public static function withoutStrings(string $json): string
    {
        $out = '';
        $n = strlen($json);
        for ($i = 0; $i < $n; $i = $j + 1) {
            $k = strcspn($json, '"', $i);
            $out .= substr($json, $i, $k);
            // From the opening quote to the closing one, over escapes.
            $j = $i + $k;
            if ($j < $n) {
                $j++;
                while (($j += strcspn($json, '"\\', $j)) < $n && $json[$j] === '\\') {
                    $j += 2;
                }
                $out .= '""';
            }
        }
        return $out;
    }

    /** $json with every number token `-0` (outside strings) spelled `-0.0`. */
    public static function minusZeroAsFloat(string $json): string
    {
        $out = '';
        $n = strlen($json);
        for ($i = 0; $i < $n; $i++) {
            $c = $json[$i];
            if ($c === '"') {
                // Copy the string through its closing quote.
                $j = $i + 1;
                while ($j < $n && $json[$j] !== '"') {
                    $j += $json[$j] === '\\' ? 2 : 1;
                }
                $out .= substr($json, $i, $j - $i + 1);
                $i = $j;
                continue;
            }
            if ($c === '-' && substr($json, $i + 1, 1) === '0' && !preg_match('/[0-9.eE]/', substr($json, $i + 2, 1))
                && ($i === 0 || !preg_match('/[0-9.eE+\-]/', $json[$i - 1]))) {
                $out .= '-0.0';
                $i++;
                continue;
            }
            $out .= $c;
        }
        return $out;
    }

    /** @param array<string, mixed> $r */
    private static function checkAnswer(\AmoClient $amo, string $emulator, string $json, array &$r, string $what): void
    {
        $r['execs']++;
        self::control($emulator, 'POST', '/_emulator/faults', [
            'path' => '/api/v4/leads', 'method' => 'GET', 'action' => 'respond', 'status' => 200,
            'body_base64' => base64_encode($json), 'content_type' => 'application/json', 'times' => 1,
        ]);
        [$kind, $want] = self::expectAnswer($json);
        try {
            $got = $amo->request('GET', '/api/v4/leads');
        } catch (\AmoApiException $e) {
            $r['refused']++;
            if ($kind !== 'refused') {
                $r['failures'][] = FuzzGen::clean("$what: refused (" . $e->getMessage() . '), json_decode gives ' . FuzzGen::show($want) . ' for ' . self::showJson($json));
            }
            return;
        } catch (\Throwable $e) {
            $r['failures'][] = FuzzGen::clean("$what: " . get_class($e) . ': ' . $e->getMessage() . ' for ' . self::showJson($json));
            return;
        }
        if ($kind === 'refused') {
            $r['failures'][] = FuzzGen::clean("$what: decoded as " . FuzzGen::show($got) . " although $want: " . self::showJson($json));
            return;
        }
        $r['decoded']++;
        if (!FuzzGen::same($got, $want)) {
            $r['failures'][] = FuzzGen::clean("$what: decoded as " . FuzzGen::show($got) . ', json_decode gives ' . FuzzGen::show($want) . ' for ' . self::showJson($json));
        }
    }

    private static function showJson(string $json): string
    {
        $s = preg_match('//u', $json) === 1 ? $json : bin2hex($json);
        return strlen($s) > 600 ? substr($s, 0, 600) . '…' : $s;
    }

    /**
     * A query array → the extension's encoder → a PHP server standing in
     * for amoCRM → its `$_GET`, which must be the array that was meant.
     * @return array<string, mixed>
     */
    public static function query(int $seed, float $seconds, string $corpusDir): array
    {
        $gen = new FuzzGen($seed);
        $amo = \AmoClient::getInstance();
        $r = ['execs' => 0, 'sent' => 0, 'refused' => 0, 'not_compared' => 0, 'corpus' => 0, 'failures' => []];
        foreach (self::corpus($corpusDir) as $name => $json) {
            $q = json_decode($json, true, 512);
            if (is_array($q)) {
                $r['corpus']++;
                self::checkQuery($amo, $q, $r, "corpus $name");
            }
        }
        $deadline = microtime(true) + $seconds;
        while (microtime(true) < $deadline && count($r['failures']) < 5) {
            self::checkQuery($amo, self::randomQuery($gen), $r, "seed $seed, query {$r['execs']}");
        }
        return $r;
    }

    /** @return array<mixed> */
    public static function randomQuery(FuzzGen $gen): array
    {
        $gen->fresh();
        $q = [];
        for ($i = mt_rand(0, 5); $i > 0; $i--) {
            $name = $gen->chance(2) ? $gen->pick(['filter', 'order', 'page', 'limit', 'query', 'with']) : $gen->key();
            $q[$name] = match (true) {
                $name === 'with' => array_map(static fn () => $gen->pick(['contacts', 'leads', 'catalog_elements', 'is_price_modified_by_robot', 'loss_reason', 'source_id']), range(0, mt_rand(0, 3))),
                $gen->chance(50) => $gen->oddValue(),
                default => $gen->value(mt_rand(0, 6)),
            };
        }
        return $gen->chance(30) ? [1, 2] : $q;
    }

    /**
     * Why the extension must refuse this query: a value it cannot send,
     * not a map, or a key PHP (amoCRM) would read as another name.
     * @return list<string>
     */
    public static function queryRefusal(array $q): array
    {
        $why = self::refusal($q);
        if ($why !== []) {
            return $why;
        }
        if ($q !== [] && array_is_list($q)) {
            return ['must be an array keyed by parameter name'];
        }
        $bad = static function (array $a, bool $top) use (&$bad): bool {
            foreach ($a as $k => $v) {
                $k = (string) $k;
                // Brackets or NUL anywhere; at the top a name of spaces only (PHP
                // strips them); inside brackets one whitespace character (PHP reads
                // `a[ ]` as `a[]`).
                $lost = $top ? ltrim($k, ' ') === '' : in_array($k, ['', ' ', "\t", "\n", "\x0b", "\x0c", "\r"], true);
                if ($lost || strpbrk($k, "[]\0") !== false) {
                    return true;
                }
                if (is_array($v) && !($top && $k === 'with' && array_is_list($v)) && $bad($v, false)) {
                    return true;
                }
            }
            return false;
        };
        return $bad($q, true) ? ['cannot be sent'] : [];
    }

    /**
     * `$_GET` as amoCRM should see it: strings (true 1, false 0; a float
     * as a FloatLeaf, since its spelling may differ from PHP's), nulls and
     * empty arrays gone, a list as the list of its remaining items, a
     * top-level `with` list joined with commas, top-level names as PHP
     * renames them (`.` and spaces to `_`, leading spaces dropped).
     * `null` when two names become one there (PHP merges them), or when a
     * `with` list holds floats or arrays (their JSON spelling is serde_json's).
     */
    public static function meantGet(array $q): ?array
    {
        $meant = static function (mixed $v) use (&$meant): mixed {
            if ($v === null) {
                return null;
            }
            if (is_bool($v)) {
                return $v ? '1' : '0';
            }
            if (is_float($v)) {
                return new FloatLeaf($v);
            }
            if (!is_array($v)) {
                return (string) $v;
            }
            $out = [];
            foreach ($v as $k => $item) {
                $m = $meant($item);
                if ($m !== null) {
                    $out[$k] = $m;
                }
            }
            if (array_is_list($v)) {
                $out = array_values($out);
            }
            return $out === [] ? null : $out;
        };
        $get = [];
        foreach ($q as $k => $v) {
            $name = str_replace(['.', ' '], '_', ltrim((string) $k, ' '));
            if ($name === '') {
                continue;
            }
            if (array_key_exists($name, $get)) {
                return null;
            }
            if ($k === 'with' && is_array($v) && array_is_list($v)) {
                // Joined as the encoder does: strings as they are, anything else as JSON.
                foreach ($v as $item) {
                    if (!is_string($item) && !is_int($item) && !is_bool($item) && $item !== null) {
                        return null; // a float's or an array's JSON spelling: not compared
                    }
                }
                $m = implode(',', array_map(static fn ($i) => is_string($i) ? $i : json_encode($i), $v));
            } else {
                $m = $meant($v);
            }
            $get[$name] = $m;
            if ($m === null) {
                unset($get[$name]);
            }
        }
        return $get;
    }

    /** Equal, FloatLeaf matching the string sent when it reads back as the same float. */
    public static function sameGet(mixed $meant, mixed $got): bool
    {
        if ($meant instanceof FloatLeaf) {
            return is_string($got) && is_numeric($got) && pack('E', (float) $got) === pack('E', $meant->value);
        }
        if (is_array($meant) && is_array($got)) {
            if (array_keys($meant) !== array_keys($got)) {
                return false;
            }
            foreach ($meant as $k => $v) {
                if (!self::sameGet($v, $got[$k])) {
                    return false;
                }
            }
            return true;
        }
        return $meant === $got;
    }

    /** @param array<string, mixed> $r */
    private static function checkQuery(\AmoClient $amo, array $q, array &$r, string $what): void
    {
        $r['execs']++;
        $why = self::queryRefusal($q);
        try {
            $answer = $amo->request('GET', '/api/v4/leads', $q);
        } catch (\AmoConfigException $e) {
            $r['refused']++;
            if (preg_match('/it encodes to (\d+) bytes, more than the 60000 a URL may carry/', $e->getMessage(), $m) && $why === []) {
                // Too long to send; the Rust target checks the length exactly,
                // here it must at least hold every leaf once.
                $leafBytes = 0;
                array_walk_recursive($q, static function ($x) use (&$leafBytes) {
                    $leafBytes += strlen(is_float($x) ? (string) $x : (string) json_encode($x));
                });
                if ((int) $m[1] <= 60000 || (int) $m[1] < $leafBytes / 2) {
                    $r['failures'][] = FuzzGen::clean("$what: refused as too long ({$m[1]} bytes) with " . $leafBytes . ' bytes of values');
                }
                return;
            }
            $ok = $why !== [] && str_contains($e->getMessage(), '`query`')
                && array_filter($why, static fn ($w) => str_contains($e->getMessage(), $w)) !== [];
            if (!$ok) {
                $r['failures'][] = FuzzGen::clean("$what: refused (" . $e->getMessage() . ') ' . ($why === [] ? 'a query that can be sent' : 'for another reason than ' . implode(', ', $why)) . ': ' . FuzzGen::show($q));
            }
            return;
        } catch (\Throwable $e) {
            $r['failures'][] = FuzzGen::clean("$what: " . get_class($e) . ': ' . $e->getMessage() . ' for ' . FuzzGen::show($q));
            return;
        }
        if ($why !== []) {
            $r['failures'][] = FuzzGen::clean("$what: sent although " . implode(', ', $why) . ': ' . FuzzGen::show($q));
            return;
        }
        $r['sent']++;
        $leaves = 0;
        array_walk_recursive($q, static function () use (&$leaves) {
            $leaves++;
        });
        if ($leaves > 1000 || FuzzGen::depth($q) > 64) {
            // Beyond PHP's max_input_vars and max_input_nesting_level: PHP drops
            // what is beyond (amoCRM's own limits are not known).
            $r['not_compared']++;
            return;
        }
        $got = unserialize(base64_decode((string) ($answer['get'] ?? '')), ['allowed_classes' => false]);
        $meant = self::meantGet($q);
        if ($meant === null) {
            $r['not_compared']++;
            return;
        }
        if (!self::sameGet($meant, $got)) {
            $r['failures'][] = FuzzGen::clean("$what: amoCRM's PHP reads " . ($answer['query'] ?? '?') . ' as ' . FuzzGen::show($got) . ', meant ' . FuzzGen::show($meant) . ' from ' . FuzzGen::show($q));
        }
    }

    /** The router of the PHP server that stands in for amoCRM: answers what PHP parsed. */
    public const ECHO_ROUTER = <<<'PHP'
        <?php
        header('Content-Type: application/json');
        echo json_encode(['get' => base64_encode(serialize($_GET)), 'query' => $_SERVER['QUERY_STRING'] ?? '']);
        PHP;

    /** @return array<string, string> file name → contents */
    public static function corpus(string $dir): array
    {
        $out = [];
        foreach (glob($dir . '/*') ?: [] as $f) {
            if (is_file($f)) {
                $out[basename($f)] = (string) file_get_contents($f);
            }
        }
        ksort($out);
        return $out;
    }

    /** A call to the emulator's control API (no extension involved). */
    public static function control(string $base, string $method, string $path, mixed $body = null): mixed
    {
        $ctx = stream_context_create(['http' => [
            'method' => $method, 'ignore_errors' => true, 'timeout' => 10,
            'header' => "Content-Type: application/json\r\n",
            'content' => $body === null ? '' : json_encode($body, JSON_PRESERVE_ZERO_FRACTION | JSON_INVALID_UTF8_IGNORE),
        ]]);
        $raw = file_get_contents($base . $path, false, $ctx);
        if ($raw === false) {
            throw new \RuntimeException("emulator $method $path failed");
        }
        return json_decode($raw, true);
    }
}

/** A float query leaf: the spelling sent may differ from PHP's, the number may not. */
final class FloatLeaf implements \JsonSerializable
{
    public function __construct(public readonly float $value)
    {
    }

    public function jsonSerialize(): mixed
    {
        return $this->value;
    }
}
