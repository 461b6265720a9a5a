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
import { chromium } from 'playwright-core';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [gateway, dump] = process.argv.slice(2);
if (!gateway || !dump) {
    console.error('usage: node admin.mjs <gateway base URL> <HTML dump file>');
    process.exit(2);
}
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const shots = process.env.E2E_SCREENSHOT_DIR || join(repo, 'target/e2e');
mkdirSync(shots, { recursive: true });
writeFileSync(dump, '');
const userDataDir = mkdtempSync(join(tmpdir(), 'amocrm-e2e-chromium-'));
const watchdog = setTimeout(() => {
    console.error('E2E: timed out after 90 s');
    process.exit(3);
}, 90_000);

function check(ok, what) {
    if (!ok) {
        throw new Error(`check failed: ${what}`);
    }
    console.log(`ok: ${what}`);
}

let context;
let failed = false;
try {
    context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        headless: true,
        args: [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
        httpCredentials: {
            username: process.env.GATEWAY_ADMIN_USER ?? '',
            password: process.env.GATEWAY_ADMIN_PASSWORD ?? '',
        },
        viewport: { width: 1100, height: 900 },
        timeout: 30_000,
    });
    const page = context.pages()[0] ?? await context.newPage();
    page.setDefaultTimeout(15_000);
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
    console.log('E2E OK');
} catch (e) {
    failed = true;
    console.error(`E2E FAILED: ${e && e.stack ? e.stack : e}`);
    try {
        const page = context?.pages()[0];
        if (page) {
            await page.screenshot({ path: join(shots, 'admin-failure.png'), fullPage: true });
            console.error(`at ${page.url()}:\n${(await page.content()).slice(0, 3000)}`);
        }
    } catch {
        // the screenshot is a courtesy
    }
} finally {
    await context?.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
    clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
