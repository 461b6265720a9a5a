<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Deploy;

use AmoCRM\Tests\Emulator;
use AmoCRM\Tests\Gateway\Proc;
use PHPUnit\Framework\TestCase;

/**
 * The Debian package on this machine, as an admin meets it:
 * `apt-get install ./php-amocrm_*.deb`, the extension in `php -m` (CLI and
 * FPM), the gateway's CLI from /usr/share/amocrm-gateway against the
 * emulator, the token folder private to www-data; `apt-get remove` disables
 * the extension and keeps the tokens; `apt-get purge` leaves nothing.
 *
 * It changes the machine's PHP while it runs: whatever of an extension
 * installed by hand (`./build.sh install`) was there is set aside first and
 * put back at the end, and the package is purged whatever happened.
 */
final class DebPackageTest extends TestCase
{
    private const PKG = 'php-amocrm';
    private const GATEWAY = '/usr/share/amocrm-gateway';
    private const TOKENS = '/var/lib/amocrm';
    private const ETC = '/etc/amocrm-gateway';
    private const TIMERS = ['amocrm-gateway-keepalive.timer', 'amocrm-gateway-webhooks-replay.timer'];

    private string $deb;
    private string $dir;
    private string $phpVersion;
    private string $extDir;
    private ?Emulator $emulator = null;
    /** The tarball of what was there before (an extension installed by hand, a token folder). */
    private ?string $backup = null;

    protected function setUp(): void
    {
        $this->deb = (string) realpath((string) getenv('AMOCRM_DEB'));
        $this->dir = sys_get_temp_dir() . '/amocrm-deb-' . bin2hex(random_bytes(6));
        mkdir($this->dir, 0755);
        $this->phpVersion = PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION;
        $this->extDir = trim($this->sh(['php-config', '--extension-dir'])['out']);
        $this->assertNotSame('', $this->extDir);
        $this->assertContains($this->sh(['dpkg-query', '-W', '-f=${db:Status-Status}', self::PKG])['out'], ['', 'not-installed'],
            'php-amocrm is already installed on this machine: `apt-get purge php-amocrm` first; this test installs and purges it');
        $this->setAside();
    }

    protected function tearDown(): void
    {
        try {
            $this->emulator?->stop();
            if (!in_array($this->sh(['dpkg-query', '-W', '-f=${db:Status-Status}', self::PKG])['out'], ['', 'not-installed'], true)) {
                $this->apt(['purge', self::PKG]);
            }
        } finally {
            $this->restore();
            $this->sh(['rm', '-rf', $this->dir]);
        }
    }

