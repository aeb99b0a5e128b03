// Headless-Chromium end-to-end test: the browser's own EventSource against a running ssed.
//
//   node tests/browser/eventsource.mjs http://127.0.0.1:PORT [viewer.png]
//
// Proves that Chromium receives a default event, a named event, multi-line data (CRLF, CR and LF
// all arrive as LF) with the published id as lastEventId, and that after the stream drops it
// reconnects with Last-Event-ID and gets what it missed by replay. Then the viewer page: opened
// on a server with history it shows the last 50 events of its topic at once (JSON indented,
// named types included), then live ones. With a PNG path it screenshots the viewer at `/` to
// that path, and the topic-filtered viewer beside it (viewer-topic.png). Exits non-zero with a
// message on failure.

import net from 'node:net';
import { launch, run as runMain, waitFor, STEP_TIMEOUT_MS } from './chromium.mjs';

const [base, pngPath] = process.argv.slice(2);
if (!base || !/^http:\/\//.test(base)) {
  console.error('usage: node eventsource.mjs http://HOST:PORT [viewer.png]');
  process.exit(2);
}

// Unique per run, so that events left in ssed's history by an earlier run never match.
const run = `${process.pid}-${Date.now()}`;
const topic = `browser-${run}`;

let browser;
let relay;

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

// The viewer opened on a server with history: the last 50 events of its topic at once, oldest
// of them 11 (60 were published), marked as history; JSON indented; named types shown; then a
// live event of a type given by `?type=`. Screenshots the topic's viewer to `topicPng`.
async function viewerHistory(context, topicPng) {
  const topic = 'orders';
  const items = ['espresso beans', 'oat milk', 'filter papers', 'grinder', 'mugs'];
  const published = [];
  for (let i = 1; i <= 60; i++) {
    const fields = { topic, id: `o${i}-${run}` };
    if (i % 3 === 0) {
      fields.data = `order ${1000 + i} packed`;
    } else {
      fields.data = JSON.stringify({ order: 1000 + i, item: items[i % items.length], qty: i % 4 + 1 });
    }
    if (i % 5 === 0) fields.event = 'shipped';
    await publish(fields);
    published.push(fields);
  }
  const page = await context.newPage();
  await page.setViewportSize({ width: 1000, height: 700 });
  await page.goto(`${base}/?topic=${topic}&type=refund`, { timeout: STEP_TIMEOUT_MS });
  // Nothing is published meanwhile: these rows can only come from the history.
  await waitFor(page, 'the viewer shows the history at once',
    () => document.querySelectorAll('#events tr').length >= 50
      && document.getElementById('state').textContent === 'open');
  const rows = () => page.evaluate(() => [...document.querySelectorAll('#events tr')].map((tr) => ({
    old: tr.className === 'old',
    cells: [...tr.cells].map((td) => td.textContent),
  })));
  const shown = await rows();
  const want = published.slice(10).reverse();
  assertEvents(shown.map((r) => r.cells[2]), want.map((f) => f.id), 'history rows, newest first');
  assertEvents(shown.map((r) => r.cells[1]), want.map((f) => f.event ?? 'message'), 'history types');
  const data = want.map((f) => (f.data.startsWith('{') ? JSON.stringify(JSON.parse(f.data), null, 2) : f.data));
  assertEvents(shown.map((r) => r.cells[3]), data, 'history data, JSON indented');
  if (!shown.every((r) => r.old && r.cells[0] === 'history')) throw new Error('history rows are not marked as history');
  const count = await page.textContent('#count');
  if (count !== '50 events') throw new Error(`count: ${count}`);

  await publish({ topic, event: 'refund', data: '{"order": 1007, "amount": 12.5}', id: `live-${run}` });
  await waitFor(page, 'the live event shown on top',
    (id) => document.querySelector('#events tr td:nth-child(3)')?.textContent === id, `live-${run}`);
  const [top] = await rows();
  if (top.old || top.cells[0] === 'history' || top.cells[1] !== 'refund') {
    throw new Error(`live row: ${JSON.stringify(top)}`);
  }
  if (await page.textContent('#count') !== '51 events') throw new Error('count after a live event');
  if (topicPng) await page.screenshot({ path: topicPng });
  await page.close();
  console.log('ok: the viewer opened on the last 50 of 60 events of its topic, JSON indented, '
    + 'then showed a live event');
}

// The viewer at `/` on a server with history (every topic): 50 events at once.
async function viewerScreenshot(context, path) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1000, height: 700 });
  await page.goto(base + '/', { timeout: STEP_TIMEOUT_MS });
  await waitFor(page, 'the viewer at / shows 50 events of history',
    () => document.querySelectorAll('#events tr.old').length === 50
      && document.getElementById('state').textContent === 'open');
  await page.screenshot({ path });
  await page.close();
  console.log(`ok: viewer screenshot written to ${path}`);
}

async function main() {
  // Fail plainly when ssed is not there, rather than with a browser navigation error.
  const health = await fetch(base + '/health', { signal: AbortSignal.timeout(5000) }).catch((e) => {
    throw new Error(`ssed not reachable at ${base}: ${e.cause?.message ?? e.message}`);
  });
  if (health.status !== 200) throw new Error(`GET ${base}/health: HTTP ${health.status}`);

  browser = await launch();
  try {
    relay = await startRelay(base);
    await eventSourceTest(browser.context, relay);
    await viewerHistory(browser.context, pngPath && pngPath.replace(/(\.png)?$/, '-topic.png'));
    if (pngPath) await viewerScreenshot(browser.context, pngPath);
  } finally {
    relay?.close();
    await browser.close();
  }
}

runMain(main, 40_000, async () => { relay?.close(); await browser?.close(); });
