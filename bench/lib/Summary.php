<?php

declare(strict_types=1);

namespace AmoBench;

/** A median with its spread (min–max or p25–p75) over a set of measurements. */
final class Summary
{
    /** @param list<float> $values sorted */
    private function __construct(public readonly float $median, public readonly float $lo, public readonly float $hi,
        public readonly string $spread, public readonly array $values)
    {
    }

    /** @param list<int|float> $xs */
    public static function minMax(array $xs): self
    {
        $v = self::sorted($xs);
        return new self(self::percentile($v, 50), $v[0], $v[count($v) - 1], 'min–max', $v);
    }

    /** @param list<int|float> $xs */
    public static function quartiles(array $xs): self
    {
        $v = self::sorted($xs);
        return new self(self::percentile($v, 50), self::percentile($v, 25), self::percentile($v, 75), 'p25–p75', $v);
    }

    /** @param list<float> $sorted percentile by linear interpolation between closest ranks */
    public static function percentile(array $sorted, float $p): float
    {
        $n = count($sorted);
        $rank = ($p / 100) * ($n - 1);
        $lo = (int) floor($rank);
        $hi = min($n - 1, $lo + 1);
        return $sorted[$lo] + ($sorted[$hi] - $sorted[$lo]) * ($rank - $lo);
    }

    public function max(): float
    {
        return $this->values[count($this->values) - 1];
    }

    /** "105 (98–120)" with $decimals digits after the point. */
    public function format(int $decimals, float $scale = 1.0): string
    {
        $f = static fn (float $x): string => number_format($x * $scale, $decimals, '.', ' ');
        return count($this->values) === 1
            ? $f($this->median)
            : $f($this->median) . ' (' . $f($this->lo) . '–' . $f($this->hi) . ')';
    }

    /** @param list<int|float> $xs @return list<float> */
    private static function sorted(array $xs): array
    {
        if ($xs === []) {
            throw new \InvalidArgumentException('no measurements');
        }
        $v = array_map('floatval', $xs);
        sort($v);
        return $v;
    }
}
