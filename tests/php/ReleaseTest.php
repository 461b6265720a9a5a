<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\Attributes\DataProvider;
use PHPUnit\Framework\TestCase;

/**
 * One version and one license everywhere (issue 12.5), and the release step
 * that moves the version: `./build.sh release X.Y.Z`.
 */
final class ReleaseTest extends TestCase
{
    /** What `./build.sh release` rewrites, copied to a scratch folder for each case. */
    private const RELEASE_FILES = ['build.sh', 'Cargo.toml', 'Cargo.lock', 'README.md', 'CHANGELOG.md', 'php/composer.json', 'php/stubs/amocrm.stub.php'];

    private static function root(): string
    {
        return dirname(__DIR__, 2);
    }

    private static function read(string $path): string
    {
        $text = file_get_contents(self::root() . '/' . $path);
        self::assertIsString($text, $path);
        return $text;
    }

    /** Cargo.toml's [package] version: the source of the number. */
    private static function cargoVersion(string $toml): string
    {
        self::assertSame(1, preg_match('/^\[package\]\n(?:(?!\[)[^\n]*\n)*?version = "([^"]+)"/m', $toml, $m), 'Cargo.toml has a [package] version');
        return $m[1];
    }

    /** @return array<string, string> where the version shows => what it shows there */
    private static function shownVersions(string $dir, string $ext): array
    {
        $read = fn (string $p): string => (string) file_get_contents("$dir/$p");
        $shown = [];
        preg_match('/^name = "amocrm"\nversion = "([^"]+)"/m', $read('Cargo.lock'), $m);
        $shown['Cargo.lock'] = $m[1] ?? '(no amocrm entry)';
        preg_match('/^Version (\S+) /m', $read('README.md'), $m);
        $shown['README'] = $m[1] ?? '(no "Version …" line)';
        preg_match('/^## \[(?!Unreleased\])([^\]]+)\] - \d{4}-\d{2}-\d{2}$/m', $read('CHANGELOG.md'), $m);
        $shown['CHANGELOG'] = $m[1] ?? '(no released heading)';
        preg_match('/from the amocrm extension (\S+);/', $read('php/stubs/amocrm.stub.php'), $m);
        $shown['stubs'] = $m[1] ?? '(no header)';
        $composer = json_decode($read('php/composer.json'), true, 512, JSON_THROW_ON_ERROR);
        if (isset($composer['version'])) {
            $shown['composer.json'] = $composer['version'];
        }
        if ($ext !== '') {
            $ri = (string) shell_exec(escapeshellarg(PHP_BINARY) . ' -n -d extension=' . escapeshellarg($ext) . ' --ri amocrm 2>&1');
            preg_match('/^version => (\S+)$/m', $ri, $m);
            $shown['php --ri amocrm'] = $m[1] ?? "(no version row in: $ri)";
            $shown['phpversion()'] = trim((string) shell_exec(escapeshellarg(PHP_BINARY) . ' -n -d extension=' . escapeshellarg($ext)
                . ' -r ' . escapeshellarg('echo phpversion("amocrm");') . ' 2>&1'));
        }
        return $shown;
    }

    public function testEveryPlaceShowsCargoTomlsVersion(): void
    {
        $version = self::cargoVersion(self::read('Cargo.toml'));
        $this->assertMatchesRegularExpression('/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/', $version);
        $shown = self::shownVersions(self::root(), (string) getenv('AMOCRM_EXT'));
        $this->assertCount(count($shown), array_filter($shown, fn ($v) => $v === $version), "Cargo.toml says $version; shown: " . json_encode($shown));
        $this->assertStringContainsString("## [Unreleased]\n", self::read('CHANGELOG.md'), 'Keep a Changelog: an Unreleased section on top');
    }

    public function testEveryManifestSaysMit(): void
    {
        $license = self::read('LICENSE');
        $this->assertStringStartsWith("MIT License\n\nCopyright (c) 2026 the amocrm authors\n", $license);
        $this->assertStringContainsString('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND', $license);
        $members = ['Cargo.toml'];
        preg_match('/^members = \[([^\]]*)\]/m', self::read('Cargo.toml'), $m);
        foreach (explode(',', $m[1] ?? '') as $member) {
            $member = trim($member, " \"\n");
            if ($member !== '' && $member !== '.') {
                $members[] = "$member/Cargo.toml";
            }
        }
        $this->assertGreaterThanOrEqual(3, count($members), 'the workspace members: ' . implode(', ', $members));
        foreach ($members as $toml) {
            $this->assertMatchesRegularExpression('/^license = "MIT"$/m', self::read($toml), $toml);
        }
        foreach (['php/composer.json', 'tests/e2e/package.json'] as $json) {
            $this->assertSame('MIT', json_decode(self::read($json), true, 512, JSON_THROW_ON_ERROR)['license'] ?? null, $json);
        }
    }

    /** @return array<string, array{string, string}> a version => the part of the refusal that names why */
    public static function refusedVersions(): array
    {
        return [
            'two numbers' => ['9.1', 'is not a semantic version'],
            'a leading v' => ['v9.1.0', 'is not a semantic version'],
            'a leading zero' => ['09.1.0', 'is not a semantic version'],
            'an empty pre-release' => ['9.1.0-', 'is not a semantic version'],
            'text' => ['latest', 'is not a semantic version'],
            'the same' => ['@', 'is not greater than the current version'],
            'lower' => ['0.0.1', 'is not greater than the current version'],
            'a pre-release of the same' => ['@-rc.1', 'is not greater than the current version'],
        ];
    }

