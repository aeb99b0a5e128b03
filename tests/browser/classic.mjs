// Chromium's own EventSource on a stream served by a PHP program (tests/php_browser.rs): it
// subscribes to every topic, listens to `message` and the given event types, and prints what
// it received once it has COUNT events, as one JSON line: [{type, id, data}, ...] where id is
// the event's lastEventId.
//
//   node tests/browser/classic.mjs http://127.0.0.1:PORT COUNT [TYPE...]
//
// The page is the server's own /health, so that the EventSource is same-origin. Exits
// non-zero with a message on failure.

import { launch, run, waitFor, STEP_TIMEOUT_MS } from './chromium.mjs';

const [base, countArg, ...types] = process.argv.slice(2);
const count = Number(countArg);
if (!base || !/^http:\/\//.test(base) || !(count > 0)) {
  console.error('usage: node classic.mjs http://HOST:PORT COUNT [TYPE...]');
  process.exit(2);
}

let browser;

async function main() {
  browser = await launch();
  const page = await browser.context.newPage();
  const res = await page.goto(base + '/health', { timeout: STEP_TIMEOUT_MS });
  if (!res || res.status() !== 200) throw new Error(`GET /health: HTTP ${res && res.status()}`);
  await page.evaluate((types) => {
    window.__got = [];
    const record = (e) => window.__got.push({ type: e.type, id: e.lastEventId, data: e.data });
    window.__es = new EventSource('/events');
    for (const type of ['message', ...types]) window.__es.addEventListener(type, record);
  }, types);
  // The publisher waits for this subscriber, then sends everything at once.
  await waitFor(page, `${count} events received`, (n) => window.__got.length >= n, count);
  console.log(JSON.stringify(await page.evaluate(() => window.__got)));
  await browser.close();
}

run(main, 40_000, async () => browser?.close());
