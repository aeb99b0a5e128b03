// Headless-Chromium end-to-end test: the browser's own EventSource against a running ssed.
//
//   node tests/browser/eventsource.mjs http://127.0.0.1:PORT [viewer.png]
//
// Proves that Chromium receives a default event, a named event, multi-line data (CRLF, CR and LF
// all arrive as LF) with the published id as lastEventId, and that after the stream drops it
// reconnects with Last-Event-ID and gets what it missed by replay. With a PNG path it also
// screenshots the viewer page at `/` showing a few events. Exits non-zero with a message on failure.

import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

const TOTAL_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 10_000;
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const [base, pngPath] = process.argv.slice(2);
if (!base || !/^http:\/\//.test(base)) {
  console.error('usage: node eventsource.mjs http://HOST:PORT [viewer.png]');
  process.exit(2);
}

// Unique per run, so that events left in ssed's history by an earlier run never match.
const run = `${process.pid}-${Date.now()}`;
const topic = `browser-${run}`;

let cleanup = async () => {};
const overall = setTimeout(async () => {
  console.error(`FAIL: browser test did not finish within ${TOTAL_TIMEOUT_MS / 1000} s`);
  await Promise.race([cleanup(), new Promise((r) => setTimeout(r, 2000))]);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

// Publishes one event with a form body, as a browser form or `curl -d` would, and checks that
// ssed answers 200 with the event's id.
async function publish(fields) {
  const res = await fetch(base + '/publish', {
    method: 'POST',
    body: new URLSearchParams(fields),
    signal: AbortSignal.timeout(5000),
  });
  const body = (await res.text()).trim();
  if (res.status !== 200) throw new Error(`publish ${JSON.stringify(fields)}: HTTP ${res.status}: ${body}`);
  if (fields.id !== undefined && body !== fields.id) {
    throw new Error(`publish ${JSON.stringify(fields)}: answered id ${JSON.stringify(body)}`);
  }
  return body;
}

// page.waitForFunction with a label, so a timeout says which step failed and what the page saw.
async function waitFor(page, label, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_TIMEOUT_MS, polling: 50 });
  } catch (e) {
    const seen = await page.evaluate(() => JSON.stringify(window.__got ?? null)).catch(() => '?');
    throw new Error(`${label}: ${e.message.split('\n')[0]}; events seen: ${seen}`);
  }
}

// A byte-level TCP relay in front of ssed. The browser talks to ssed through it, so the test can
// cut the event stream (ssed offers no way to drop one subscriber) and hold the browser's
// reconnection until events have been published meanwhile: they must then come by replay.
function startRelay(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const held = [];
  const requests = []; // request heads sent by the browser, to check its Last-Event-ID
  let holding = false;

  const pipe = (client) => {
    const upstream = net.connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (d) => requests.push(d.toString('latin1')));
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  const server = net.createServer((client) => {
    if (holding) {
      client.pause();
      client.on('error', () => {});
      held.push(client);
    } else {
      pipe(client);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      url: `http://127.0.0.1:${server.address().port}`,
      requests,
      dropAllAndHold() { holding = true; for (const s of sockets) s.destroy(); },
      release() { holding = false; for (const c of held.splice(0)) { pipe(c); c.resume(); } },
      close() { server.close(); for (const s of sockets) s.destroy(); for (const c of held) c.destroy(); },
    }));
  });
}

