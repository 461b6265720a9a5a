<?php

declare(strict_types=1);

namespace AmoBench;

/** The table, and bench/results.md around it. */
final class Report
{
    /** @var list<Section> */
    private array $sections = [];

    public function add(Section $s): void
    {
        $this->sections[] = $s;
    }

    /** @return list<Row> */
    public function rows(): array
    {
        return array_merge(...array_map(static fn (Section $s) => $s->rows, $this->sections ?: [new Section('', [], '')]));
    }

    /** @return list<Row> the rows whose target was missed */
    public function misses(): array
    {
        return array_values(array_filter($this->rows(), static fn (Row $r) => $r->met === false));
    }

    public function table(): string
    {
        $lines = [
            '| | workload | curl baseline | AmoClient | AmoClient / baseline | target | met |',
            '|---|---|---|---|---|---|---|',
        ];
        foreach ($this->rows() as $r) {
            $met = match ($r->met) {
                true => 'yes',
                false => '**no**',
                null => '—',
            };
            $lines[] = "| $r->id | $r->workload | $r->baseline | $r->amo | $r->ratio | $r->target | $met |";
        }
        return implode("\n", $lines) . "\n";
    }

    /** @param array<string, string> $machine */
    public function markdown(array $machine, string $mode, float $seconds, string $emulatorNote): string
    {
        $out = "# Benchmark: AmoClient against hand-written PHP curl\n\n"
            . "Written by `./build.sh bench" . ($mode === 'quick' ? ' --quick' : '') . "` (bench/run.php; see bench/README.md). "
            . sprintf("The run took %d s (%s mode).\n\n", (int) round($seconds), $mode);
        $out .= "## Machine\n\n";
        foreach ($machine as $k => $v) {
            $out .= "- $k: $v\n";
        }
        $out .= "\n## Results\n\n"
            . "Each cell is the median, with the spread in brackets (min–max over rounds, or p25–p75 over requests, as the row's "
            . "section below says). The ratio is AmoClient's median over the baseline's, measured in the same run, the two "
            . "variants alternating (round 1: AmoClient then curl, round 2: curl then AmoClient, …).\n\n"
            . $this->table();
        $misses = $this->misses();
        $out .= "\n" . ($misses === [] ? 'Every row with a target meets it.' : count($misses) . ' row(s) miss their target: '
            . implode(', ', array_map(static fn (Row $r) => "$r->id ($r->workload)", $misses)) . '.') . "\n";
        $out .= "\n## How measured\n\n$emulatorNote\n\n";
        foreach ($this->sections as $s) {
            $out .= "### $s->title\n\n" . trim($s->how) . "\n\n";
        }
        return $out;
    }
}
