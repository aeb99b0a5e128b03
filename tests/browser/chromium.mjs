// What the browser tests share: headless Chromium from the system (playwright-core downloads
// no browser), a fresh profile per run, and waits that say which step failed.

import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const STEP_TIMEOUT_MS = 10_000;
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Starts Chromium with a profile of its own; `close()` stops it and removes the profile.
export async function launch(options = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'ssed-chromium-'));
  let context;
  const close = async () => {
    await context?.close().catch(() => {});
    // Chromium's helper processes may still write to the profile a moment after it closed.
    await rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  };
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS.concat(options.args ?? []),
      ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
      timeout: STEP_TIMEOUT_MS,
    });
  } catch (e) {
    await close();
    throw e;
  }
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  return { context, close };
}

// page.waitForFunction with a label, so a timeout says which step failed and what the page saw
// (the events in window.__got, the states of the EventSources in window.__sources).
export async function waitFor(page, label, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_TIMEOUT_MS, polling: 50 });
  } catch (e) {
    const seen = await page.evaluate(() => JSON.stringify({
      got: window.__got,
      states: window.__sources?.map((s) => s.readyState),
    })).catch(() => '?');
    throw new Error(`${label}: ${e.message.split('\n')[0]}; page saw ${seen}`);
  }
}

// Runs `main`, exiting 0 when it resolves and 1 with its message when it fails or when it has
// not finished within `totalMs`; `cleanup` runs before a timed-out exit.
export function run(main, totalMs, cleanup = async () => {}) {
  const overall = setTimeout(async () => {
    console.error(`FAIL: did not finish within ${totalMs / 1000} s`);
    await Promise.race([cleanup(), new Promise((r) => setTimeout(r, 2000))]);
    process.exit(1);
  }, totalMs);
  main().then(
    () => { clearTimeout(overall); process.exit(0); },
    (e) => { console.error(`FAIL: ${e.message}`); process.exit(1); },
  );
}
