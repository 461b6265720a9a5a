<?php

declare(strict_types=1);

namespace AmoBench;

/** One line of the results table. `met` is null for a row without a target. */
final class Row
{
    public function __construct(
        public readonly string $id,
        public readonly string $workload,
        public readonly string $baseline,
        public readonly string $amo,
        public readonly string $ratio,
        public readonly string $target,
        public readonly ?bool $met,
    ) {
    }

    /** "1.23×" */
    public static function ratio(float $amo, float $baseline): string
    {
        return $baseline > 0 ? number_format($amo / $baseline, 2) . '×' : '—';
    }
}
