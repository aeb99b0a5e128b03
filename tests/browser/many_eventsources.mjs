// Headless Chromium opens many EventSources to one HTTPS origin (ssed behind nginx, run by
// tests/nginx.rs) and every one receives an event published after they all opened.
//
//   node tests/browser/many_eventsources.mjs https://127.0.0.1:PORT PUBLISH_TOKEN [COUNT]
//
// Over HTTP/1.1 a browser keeps at most six connections per origin, so a seventh EventSource
// would wait for one of them to close; over HTTP/2 they all share one connection. The page is
// checked to have come over h2, and all COUNT (default 10) must be open at once. The
// certificate is self-signed, so certificate errors are ignored. Exits non-zero on failure.

import { launch, run, waitFor, STEP_TIMEOUT_MS } from './chromium.mjs';

const [origin, token, countArg = '10'] = process.argv.slice(2);
const count = Number(countArg);
if (!origin || !/^https:\/\//.test(origin) || !token || !(count > 0)) {
  console.error('usage: node many_eventsources.mjs https://HOST:PORT PUBLISH_TOKEN [COUNT]');
  process.exit(2);
}
const topic = `many-${process.pid}-${Date.now()}`;

async function test(context) {
  const page = await context.newPage();
  // A page of the proxy's origin, so that the EventSources and the publish are same-origin.
  const res = await page.goto(origin + '/health', { timeout: STEP_TIMEOUT_MS });
  if (!res || res.status() !== 200) throw new Error(`GET /health: HTTP ${res && res.status()}`);
  const protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  if (protocol !== 'h2') throw new Error(`the page came over ${protocol}, not h2`);

  await page.evaluate(({ topic, count }) => {
    window.__got = Array(count).fill(null);
    window.__sources = [];
    for (let i = 0; i < count; i++) {
      const source = new EventSource('/events?topic=' + encodeURIComponent(topic));
      source.onmessage = (e) => { window.__got[i] = e.data; };
      window.__sources.push(source);
    }
  }, { topic, count });
  // Open means ssed answered each subscription, so none can miss what is published next.
  await waitFor(page, `all ${count} EventSources open`,
    () => window.__sources.every((s) => s.readyState === EventSource.OPEN));

  const data = `to all ${count}`;
  const published = await page.evaluate(async ({ topic, token, data }) => {
    const res = await fetch('/publish', {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
      body: new URLSearchParams({ topic, data }),
    });
    return { status: res.status, body: await res.text() };
  }, { topic, token, data });
  if (published.status !== 200) throw new Error(`publish: HTTP ${published.status}: ${published.body}`);

  await waitFor(page, `the event received by all ${count}`,
    (data) => window.__got.every((d) => d === data), data);
  await page.close();
  console.log(`ok: ${count} EventSources open at once over h2 through the proxy, `
    + `and all received the event published after they opened`);
}

let browser;

async function main() {
  browser = await launch({ args: ['--ignore-certificate-errors'], ignoreHTTPSErrors: true });
  try {
    await test(browser.context);
  } finally {
    await browser.close();
  }
}

run(main, 40_000, async () => browser?.close());
