// Browser E2E: the admin status page in headless Chromium.
//
//   node tests/e2e/admin.mjs <gateway base URL> <HTML dump file>
//
// Env: GATEWAY_ADMIN_USER, GATEWAY_ADMIN_PASSWORD, CHROMIUM, E2E_SCREENSHOT_DIR.
// Opens /admin, checks that it renders with live data (connected, the token
// bars, a chart with points, a failed webhook), presses "Replay failed
// deliveries" and checks the page that comes back. Writes every page's HTML
// to the dump file for the test to search for secrets. Prints one line per
// check and "E2E OK" at the end; exit 0 only then.
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, run, shots } from './browser.mjs';

const [gateway, dump] = process.argv.slice(2);
if (!gateway || !dump) {
    console.error('usage: node admin.mjs <gateway base URL> <HTML dump file>');
    process.exit(2);
}
writeFileSync(dump, '');

await run('admin-failure.png', { viewport: { width: 1100, height: 900 } }, async (page) => {
    const violations = [];
    page.on('console', (m) => {
        if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text());
    });

    const response = await page.goto(`${gateway}/admin`);
    appendFileSync(dump, await page.content());
    check(response.status() === 200, '/admin answers 200');
    check(/default-src 'none'/.test(response.headers()['content-security-policy'] ?? ''), 'the page has a strict CSP');
    const connected = await page.innerText('#connected');
    console.log(`connection: ${connected}`);
    check(/^Connected to /.test(connected), 'it says "Connected to …"');
    check(await page.locator('meter#access-life').count() === 1, 'the access token bar is there');
    check(await page.locator('meter#refresh-life').count() === 1, 'the refresh token bar is there');
    const access = Number(await page.getAttribute('meter#access-life', 'value'));
    check(access > 80000 && access <= 86400, `the access token bar shows about a day left (${access} s)`);

    // The chart: five series of 1440 points, and the calls just made are on it.
    const series = await page.$$eval('#calls-chart polyline.series', (ls) => ls.map((l) => ({
        status: l.dataset.status,
        points: l.getAttribute('points').trim().split(/\s+/).map((p) => p.split(',').map(Number)),
    })));
    check(series.length === 5, 'five series (2xx, 4xx, 429, 5xx, error)');
    check(series.every((s) => s.points.length === 1440), 'each has 1440 points (one a minute)');
    const ok2xx = series.find((s) => s.status === '2xx');
    const baseline = Math.max(...ok2xx.points.map((p) => p[1]));
    const raised = ok2xx.points.filter((p) => p[1] < baseline).length;
    console.log(`2xx points above zero: ${raised}; legend: ${(await page.innerText('.legend')).replace(/\s+/g, ' ')}`);
    check(raised >= 1, 'the 2xx series has points above zero (the calls just made)');
    const box = await page.locator('#calls-chart').boundingBox();
    check(box !== null && box.width > 500 && box.height > 100, `the chart is drawn (${box?.width}×${box?.height})`);

    const refreshes = await page.$$eval('#refreshes tr.ok', (rows) => rows.map((r) => r.innerText.replace(/\s+/g, ' ')));
    console.log(`refreshes: ${refreshes.join(' | ')}`);
    check(refreshes.length === 1, 'the refresh just made is listed, ok');

    const failedBefore = Number(await page.innerText('#failed'));
    console.log(`webhooks: pending ${await page.innerText('#pending')}, failed ${failedBefore}`);
    check(failedBefore === 1, 'one failed webhook delivery is shown');
    await page.screenshot({ path: join(shots, 'admin-1.png'), fullPage: true });

    // Replay: the form posts back with its token; the page comes back with the outcome.
    await Promise.all([
        page.waitForURL((url) => url.pathname === '/admin' && url.searchParams.has('replayed'), { waitUntil: 'load' }),
        page.click('#replay'),
    ]);
    appendFileSync(dump, await page.content());
    const replayed = await page.innerText('#replayed');
    console.log(`after replay: ${replayed}; failed ${await page.innerText('#failed')}`);
    check(replayed === 'replayed: 1 delivered, 0 still failing', 'the replay delivered the failed webhook');
    check(Number(await page.innerText('#failed')) === 0, 'no failed delivery is left');
    check(await page.locator('#replay').isDisabled(), 'the button is disabled with nothing to replay');
    await page.screenshot({ path: join(shots, 'admin-2.png'), fullPage: true });
    check(violations.length === 0, `no CSP violation (${violations.join('; ')})`);
});
