// Headless Chromium against ssed over HTTPS, the certificate pinned by its public key
// (--ignore-certificate-errors-spki-list): the page is a secure context, as a real site's is.
//
//   node tests/browser/https_eventsource.mjs https://127.0.0.1:PORT SPKI_SHA256_BASE64 TOKEN [PNG]
//
// Proves that the viewer page loads over HTTPS and opens its EventSource; that an EventSource
// on /events receives an event the page publishes; and that the mercureAuthorization cookie set
// `Secure` (as Symfony sets it on an HTTPS site) reaches the hub and lets a private update
// through, while an EventSource without the cookie's path gets only the public ones. With a
// PNG path it screenshots the viewer. Exits non-zero with a message on failure.

import { launch, run as runMain, waitFor, STEP_TIMEOUT_MS } from './chromium.mjs';

const [base, spki, token, pngPath] = process.argv.slice(2);
if (!base || !/^https:\/\//.test(base) || !spki || !token) {
  console.error('usage: node https_eventsource.mjs https://HOST:PORT SPKI TOKEN [PNG]');
  process.exit(2);
}
const run = `${process.pid}-${Date.now()}`;
let browser;

async function main() {
  browser = await launch({ args: [`--ignore-certificate-errors-spki-list=${spki}`] });
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1000, height: 600 });
  const res = await page.goto(`${base}/?topic=https-${run}`, { timeout: STEP_TIMEOUT_MS });
  if (!res || res.status() !== 200) throw new Error(`GET the viewer: HTTP ${res && res.status()}`);
  if (!(await page.evaluate(() => window.isSecureContext))) throw new Error('not a secure context');
  await waitFor(page, 'the viewer opened its stream', () => document.getElementById('state').textContent === 'open');

  await page.evaluate(async ({ run, token }) => {
    window.__got = { plain: [], cookie: [], anonymous: [] };
    const record = (name) => (e) => window.__got[name].push({ data: e.data, id: e.lastEventId });
    window.__sources = [];
    const plain = new EventSource(`/events?topic=https-${run}`);
    plain.onmessage = record('plain');
    // The cookie Symfony's Mercure bundle sets for the hub, Secure on an HTTPS site.
    document.cookie = `mercureAuthorization=${token}; Path=/.well-known/mercure; Secure; SameSite=Strict`;
    const topic = encodeURIComponent(`https://example.com/books/${run}`);
    const hub = new EventSource(`/.well-known/mercure?topic=${topic}`);
    hub.onmessage = record('cookie');
    // Outside the cookie's path: no token, public updates only.
    const anonymous = new EventSource(`/events?topic=${topic}`);
    anonymous.onmessage = record('anonymous');
    window.__sources = [plain, hub, anonymous];
  }, { run, token });
  await waitFor(page, 'three EventSources open', () => window.__sources.every((s) => s.readyState === EventSource.OPEN));

  // The page publishes over HTTPS itself (from loopback, which ssed allows without a token).
  const ids = await page.evaluate(async (run) => {
    const post = async (path, fields) => {
      const r = await fetch(path, { method: 'POST', body: new URLSearchParams(fields) });
      if (r.status !== 200) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
      return (await r.text()).trim();
    };
    const topic = `https://example.com/books/${run}`;
    return [
      await post('/publish', { topic: `https-${run}`, data: 'over HTTPS' }),
      await post('/.well-known/mercure', { topic, data: 'public' }),
      await post('/.well-known/mercure', { topic, data: 'private', private: 'on' }),
      await post('/.well-known/mercure', { topic, data: 'last' }),
    ];
  }, run);
  await waitFor(page, 'the events arrived', () =>
    window.__got.plain.length >= 1 && window.__got.cookie.length >= 3 && window.__got.anonymous.length >= 2);
  const got = await page.evaluate(() => window.__got);
  const expect = (label, a, b) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${label}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
  };
  expect('/events', got.plain, [{ data: 'over HTTPS', id: ids[0] }]);
  expect('the hub with the Secure cookie', got.cookie.map((e) => e.data), ['public', 'private', 'last']);
  expect('without the cookie', got.anonymous.map((e) => e.data), ['public', 'last']);
  await waitFor(page, 'the viewer shows the event', () => document.querySelectorAll('#events tr').length >= 1);
  if (pngPath) await page.screenshot({ path: pngPath });
  await page.close();
  console.log('ok: over HTTPS the viewer and an EventSource received the events, and the Secure '
    + 'mercureAuthorization cookie let a private update through');
}

runMain(main, 40_000, async () => { await browser?.close(); });