    /** A scratch copy of what the release step touches, with $unreleased as the whole "Unreleased" section (whatever the repository's holds). */
    private function scratch(string $unreleased): string
    {
        $dir = sys_get_temp_dir() . '/amocrm-release-' . bin2hex(random_bytes(4));
        foreach (self::RELEASE_FILES as $f) {
            @mkdir(dirname("$dir/$f"), 0700, true);
            copy(self::root() . "/$f", "$dir/$f");
        }
        chmod("$dir/build.sh", 0755);
        $log = preg_replace('/^## \\[Unreleased\\]\n\n.*?(?=^## \\[)/ms', "## [Unreleased]\n\n" . str_replace(['\\', '$'], ['\\\\', '\\$'], $unreleased), (string) file_get_contents("$dir/CHANGELOG.md"), 1);
        file_put_contents("$dir/CHANGELOG.md", $log);
        return $dir;
    }

    /** @return array{int, string} */
    private function release(string $dir, string $version): array
    {
        exec('bash ' . escapeshellarg("$dir/build.sh") . ' release ' . escapeshellarg($version) . ' 2>&1', $out, $rc);
        return [$rc, implode("\n", $out)];
    }

    /** @return array<string, string> */
    private function snapshot(string $dir): array
    {
        $all = [];
        foreach (self::RELEASE_FILES as $f) {
            $all[$f] = (string) file_get_contents("$dir/$f");
        }
        return $all;
    }

    /** @dataProvider refusedVersions */
    #[DataProvider('refusedVersions')]
    public function testReleaseRefuses(string $version, string $says): void
    {
        $current = self::cargoVersion(self::read('Cargo.toml'));
        $version = str_replace('@', $current, $version);
        $dir = $this->scratch("### Fixed\n\n- something\n\n");
        try {
            $before = $this->snapshot($dir);
            [$rc, $out] = $this->release($dir, $version);
            $this->assertSame(2, $rc, $out);
            $this->assertStringContainsString("$version $says", str_replace("'", '', $out));
            $this->assertSame($before, $this->snapshot($dir), 'a refused release changes nothing');
        } finally {
            exec('rm -rf ' . escapeshellarg($dir));
        }
    }

    public function testReleaseRefusesAnEmptyUnreleasedSection(): void
    {
        $dir = $this->scratch('');
        try {
            $before = $this->snapshot($dir);
            [$rc, $out] = $this->release($dir, '99.0.0');
            $this->assertSame(2, $rc, $out);
            $this->assertStringContainsString("Unreleased section is empty", $out);
            $this->assertSame($before, $this->snapshot($dir));
        } finally {
            exec('rm -rf ' . escapeshellarg($dir));
        }
    }

    /** @return array<string, array{string}> */
    public static function acceptedVersions(): array
    {
        return [
            'a patch' => ['+0.0.1'],
            'a minor' => ['+0.1.0'],
            'a major' => ['+1.0.0'],
            'a pre-release of the next major' => ['+1.0.0-rc.1'],
        ];
    }

    /**
     * Moves the version everywhere and turns "Unreleased" into the new section, a fresh "Unreleased" above it.
     * @dataProvider acceptedVersions
     */
    #[DataProvider('acceptedVersions')]
    public function testReleaseMovesTheVersionEverywhere(string $bump): void
    {
        $current = self::cargoVersion(self::read('Cargo.toml'));
        [$major, $minor, $patch] = array_map('intval', explode('.', explode('-', $current)[0]));
        [$core, $pre] = array_pad(explode('-', substr($bump, 1), 2), 2, null);
        [$dM, $dm, $dp] = array_map('intval', explode('.', $core));
        $version = $dM ? ($major + 1) . '.0.0' : ($dm ? "$major." . ($minor + 1) . '.0' : "$major.$minor." . ($patch + 1));
        $version .= $pre !== null ? "-$pre" : '';
        $dir = $this->scratch("### Fixed\n\n- the thing that was broken\n\n");
        try {
            [$rc, $out] = $this->release($dir, $version);
            $this->assertSame(0, $rc, $out);
            $this->assertSame($version, self::cargoVersion((string) file_get_contents("$dir/Cargo.toml")));
            $shown = self::shownVersions($dir, '');
            $this->assertSame(array_fill_keys(array_keys($shown), $version), $shown);
            $log = (string) file_get_contents("$dir/CHANGELOG.md");
            $this->assertMatchesRegularExpression(
                '/^## \[Unreleased\]\n\n## \[' . preg_quote($version, '/') . '\] - ' . gmdate('Y-m-d') . "\n\n### Fixed\n\n- the thing that was broken\n\n## \[" . preg_quote($current, '/') . '\]/m',
                $log
            );
            // Nothing else moved: every other line of every file is as it was.
            foreach (self::RELEASE_FILES as $f) {
                $old = explode("\n", (string) file_get_contents(self::root() . "/$f"));
                $new = explode("\n", (string) file_get_contents("$dir/$f"));
                $changed = array_diff($new, $old);
                foreach ($changed as $line) {
                    $this->assertTrue(str_contains($line, $version) || $line === '' || str_contains($line, 'the thing that was broken') || $line === '### Fixed',
                        "$f: a line changed that does not carry the version: $line");
                }
            }
            // The second release from the new one must be greater again.
            [$rc, $out] = $this->release($dir, $version);
            $this->assertSame(2, $rc, $out);
        } finally {
            exec('rm -rf ' . escapeshellarg($dir));
        }
    }
}
