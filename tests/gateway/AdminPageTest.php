<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/**
 * GET /admin: the admin's status page. tests/e2e/admin.mjs drives it in
 * headless Chromium (Debian's chromium, through playwright-core); the
 * other tests check what a browser cannot: the credential, the form token.
 */
final class AdminPageTest extends GatewayTestCase
{
    /** A webhook delivery whose handler fails (the jsonl target is a directory): kept in failed/. */
    private function failedDelivery(): void
    {
        $unwritable = $this->dir . '/a-directory';
        @mkdir($unwritable);
        $this->configure(['GATEWAY_WEBHOOK_HANDLERS' => 'jsonl:' . $unwritable]);
        $r = $this->request('POST', '/webhooks/amocrm/' . $this->webhookSecret, [
            'form' => 'leads[status][0][id]=1000777&leads[status][0][status_id]=142&account[subdomain]=example&account[id]=31000001',
        ]);
        $this->assertSame(200, $r->status, $r->describe());
        $this->assertCount(1, $this->spool('failed'));
    }

    public function testTheAdminPageRendersInABrowserAndReplaysAFailedWebhook(): void
    {
        $chromium = getenv('CHROMIUM') ?: '/usr/bin/chromium';
        $this->assertFileExists($chromium, 'Debian\'s chromium package (./build.sh test installs it)');
        $this->assertDirectoryExists($this->root . '/tests/e2e/node_modules/playwright-core', 'run `npm ci` in tests/e2e (./build.sh test does)');
        $this->seedTokens();
        $this->failedDelivery();
        for ($i = 0; $i < 3; $i++) {
            $this->assertSame(200, $this->api('GET', '/api/info/account')->status);
        }
        $run = $this->cli(['refresh', '--force']);
        $this->assertSame(0, $run['exit'], $run['out'] . $run['err']);
        // Fixed: the replay button can now deliver it.
        $this->configure(['GATEWAY_WEBHOOK_HANDLERS' => 'jsonl:' . $this->jsonl]);

        $home = $this->dir . '/home';
        mkdir($home, 0700);
        $dump = $this->dir . '/admin-pages.html';
        $r = Proc::run(['node', $this->root . '/tests/e2e/admin.mjs', $this->server()->baseUrl(), $dump], [
            'PATH' => getenv('PATH') ?: '/usr/bin:/bin',
            'HOME' => $home,
            'TMPDIR' => $this->dir,
            'CHROMIUM' => $chromium,
            'GATEWAY_ADMIN_USER' => self::ADMIN_USER,
            'GATEWAY_ADMIN_PASSWORD' => self::ADMIN_PASSWORD,
            'E2E_SCREENSHOT_DIR' => $this->root . '/target/e2e',
        ], 120, $this->root);
        $output = "stdout:\n{$r['out']}\nstderr:\n{$r['err']}";
        $this->assertSame(0, $r['exit'], $output);
        $this->assertStringContainsString('E2E OK', $r['out'], $output);
        $this->assertStringContainsString('Connected to ' . $this->emu()->referer(), $r['out'], $output);

        // What the button did is real: the delivery reached its handler.
        $this->assertSame([], $this->spool('failed'));
        $this->assertStringContainsString('"1000777"', (string) file_get_contents($this->jsonl));
        $pages = (string) file_get_contents($dump);
        $this->assertGreaterThan(1000, strlen($pages));
        $this->assertSecretsAbsent($pages . $r['out'] . $r['err'], 'the admin page');
    }

    public function testTheAdminPageNeedsTheAdminCredential(): void
    {
        $this->seedTokens();
        $this->assertSame(401, $this->request('GET', '/admin')->status);
        $this->assertSame(401, $this->api('GET', '/admin')->status, 'an API key is not the admin credential');
        $this->assertSame(401, $this->request('POST', '/admin/webhooks/replay', ['form' => 'csrf=x'])->status);
    }

    public function testAReplayWithoutTheFormsTokenIsRefusedAndReplaysNothing(): void
    {
        $this->seedTokens();
        $this->failedDelivery();
        $this->configure(['GATEWAY_WEBHOOK_HANDLERS' => 'jsonl:' . $this->jsonl]);
        $page = $this->admin('GET', '/admin');
        $this->assertSame(200, $page->status);
        $this->assertMatchesRegularExpression('/name="csrf" value="[0-9a-f]{32}"/', $page->body);
        preg_match('/name="csrf" value="([0-9a-f]{32})"/', $page->body, $m);

        // Another site's form: the credential comes along, the SameSite cookie does not.
        $r = $this->admin('POST', '/admin/webhooks/replay', ['form' => 'csrf=' . $m[1], 'cookies' => false]);
        $this->assertSame(403, $r->status, $r->describe());
        $r = $this->admin('POST', '/admin/webhooks/replay', ['form' => 'csrf=' . str_repeat('0', 32)]);
        $this->assertSame(403, $r->status, 'a token that does not match the cookie');
        $this->assertCount(1, $this->spool('failed'), 'nothing was replayed');

        $r = $this->admin('POST', '/admin/webhooks/replay', ['form' => 'csrf=' . $m[1]]);
        $this->assertSame(303, $r->status, $r->describe());
        $this->assertSame([], $this->spool('failed'));
    }

    public function testANotConnectedGatewaySaysWhatToDo(): void
    {
        $page = $this->admin('GET', '/admin');
        $this->assertSame(200, $page->status);
        $this->assertStringContainsString('Not connected', $page->body);
        $this->assertStringContainsString('not connected to amoCRM yet', $page->body);
        $this->assertStringContainsString('href="/oauth/authorize"', $page->body);
        $this->assertStringNotContainsString('<script', $page->body);
    }
}
