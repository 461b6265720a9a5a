<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Reliability;

/**
 * Seeded random PHP values for the property tests (*FuzzTest.php): ints at
 * the edges, floats of every kind (random bit patterns included), strings
 * in many scripts with control characters and, now and then, bytes that
 * are not UTF-8; lists, maps with numeric and string keys, holes and
 * reversed keys; nesting near the 128-level limit. The same seed gives the
 * same values (mt_rand's MT19937), so a failure is replayed by its seed.
 */
final class FuzzGen
{
    /** Weight of the values a property must refuse (not UTF-8, NAN, INF, objects, too deep): 1 in this many. */
    public int $oddOneIn = 40;
    /** Array members left for the value being made (see fresh()): keeps a value within a few thousand nodes. */
    private int $budget = 3000;

    public function __construct(public readonly int $seed)
    {
        mt_srand($seed);
    }

    public function int(int $max): int
    {
        return mt_rand(0, $max);
    }

    public function chance(int $oneIn): bool
    {
        return mt_rand(1, $oneIn) === 1;
    }

    /** @template T @param list<T> $items @return T */
    public function pick(array $items): mixed
    {
        return $items[mt_rand(0, count($items) - 1)];
    }

    public function anyInt(): int
    {
        return match (mt_rand(0, 5)) {
            0 => $this->pick([0, 1, -1, PHP_INT_MAX, PHP_INT_MIN, PHP_INT_MAX - 1, PHP_INT_MIN + 1, 2 ** 53, 2 ** 53 + 1, -(2 ** 53) - 1, 2 ** 31, 2 ** 32, 255, 1767225600]),
            1 => mt_rand(-1000, 1000),
            2 => mt_rand() * (mt_rand(0, 1) ? 1 : -1),
            default => (mt_rand() << 32 | mt_rand()) * (mt_rand(0, 1) ? 1 : -1),
        };
    }

    /** A finite float. */
    public function anyFloat(): float
    {
        switch (mt_rand(0, 4)) {
            case 0:
                return $this->pick([0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, 100.0, 1e15, 1e16, 1e21, 1e300, -1e-300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 9007199254740993.0, 0.30000000000000004, 1767225600.0, 123456.789]);
            case 1:
                return mt_rand(-100000, 100000) / 100;
            case 2:
                return (float) mt_rand() / (float) mt_getrandmax() * 10 ** mt_rand(-20, 20);
            default:
                // Any bit pattern that is a finite number: subnormals and all.
                do {
                    $f = unpack('E', pack('NN', mt_rand(0, 0x7FFFFFFF) << 1 | mt_rand(0, 1), mt_rand(0, 0x7FFFFFFF) << 1 | mt_rand(0, 1)))[1];
                } while (!is_finite($f));
                return mt_rand(0, 1) ? $f : -$f;
        }
    }

    /** A valid UTF-8 string: ASCII, Cyrillic, CJK, emoji, combining marks, controls, escapes, numerals. */
    public function utf8(int $maxLen = 24): string
    {
        if ($this->chance(60)) {
            return str_repeat($this->pick(['x', 'я', '😀', '"', '\\']), mt_rand(1000, 9000));
        }
        $pieces = ['a', 'Z', '0', '9', ' ', '_', '-', '.', ',', ':', '/', '\\', '"', "'", '&', '=', '+', '%', '#', '?', '[', ']', '{', '}',
            "\0", "\t", "\n", "\r", "\x1b", "\x7f", 'я', 'Заявка', 'ё', '中', '😀', "e\u{301}", "\u{2028}", "\u{2029}", "\u{feff}", "\u{fffd}", "\u{10ffff}", '<script>', '%00', '\\u0000'];
        $s = '';
        for ($i = mt_rand(0, $maxLen); $i > 0; $i--) {
            $s .= $this->pick($pieces);
        }
        return $s;
    }

