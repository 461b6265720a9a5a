<?php

declare(strict_types=1);

namespace AmoBench;

/** What the numbers were measured on. */
final class Machine
{
    /**
     * Every workload process reported opcache on (Php::run and FirstCall
     * refuse a result without it).
     * @return array<string, string>
     */
    public static function describe(string $root, string $extension): array
    {
        $cpuinfo = (string) @file_get_contents('/proc/cpuinfo');
        $meminfo = (string) @file_get_contents('/proc/meminfo');
        $model = preg_match('/^model name\s*:\s*(.+)$/m', $cpuinfo, $m) ? trim($m[1]) : php_uname('m');
        $ram = preg_match('/^MemTotal:\s+(\d+) kB/m', $meminfo, $m) ? sprintf('%.1f GiB', $m[1] / 1048576) : '?';
        $debian = trim((string) @file_get_contents('/etc/debian_version'));
        $git = trim((string) shell_exec('git -C ' . escapeshellarg($root) . ' rev-parse --short HEAD 2>/dev/null'));
        $dirty = trim((string) shell_exec('git -C ' . escapeshellarg($root) . ' status --porcelain --untracked-files=no 2>/dev/null')) !== '';
        $curl = function_exists('curl_version') ? curl_version() : [];
        $ext = Command::run([PHP_BINARY, '-n', '-d', "extension=$extension", '-r', 'echo phpversion("amocrm");'], ['PATH' => '/usr/bin:/bin'], 30);
        return [
            'CPU' => $model,
            'cores' => (string) (int) trim((string) shell_exec('nproc')),
            'RAM' => $ram,
            'kernel' => php_uname('r'),
            'Debian' => $debian !== '' ? $debian : 'not Debian',
            'PHP' => PHP_VERSION . ' (' . (PHP_ZTS ? 'ZTS' : 'NTS') . '), opcache on in every process measured (CLI: `-n -d opcache.enable_cli=1`; php-fpm: `-n -d opcache.enable=1`), JIT off',
            'libcurl' => ($curl['version'] ?? '?') . ' with ' . ($curl['ssl_version'] ?? '?'),
            'amocrm extension' => trim($ext['out']) . ($git !== '' ? ", commit $git" . ($dirty ? ' with uncommitted changes' : '') : ''),
            'date' => gmdate('Y-m-d H:i') . ' UTC',
        ];
    }
}