async function eventSourceTest(context, relay) {
  const page = await context.newPage();
  // A plain same-origin page, so the EventSource below is same-origin and needs no CORS.
  const res = await page.goto(relay.url + '/health', { timeout: STEP_TIMEOUT_MS });
  if (!res || res.status() !== 200) throw new Error(`GET /health: HTTP ${res && res.status()}`);

  await page.evaluate((topic) => {
    window.__got = [];
    const record = (e) => window.__got.push({ type: e.type, data: e.data, id: e.lastEventId });
    // Only this run's topic: the --demo ticker (topic "demo") must not reach this subscriber.
    window.__es = new EventSource('/events?topic=' + encodeURIComponent(topic));
    window.__es.onmessage = record;
    window.__es.addEventListener('tick', record);
  }, topic);
  // Open means ssed answered the subscription, so from now on no published event can be missed.
  await waitFor(page, 'EventSource open', () => window.__es.readyState === EventSource.OPEN);

  const expected = [
    { fields: { topic, data: 'hello', id: `d-${run}` }, type: 'message', data: 'hello' },
    { fields: { topic, event: 'tick', data: 'tock', id: `n-${run}` }, type: 'tick', data: 'tock' },
    { fields: { topic, data: 'a\r\nb\r\nc', id: `crlf-${run}` }, type: 'message', data: 'a\nb\nc' },
    { fields: { topic, data: 'a\rb\rc', id: `cr-${run}` }, type: 'message', data: 'a\nb\nc' },
    { fields: { topic, data: 'a\nb\nc', id: `lf-${run}` }, type: 'message', data: 'a\nb\nc' },
    { fields: { topic, event: 'tick', data: 'a\r\nb\rc', id: `mixed-${run}` }, type: 'tick', data: 'a\nb\nc' },
  ];
  for (const e of expected) await publish(e.fields);
  const want = expected.map((e) => ({ type: e.type, data: e.data, id: e.fields.id }));
  await waitFor(page, 'live events received', (n) => window.__got.length >= n, want.length);
  assertEvents(await page.evaluate(() => window.__got), want, 'live events');

  // Reconnect: cut the stream, publish while the browser is away, then let it back in.
  const lastId = want.at(-1).id;
  const before = relay.requests.length;
  relay.dropAllAndHold();
  await waitFor(page, 'EventSource noticed the drop', () => window.__es.readyState === EventSource.CONNECTING);
  const missed = [
    { type: 'message', data: 'missed 1', id: `r1-${run}` },
    { type: 'tick', data: 'missed\n2', id: `r2-${run}` },
  ];
  for (const e of missed) await publish({ topic, event: e.type, data: e.data, id: e.id });
  relay.release();
  await waitFor(page, 'events replayed after reconnect', (n) => window.__got.length >= n, want.length + missed.length);
  assertEvents((await page.evaluate(() => window.__got)).slice(want.length), missed, 'replayed events');

  const resent = relay.requests.slice(before).find((r) => r.startsWith('GET /events'));
  const header = resent && /^last-event-id:[ \t]*(.*?)\r?$/im.exec(resent);
  if (!header || header[1] !== lastId) {
    throw new Error(`reconnect request should carry Last-Event-ID: ${lastId}; got: ${JSON.stringify(resent)}`);
  }
  await page.evaluate(() => window.__es.close());

  // Replay asked for in the query string, for clients that cannot set Last-Event-ID.
  await page.evaluate(({ topic, lastId }) => {
    window.__got = [];
    const record = (e) => window.__got.push({ type: e.type, data: e.data, id: e.lastEventId });
    window.__es = new EventSource(`/events?topic=${encodeURIComponent(topic)}&lastEventId=${encodeURIComponent(lastId)}`);
    window.__es.onmessage = record;
    window.__es.addEventListener('tick', record);
  }, { topic, lastId });
  await waitFor(page, 'events replayed after ?lastEventId=', (n) => window.__got.length >= n, missed.length);
  assertEvents(await page.evaluate(() => window.__got), missed, 'events replayed after ?lastEventId=');
  await page.evaluate(() => window.__es.close());
  await page.close();
  console.log(`ok: EventSource got ${want.length} live events (default, named, multi-line), `
    + `${missed.length} replayed after reconnect with Last-Event-ID, and again with ?lastEventId=`);
}

function assertEvents(got, want, label) {
  const a = JSON.stringify(got);
  const b = JSON.stringify(want);
  if (a !== b) throw new Error(`${label}: expected ${b}\n  got ${a}`);
}

async function screenshot(context, path) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1000, height: 700 });
  // Keep a handle on every EventSource the viewer makes, to know when its stream is open
  // without depending on how the viewer page is written.
  await page.addInitScript(() => {
    const Native = window.EventSource;
    window.__sources = [];
    window.EventSource = class extends Native {
      constructor(...args) { super(...args); window.__sources.push(this); }
    };
  });
  // EventSource hands named events only to listeners of that type: `?type=tick` makes the
  // viewer listen for the named event published below.
  await page.goto(base + '/?type=tick', { timeout: STEP_TIMEOUT_MS });
  await waitFor(page, 'viewer EventSource open',
    () => window.__sources.some((s) => s.readyState === EventSource.OPEN));

  const shown = [`hello from the browser test`, `named event data`, `first line`, `second line`];
  await publish({ topic: 'viewer', data: shown[0], id: `v1-${run}` });
  await publish({ topic: 'viewer', event: 'tick', data: shown[1], id: `v2-${run}` });
  await publish({ topic: 'viewer', data: `${shown[2]}\r\n${shown[3]}`, id: `v3-${run}` });
  await waitFor(page, 'published events shown by the viewer',
    (texts) => texts.every((t) => document.body.textContent.includes(t)), shown);
  await page.screenshot({ path, fullPage: true });
  await page.close();
  console.log(`ok: viewer screenshot written to ${path}`);
}

async function main() {
  // Fail plainly when ssed is not there, rather than with a browser navigation error.
  const health = await fetch(base + '/health', { signal: AbortSignal.timeout(5000) }).catch((e) => {
    throw new Error(`ssed not reachable at ${base}: ${e.cause?.message ?? e.message}`);
  });
  if (health.status !== 200) throw new Error(`GET ${base}/health: HTTP ${health.status}`);

  const profile = await mkdtemp(join(tmpdir(), 'ssed-chromium-'));
  let context;
  let relay;
  cleanup = async () => {
    relay?.close();
    await context?.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  };
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: STEP_TIMEOUT_MS,
    });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    relay = await startRelay(base);
    await eventSourceTest(context, relay);
    if (pngPath) await screenshot(context, pngPath);
  } finally {
    await cleanup();
  }
}

main().then(
  () => { clearTimeout(overall); process.exit(0); },
  (e) => { console.error(`FAIL: ${e.message}`); process.exit(1); },
);
