// What the browser E2E drivers share: headless Chromium (Debian's, through
// playwright-core, with the admin's Basic credential), a watchdog, one line
// per check, and on failure a screenshot and the page's HTML.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const shots = process.env.E2E_SCREENSHOT_DIR || join(repo, 'target/e2e');

export function check(ok, what) {
    if (!ok) {
        throw new Error(`check failed: ${what}`);
    }
    console.log(`ok: ${what}`);
}

/**
 * Runs `steps(page)` in a fresh browser profile, then exits the process:
 * 0 when the steps finished ("E2E OK" printed), 1 when they threw, 3 when
 * they took over 90 s. `failureShot` names the screenshot taken on failure.
 */
export async function run(failureShot, options, steps) {
    mkdirSync(shots, { recursive: true });
    const userDataDir = mkdtempSync(join(tmpdir(), 'amocrm-e2e-chromium-'));
    // Never hang a test run.
    const watchdog = setTimeout(() => {
        console.error('E2E: timed out after 90 s');
        process.exit(3);
    }, 90_000);
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
            timeout: 30_000,
            ...options,
        });
        const page = context.pages()[0] ?? await context.newPage();
        page.setDefaultTimeout(15_000);
        await steps(page);
        console.log('E2E OK');
    } catch (e) {
        failed = true;
        console.error(`E2E FAILED: ${e && e.stack ? e.stack : e}`);
        try {
            const page = context?.pages()[0];
            if (page) {
                await page.screenshot({ path: join(shots, failureShot), fullPage: true });
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
}