    public function testInstallsWorksRemovesAndPurges(): void
    {
        $version = trim($this->sh(['dpkg-deb', '-f', $this->deb, 'Version'])['out']);
        $this->assertMatchesRegularExpression('/^\d+\.\d+\.\d+/', $version);
        $depends = $this->sh(['dpkg-deb', '-f', $this->deb, 'Depends'])['out'];
        $this->assertStringContainsString('phpapi-' . trim($this->sh(['php-config', '--phpapi'])['out']), $depends,
            'the package depends on the PHP API it was built for');

        // -- install
        $r = $this->apt(['install', $this->deb]);
        $this->assertSame(0, $r['exit'], "apt-get install:\n" . $r['out'] . $r['err']);
        $this->assertSame('installed', $this->sh(['dpkg-query', '-W', '-f=${db:Status-Status}', self::PKG])['out']);
        $this->assertModuleListed(true, 'after the install');
        if (is_executable("/usr/sbin/php-fpm{$this->phpVersion}")) {
            $fpm = $this->sh(["/usr/sbin/php-fpm{$this->phpVersion}", '-m']);
            $this->assertContains('amocrm', array_map('trim', explode("\n", $fpm['out'])), 'php-fpm lists amocrm: the ini is enabled for every SAPI');
        }
        $ri = $this->sh(['php', '--ri', 'amocrm']);
        $this->assertSame(0, $ri['exit'], $ri['err']);
        $this->assertMatchesRegularExpression('/^version => ' . preg_quote($version, '/') . '$/mi', $ri['out'],
            '`php --ri amocrm` shows the package\'s version');

        $this->assertOwnerMode(self::TOKENS, 'www-data', 0700);
        foreach (self::TIMERS as $t) {
            $this->assertFileExists("/etc/systemd/system/timers.target.wants/$t", "$t is enabled");
        }
        $this->assertFileExists(self::GATEWAY . '/public/index.php');
        $this->assertFileDoesNotExist(self::GATEWAY . '/bin/serve.php', 'development tools are not shipped');
        foreach (['nginx-site.conf', 'php-fpm-pool.conf', 'cron', 'gateway.env.example', 'README.md'] as $f) {
            $path = "/usr/share/doc/php-amocrm/examples/$f";
            $this->assertFileExists($path);
            $this->assertStringNotContainsString('/srv/amocrm-gateway', (string) file_get_contents($path), "$f has the package's paths");
        }

        // -- the gateway's CLI, as www-data, against the emulator
        $cli = ['runuser', '-u', 'www-data', '--', 'php', self::GATEWAY . '/bin/amocrm'];
        $this->assertSame(78, $this->sh([...$cli, 'status'])['exit'], 'without /etc/amocrm-gateway/gateway.env: 78, a configuration error');
        $this->emulator = Emulator::start('127.0.0.1');
        $this->writeGatewayEnv();
        $pairFile = $this->dir . '/pair.json';
        $t = $this->emulator->mintTokens();
        file_put_contents($pairFile, json_encode([
            'access_token' => $t['access_token'], 'refresh_token' => $t['refresh_token'],
            'expires_at' => time() + 86400, 'base_domain' => $this->emulator->referer(), 'updated_at' => time(),
        ]));
        chmod($pairFile, 0644);
        $import = $this->sh([...$cli, 'import', $pairFile]);
        $this->assertSame(0, $import['exit'], $import['out'] . $import['err']);
        $status = $this->sh([...$cli, 'status']);
        $this->assertSame(0, $status['exit'], "amocrm status:\n" . $status['out'] . $status['err']);
        $this->assertStringContainsString($this->emulator->referer(), $status['out'], 'the status names the account');
        foreach ([$status['out'], $status['err'], $import['out'], $import['err']] as $text) {
            $this->assertStringNotContainsString($t['refresh_token'], $text);
            $this->assertStringNotContainsString($t['access_token'], $text);
        }
        $this->assertOwnerMode(self::TOKENS . '/tokens.json', 'www-data', 0600);
        // The keepalive the timer runs, with the unit's own command line.
        $unit = (string) file_get_contents('/lib/systemd/system/amocrm-gateway-keepalive.service');
        $this->assertSame(1, preg_match('/^ExecStart=(.+)$/m', $unit, $m));
        $keepalive = $this->sh(['runuser', '-u', 'www-data', '--', ...explode(' ', $m[1])]);
        $this->assertSame(0, $keepalive['exit'], "the keepalive unit's command:\n" . $keepalive['out'] . $keepalive['err']);

        // -- remove: the extension disabled, the tokens kept
        $r = $this->apt(['remove', self::PKG]);
        $this->assertSame(0, $r['exit'], "apt-get remove:\n" . $r['out'] . $r['err']);
        $this->assertModuleListed(false, 'after the remove');
        $this->assertFileDoesNotExist($this->extDir . '/amocrm.so');
        $this->assertSame([], glob("/etc/php/{$this->phpVersion}/*/conf.d/*amocrm.ini") ?: [], 'no SAPI still loads the ini');
        $this->assertFileExists(self::TOKENS . '/tokens.json', 'the token pair survives a remove');
        $this->assertOwnerMode(self::TOKENS, 'www-data', 0700);
        $this->assertFileExists(self::ETC . '/gateway.env', "the admin's configuration survives a remove");
        $php = $this->sh(['php', '-r', 'echo "ok";']);
        $this->assertSame(['ok', ''], [$php['out'], $php['err']], 'PHP starts without a warning');

        // -- purge: nothing left
        $r = $this->apt(['purge', self::PKG]);
        $this->assertSame(0, $r['exit'], "apt-get purge:\n" . $r['out'] . $r['err']);
        $this->assertContains($this->sh(['dpkg-query', '-W', '-f=${db:Status-Status}', self::PKG])['out'], ['', 'not-installed'], 'dpkg forgot the package');
        $left = array_values(array_filter([
            self::TOKENS, self::ETC, self::GATEWAY, '/usr/share/doc/php-amocrm',
            "/etc/php/{$this->phpVersion}/mods-available/amocrm.ini", $this->extDir . '/amocrm.so',
            ...(glob("/etc/php/{$this->phpVersion}/*/conf.d/*amocrm.ini") ?: []),
            ...(glob("/var/lib/php/modules/{$this->phpVersion}/*/*/amocrm") ?: []),
            ...(glob("/var/lib/php/modules/{$this->phpVersion}/*/amocrm") ?: []),
            ...(glob('/etc/systemd/system/*/amocrm-gateway-*') ?: []),
            ...(glob('/etc/systemd/system/amocrm-gateway-*') ?: []),
            ...(glob('/lib/systemd/system/amocrm-gateway-*') ?: []),
            ...(glob('/var/lib/systemd/deb-systemd-helper-*/*amocrm-gateway-*') ?: []),
            ...(glob('/var/lib/systemd/deb-systemd-helper-*/*/*amocrm-gateway-*') ?: []),
        ], static fn (string $p) => file_exists($p) || is_link($p)));
        $this->assertSame([], $left, 'the purge left these behind');
        $this->assertModuleListed(false, 'after the purge');
    }

