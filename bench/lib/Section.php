<?php

declare(strict_types=1);

namespace AmoBench;

/** What one workload produced: its rows, and how they were measured. */
final class Section
{
    /** @param list<Row> $rows */
    public function __construct(public readonly string $title, public readonly array $rows, public readonly string $how)
    {
    }
}
