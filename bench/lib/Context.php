<?php

declare(strict_types=1);

namespace AmoBench;

/**
 * What every workload shares: the emulator with its seeded leads, the pair,
 * the HTTPS front, the web stack, the PHP runner, the run's mode, and a
 * folder of its own for each token file.
 */
final class Context
{
    /** @var list<int> the seeded leads (each with a contact and custom fields) */
    public array $leadIds = [];
    /** @var array{access_token: string, refresh_token: string, expires_at: int, base_domain: string, updated_at: int} */
    public array $pair;
    public ?TlsFront $tls = null;
    public ?WebStack $web = null;
    /** @var array<string, int> */
    private array $dirs = [];

    public function __construct(
        public readonly string $root,
        public readonly string $dir,
        public readonly string $extension,
        public readonly bool $quick,
        public readonly Php $php,
        public readonly Emulator $emulator,
    ) {
        $this->pair = $emulator->mintPair();
    }

    /** A fresh folder under the run's folder. */
    public function freshDir(string $name): string
    {
        $n = $this->dirs[$name] = ($this->dirs[$name] ?? 0) + 1;
        $d = "{$this->dir}/$name-$n";
        mkdir($d, 0700, true);
        return $d;
    }

    /**
     * A token file holding the run's pair, in a folder of its own (the
     * extension keeps its lock, rate-limit log and counters beside it).
     * @param array<string, mixed> $changes e.g. base_domain, expires_at
     */
    public function tokenFile(string $name, array $changes = []): string
    {
        $path = $this->freshDir($name) . '/tokens.json';
        Emulator::writeTokenFile($path, $changes + $this->pair);
        return $path;
    }

    /**
     * AmoClient's options for the emulator over plain http (loopback only).
     * @return array<string, string>
     */
    public function httpOptions(string $tokenPath): array
    {
        return $this->emulator->clientOptions() + ['token_path' => $tokenPath, 'insecure_http' => '1'];
    }

    /**
     * Runs $run for each variant, $rounds times, the order alternating:
     * round 1 AmoClient then curl, round 2 curl then AmoClient, …
     * @param callable(string $variant, int $round): array<string, mixed> $run
     * @param list<string> $variants in round 1's order; reversed in every other round
     * @return array<string, list<array<string, mixed>>> variant => one result per round
     */
    public function alternate(int $rounds, callable $run, array $variants = [Php::AMO, Php::CURL]): array
    {
        $out = array_fill_keys($variants, []);
        for ($r = 0; $r < $rounds; $r++) {
            foreach ($r % 2 === 0 ? $variants : array_reverse($variants) as $variant) {
                $out[$variant][] = $run($variant, $r);
            }
        }
        return $out;
    }

    /**
     * A workload process whose API calls are counted at the emulator: it
     * must have made exactly $calls.
     * @param array<string, mixed> $settings
     * @return array<string, mixed>
     */
    public function runCounted(string $variant, string $script, array $settings, int $calls): array
    {
        $before = $this->emulator->apiArrivals();
        $result = $this->php->run($variant, $script, $settings);
        $made = $this->emulator->apiArrivals() - $before;
        if ($made !== $calls) {
            throw new \RuntimeException("$script ($variant) made $made API calls, expected $calls");
        }
        return $result;
    }

    public static function log(string $message): void
    {
        fwrite(STDERR, "\033[1m--> $message\033[0m\n");
    }

    /**
     * @param list<array<string, mixed>> $results
     * @return list<float>
     */
    public static function column(array $results, string $key): array
    {
        return array_map(static fn (array $r) => (float) $r[$key], $results);
    }
}