    private function writeGatewayEnv(): void
    {
        $env = [
            'AMOCRM_CLIENT_ID' => 'emulator-client-id',
            'AMOCRM_CLIENT_SECRET' => 'emulator-client-secret',
            'AMOCRM_REDIRECT_URI' => 'http://localhost:' . $this->emulator->port . '/oauth/callback',
            'AMOCRM_ALLOWED_DOMAINS' => 'localhost',
            'AMOCRM_INSECURE_HTTP' => '1',
            'AMOCRM_OAUTH_HOST' => 'localhost:' . $this->emulator->port,
            'GATEWAY_API_KEYS' => 'site-key-' . bin2hex(random_bytes(8)),
            'GATEWAY_ADMIN_USER' => 'admin',
            'GATEWAY_ADMIN_PASSWORD' => bin2hex(random_bytes(8)),
            'GATEWAY_SECRET' => bin2hex(random_bytes(24)),
            'GATEWAY_WEBHOOK_SECRET' => 'wh' . bin2hex(random_bytes(10)),
            // As the package's example .env: the data and the pair in the token folder.
            'GATEWAY_DATA_DIR' => self::TOKENS,
        ];
        $example = (string) file_get_contents('/usr/share/doc/php-amocrm/examples/gateway.env.example');
        $this->assertMatchesRegularExpression('#^GATEWAY_DATA_DIR=/var/lib/amocrm$#m', $example);
        $text = '';
        foreach ($env as $k => $v) {
            $text .= "$k=$v\n";
        }
        // As the example README says: root:www-data 0640. The gateway finds it
        // through /usr/share/amocrm-gateway/.env, without GATEWAY_ENV_FILE.
        file_put_contents(self::ETC . '/gateway.env', $text);
        chmod(self::ETC . '/gateway.env', 0640);
        chgrp(self::ETC . '/gateway.env', 'www-data');
    }

    private function assertModuleListed(bool $listed, string $when): void
    {
        $r = $this->sh(['php', '-m']);
        $this->assertSame(0, $r['exit'], $r['err']);
        $this->assertSame('', $r['err'], "php -m warns $when");
        $modules = array_map('trim', explode("\n", $r['out']));
        $this->assertSame($listed, in_array('amocrm', $modules, true), ($listed ? 'php -m lists amocrm ' : 'php -m does not list amocrm ') . $when);
    }

    private function assertOwnerMode(string $path, string $owner, int $mode): void
    {
        clearstatcache();
        $this->assertFileExists($path);
        $this->assertSame($owner, posix_getpwuid((int) fileowner($path))['name'] ?? null, "$path's owner");
        $this->assertSame(sprintf('%o', $mode), sprintf('%o', fileperms($path) & 0777), "$path's mode");
    }

    /** The paths a hand-made install (./build.sh install) and an earlier token folder leave. */
    private function preexisting(): array
    {
        return array_values(array_filter([
            $this->extDir . '/amocrm.so',
            "/etc/php/{$this->phpVersion}/mods-available/amocrm.ini",
            ...(glob("/etc/php/{$this->phpVersion}/*/conf.d/*amocrm.ini") ?: []),
            ...(glob("/var/lib/php/modules/{$this->phpVersion}/*/*/amocrm") ?: []),
            ...(glob("/var/lib/php/modules/{$this->phpVersion}/*/amocrm") ?: []),
            self::TOKENS, self::ETC,
        ], static fn (string $p) => file_exists($p) || is_link($p)));
    }

    private function setAside(): void
    {
        $paths = $this->preexisting();
        if ($paths === []) {
            return;
        }
        $this->backup = $this->dir . '/before.tar';
        $r = $this->sh(['tar', '--absolute-names', '-cpf', $this->backup, ...$paths]);
        $this->assertSame(0, $r['exit'], 'setting aside what was there: ' . $r['err']);
        $this->sh(['rm', '-rf', ...$paths]);
    }

    private function restore(): void
    {
        if ($this->backup !== null) {
            $r = $this->sh(['tar', '--absolute-names', '-xpf', $this->backup]);
            $this->backup = null;
            $this->assertSame(0, $r['exit'], 'putting back what was there: ' . $r['err']);
        }
    }

    /** @return array{exit:int, out:string, err:string} */
    private function apt(array $args): array
    {
        return $this->sh(['apt-get', '-y', '-q', '--no-install-recommends', ...$args], ['DEBIAN_FRONTEND' => 'noninteractive'], 300);
    }

    /** @return array{exit:int, out:string, err:string} */
    private function sh(array $cmd, array $env = [], float $timeout = 60): array
    {
        return Proc::run($cmd, $env + ['PATH' => '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL' => 'C'], $timeout);
    }
}
