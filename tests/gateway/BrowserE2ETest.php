<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * The OAuth flow in headless Chromium (Debian's chromium, driven by
 * playwright-core from tests/e2e): tests/e2e/oauth.mjs does the clicking,
 * this test serves the gateway and checks the outcome.
 */
final class BrowserE2ETest extends GatewayTestCase
{
    public function testAnAdminConnectsTheGatewayInABrowser(): void
    {
        $chromium = getenv('CHROMIUM') ?: '/usr/bin/chromium';
        $script = $this->root . '/tests/e2e/oauth.mjs';
        $this->assertFileExists($chromium, 'Debian\'s chromium package (./build.sh test installs it)');
        $this->assertDirectoryExists($this->root . '/tests/e2e/node_modules/playwright-core', 'run `npm ci` in tests/e2e (./build.sh test does)');
        $shots = $this->root . '/target/e2e';
        foreach (glob("$shots/*.png") ?: [] as $old) {
            unlink($old);
        }

        $url = $this->server()->baseUrl();
        $home = $this->dir . '/home';
        mkdir($home, 0700);
        $r = Proc::run(['node', $script, $url, $this->emu()->referer()], [
            'PATH' => getenv('PATH') ?: '/usr/bin:/bin',
            'HOME' => $home,
            'TMPDIR' => $this->dir,
            'CHROMIUM' => $chromium,
            'GATEWAY_ADMIN_USER' => self::ADMIN_USER,
            'GATEWAY_ADMIN_PASSWORD' => self::ADMIN_PASSWORD,
            'E2E_SCREENSHOT_DIR' => $shots,
        ], 120, $this->root);
        $output = "stdout:\n{$r['out']}\nstderr:\n{$r['err']}";
        $this->assertSame(0, $r['exit'], $output);
        $this->assertStringContainsString('consent page: Предоставить доступ', $r['out'], $output);
        $this->assertMatchesRegularExpression('/callback page: .*Connected/', $r['out'], $output);
        $this->assertStringContainsString('status: authorized: true, base_domain: ' . $this->emu()->referer(), $r['out'], $output);
        $this->assertStringContainsString('E2E OK', $r['out'], $output);
        $this->assertSecretsAbsent($r['out'] . $r['err'], 'the browser\'s pages');

        // What the browser did is real: one code exchanged, the pair stored and usable.
        $this->assertSame(1, $this->emu()->tokenCalls('authorization_code/ok'));
        $this->assertSame($this->emu()->referer(), $this->storedPair()['base_domain']);
        $this->assertSame(31000001, $this->api('GET', '/api/info/account')->json()['id'] ?? null);
        foreach (['1-consent.png', '2-connected.png', '3-status.png'] as $png) {
            $this->assertFileExists("$shots/$png");
            $this->assertGreaterThan(1000, filesize("$shots/$png"), $png);
        }
    }
}