    /** Bytes that are not UTF-8 (a lone byte, an overlong form, a surrogate, a cut sequence). */
    public function notUtf8(): string
    {
        $bad = $this->pick(["\xff", "\xfe", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80", "\x80", "\xf8\x88\x80\x80\x80"]);
        $s = $this->utf8(6);
        $at = mt_rand(0, strlen($s));
        return substr($s, 0, $at) . $bad . substr($s, $at);
    }

    /** A string key: numeric-looking ones included ("01", "-0", "+1", " 1", "9223372036854775808"). */
    public function key(): string
    {
        return match (mt_rand(0, 3)) {
            0 => $this->pick(['id', 'name', 'price', 'status_id', '_embedded', 'custom_fields_values', 'values', 'value', 'request_id', '_links', 'href']),
            1 => $this->pick(['0', '1', '-1', '01', '-0', '+1', ' 1', '1 ', '1.5', '1e3', '0x1', '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809', '', ' ', 'a.b', 'a b', 'a[b]', '[', ']']),
            default => $this->utf8(8),
        };
    }

    /** A scalar PHP can send as JSON. */
    public function scalar(): mixed
    {
        return match (mt_rand(0, 7)) {
            0 => null,
            1 => (bool) mt_rand(0, 1),
            2, 3 => $this->anyInt(),
            4, 5 => $this->anyFloat(),
            default => $this->utf8(),
        };
    }

    /** Starts a new value: its size budget is full again. */
    public function fresh(): self
    {
        $this->budget = 3000;
        return $this;
    }

    /**
     * A value of at most $depth levels of arrays; $odd allows the values a
     * sender must refuse.
     */
    public function value(int $depth, bool $odd = false): mixed
    {
        if ($odd && $this->chance($this->oddOneIn)) {
            return $this->oddValue();
        }
        if ($depth <= 0 || $this->chance(3)) {
            return $this->scalar();
        }
        return $this->array($depth, $odd);
    }

    /** @return array<mixed> */
    public function array(int $depth, bool $odd = false): array
    {
        $n = min($this->budget, $this->chance(8) ? mt_rand(9, 40) : mt_rand(0, 5));
        $this->budget -= $n;
        $a = [];
        switch (mt_rand(0, 6)) {
            case 0:
            case 1:
                for ($i = 0; $i < $n; $i++) {
                    $a[] = $this->value($depth - 1, $odd);
                }
                break;
            case 2:
                // Integer keys that are not 0..n-1: holes, negatives, reversed.
                for ($i = 0; $i < $n; $i++) {
                    $a[$this->pick([mt_rand(0, 20), -mt_rand(1, 5), PHP_INT_MAX - $i, $n - $i])] = $this->value($depth - 1, $odd);
                }
                break;
            case 3:
                for ($i = 0; $i < $n; $i++) {
                    $a[] = $this->value($depth - 1, $odd);
                }
                if ($a !== []) {
                    unset($a[mt_rand(0, count($a) - 1)]);
                }
                break;
            default:
                for ($i = 0; $i < $n; $i++) {
                    $a[$this->key()] = $this->value($depth - 1, $odd);
                }
        }
        if ($odd && $this->chance($this->oddOneIn)) {
            $a[$this->notUtf8()] = 1;
        }
        if ($this->chance(30) && $a !== []) {
            // A reference to another member (json_encode follows it).
            $keys = array_keys($a);
            $shared = $a[$keys[0]];
            $a[$keys[0]] = &$shared;
            $a['ref'] = &$shared;
            unset($shared);
        }
        return $a;
    }

    /** What no JSON sender may pass on silently. */
    public function oddValue(): mixed
    {
        return match (mt_rand(0, 4)) {
            0 => $this->notUtf8(),
            1 => $this->pick([NAN, INF, -INF]),
            2 => $this->pick([new \stdClass(), new \ArrayObject([1]), (object) ['a' => 1]]),
            3 => $this->nest(mt_rand(126, 131), $this->scalar()),
            default => [$this->notUtf8() => $this->scalar()],
        };
    }

    /** $inner inside $levels arrays (lists or one-key maps). */
    public function nest(int $levels, mixed $inner): array
    {
        for ($i = 0; $i < $levels; $i++) {
            $inner = mt_rand(0, 1) ? [$inner] : ['k' => $inner];
        }
        return $inner;
    }

    /** Levels of arrays in $v (a scalar 0, [] 1). */
    public static function depth(mixed $v): int
    {
        if (!is_array($v)) {
            return 0;
        }
        $max = 0;
        foreach ($v as $item) {
            $max = max($max, self::depth($item));
        }
        return 1 + $max;
    }

    /**
     * Identical, with floats compared bit for bit (so -0.0 is not 0.0 and a
     * float that lost its last bit is not equal), arrays by keys, key types
     * and order: `===` with exact floats.
     */
    public static function same(mixed $a, mixed $b): bool
    {
        if (is_float($a) && is_float($b)) {
            return pack('E', $a) === pack('E', $b);
        }
        if (is_array($a) && is_array($b)) {
            if (array_keys($a) !== array_keys($b)) {
                return false;
            }
            foreach ($a as $k => $v) {
                if (!self::same($v, $b[$k])) {
                    return false;
                }
            }
            return true;
        }
        return $a === $b;
    }

    /** A message that json_encode() takes: bytes that are not UTF-8 become U+FFFD. */
    public static function clean(string $s): string
    {
        return (string) json_decode((string) json_encode($s, JSON_INVALID_UTF8_SUBSTITUTE));
    }

    /** A value for a failure message: bounded, printable. */
    public static function show(mixed $v): string
    {
        $s = json_encode($v, JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE);
        if ($s === false || $s === '') {
            $s = var_export($v, true);
        }
        return strlen($s) > 600 ? substr($s, 0, 600) . '…' : $s;
    }
}
