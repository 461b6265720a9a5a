// Browser E2E: an admin connects the gateway to amoCRM in headless Chromium.
//
//   node tests/e2e/oauth.mjs <gateway base URL> [<expected account host>]
//
// Env: GATEWAY_ADMIN_USER, GATEWAY_ADMIN_PASSWORD (the Basic credential),
// CHROMIUM (default /usr/bin/chromium), E2E_SCREENSHOT_DIR (default target/e2e).
// Opens /oauth/authorize, sees amoCRM's (the emulator's) consent page, clicks
// Allow, lands on the gateway's callback page, then checks /oauth/status.
// Prints one line per step and "E2E OK" at the end; exit 0 only then.
import { join } from 'node:path';
import { check, run, shots } from './browser.mjs';

const [gateway, expectedHost] = process.argv.slice(2);
if (!gateway) {
    console.error('usage: node oauth.mjs <gateway base URL> [<expected account host>]');
    process.exit(2);
}

await run('failure.png', { locale: 'ru-RU', viewport: { width: 1024, height: 700 } }, async (page) => {
    // 1. The admin opens the gateway's authorize link: amoCRM's consent page.
    await page.goto(`${gateway}/oauth/authorize`);
    await page.waitForSelector('#allow');
    const title = await page.title();
    console.log(`consent page: ${title} (${new URL(page.url()).host})`);
    check(title === 'Предоставить доступ', 'the consent page title is "Предоставить доступ"');
    check(new URL(page.url()).pathname === '/oauth', 'the browser is on amoCRM\'s /oauth page');
    await page.screenshot({ path: join(shots, '1-consent.png'), fullPage: true });

    // 2. Allow: amoCRM redirects to the gateway's callback.
    await Promise.all([
        page.waitForURL((url) => url.href.startsWith(`${gateway}/oauth/callback`), { waitUntil: 'load' }),
        page.click('#allow'),
    ]);
    const text = await page.innerText('body');
    console.log(`callback page: ${text.replace(/\s+/g, ' ').trim().slice(0, 300)}`);
    check(/Connected/.test(text) || /Connected/.test(await page.title()), 'the callback page says "Connected"');
    if (expectedHost) {
        check(text.includes(expectedHost), `the callback page names the account ${expectedHost}`);
    }
    await page.screenshot({ path: join(shots, '2-connected.png'), fullPage: true });

    // 3. The status page agrees.
    const response = await page.goto(`${gateway}/oauth/status`);
    check(response.status() === 200, '/oauth/status answers 200');
    const status = JSON.parse(await response.text());
    console.log(`status: authorized: ${status.authorized}, base_domain: ${status.base_domain}`);
    check(status.authorized === true, '/oauth/status says "authorized": true');
    if (expectedHost) {
        check(status.base_domain === expectedHost, `base_domain is ${expectedHost}`);
    }
    await page.screenshot({ path: join(shots, '3-status.png'), fullPage: true });
    console.log(`screenshots: ${shots}`);
});
