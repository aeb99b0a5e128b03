// Mercure 1.0 through real browsers' EventSource (headless Chromium, driven by playwright-core):
//
//   node tests/browser/mercure1.mjs http://127.0.0.1:HUB_PORT PUBLISHER WATCHER MEMBER
//
// ssed runs with --issuer (the tokens' issuer and key), --anonymous and --subscriptions; the
// three arguments after the hub are access tokens (typ at+jwt) naming its resource identifier.
//
// 1. An anonymous page subscribes with match= and match_urlpattern= and a page script
//    publishes with fetch() and the publisher's bearer token, with ids of its own: exact
//    topics, several matchers, URIs and URL patterns are received; non-matching topics are
//    not, nor private updates (the page has no token). The publish answers 200, text/plain,
//    with the update's id.
// 2. Two browsers, each its own Chromium: the first (the watcher, its token in the
//    __Secure-mercure_access_token cookie) subscribes to the subscription events; the second (a
//    member, with a payload in its token) opens a subscription. The watcher sees it arrive
//    (an event of type mercure, active, with the payload), finds it in the subscription API,
//    sees it leave when the second browser's page closes, and no longer finds it in the API.
//
// Exits non-zero with a message on failure.

import { chromium } from 'playwright-core';

const TOTAL_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 10_000;
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const COOKIE = '__Secure-mercure_access_token';

const [hub, publisher, watcher, member] = process.argv.slice(2);
if (!hub || !/^http:\/\//.test(hub) || !publisher || !watcher || !member) {
  console.error('usage: node mercure1.mjs http://127.0.0.1:HUB_PORT PUBLISHER WATCHER MEMBER');
  process.exit(2);
}
const run = `${process.pid}-${Date.now()}`;
const browsers = [];

const overall = setTimeout(async () => {
  console.error(`FAIL: browser test did not finish within ${TOTAL_TIMEOUT_MS / 1000} s`);
  await Promise.race([Promise.all(browsers.map((b) => b.close())), new Promise((r) => setTimeout(r, 2000))]);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

async function launch() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  browsers.push(browser);
  return browser;
}

// A page on the hub's origin (ssed's viewer), in a fresh context carrying `token`, if any, in
// the cookie a 1.0 hub reads.
async function hubPage(browser, token) {
  const context = await browser.newContext();
  if (token) {
    const host = new URL(hub).hostname;
    await context.addCookies([{
      name: COOKIE, value: token, domain: host, path: '/.well-known/mercure',
      secure: true, httpOnly: true, sameSite: 'Strict',
    }]);
  }
  const page = await context.newPage();
  page.on('console', (msg) => { if (msg.type() === 'error') console.log(`page: ${msg.text()}`); });
  await page.goto(`${hub}/`);
  return page;
}

// The shape of the reference conformance cases, written for ssed: matchers, the update's
// topics, whether an anonymous subscriber must receive it.
const CASES = [
  { name: 'raw string', match: [`raw-${run}`], topics: [`raw-${run}`], received: true },
  { name: 'several matchers', match: ['foo', `multi-${run}`], topics: [`multi-${run}`], received: true },
  { name: 'URI', match: [`https://example.net/foo/${run}`], topics: [`https://example.net/foo/${run}`], received: true },
  { name: 'URL pattern', pattern: ['https://example.net/pattern/:id'], topics: [`https://example.net/pattern/${run}`], received: true },
  { name: 'alternate topic', match: [`alt-${run}`], topics: [`canonical-${run}`, `alt-${run}`], received: true },
  { name: 'non-matching raw string', match: ['another-name'], topics: ['will-not-match'], received: false },
  { name: 'non-matching URI', match: ['https://example.net/foo/another'], topics: ['https://example.net/foo/no'], received: false },
  { name: 'non-matching URL pattern', pattern: ['https://example.net/bar/:var'], topics: ['https://example.net/foo/no'], received: false },
  { name: 'private raw string', match: [`raw-${run}`], topics: [`raw-${run}`], received: false, private: true },
  { name: 'private URL pattern', pattern: ['https://example.net/pattern/:id'], topics: [`https://example.net/pattern/${run}`], received: false, private: true },
];

async function conformance(page) {
  for (const [i, c] of CASES.entries()) {
    const result = await page.evaluate(async ({ c, id, token }) => {
      const url = new URL('/.well-known/mercure', location.origin);
      (c.match ?? []).forEach((m) => url.searchParams.append('match', m));
      (c.pattern ?? []).forEach((m) => url.searchParams.append('match_urlpattern', m));
      const body = new URLSearchParams();
      c.topics.forEach((t) => body.append('topic', t));
      body.set('id', id);
      body.set('data', `data for\n\n${c.name}`);
      if (c.private) body.set('private', 'on');
      const es = new EventSource(url);
      await new Promise((resolve, reject) => {
        es.onopen = resolve;
        setTimeout(() => reject(new Error('EventSource did not open')), 5000);
      });
      const received = new Promise((resolve) => {
        es.onmessage = (e) => { if (e.lastEventId === id && e.data === body.get('data')) resolve(true); };
        setTimeout(() => resolve(false), c.received ? 5000 : 1000);
      });
      const res = await fetch('/.well-known/mercure', {
        method: 'POST', headers: { Authorization: `Bearer ${token}` }, body,
      });
      const answer = await res.text();
      const got = await received;
      es.close();
      return { got, status: res.status, type: res.headers.get('Content-Type'), answer };
    }, { c, id: `id-${run}-${i}`, token: publisher });
    if (result.status !== 200 || !/^text\/plain/.test(result.type) || result.answer !== `id-${run}-${i}`) {
      throw new Error(`${c.name}: publish answered ${JSON.stringify(result)}`);
    }
    if (result.got !== c.received) {
      throw new Error(`${c.name}: received ${result.got}, expected ${c.received}`);
    }
  }
  console.log(`ok: ${CASES.length} matcher cases through EventSource, as the conformance suite checks them`);
}

async function waitFor(page, label, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_TIMEOUT_MS, polling: 50 });
  } catch (e) {
    const seen = await page.evaluate(() => JSON.stringify(window.__events ?? null)).catch(() => '?');
    throw new Error(`${label}: ${e.message.split('\n')[0]}; events seen: ${seen}`);
  }
}

async function activeSubscriptions(first, second) {
  const watching = await hubPage(first, watcher);
  await watching.evaluate(() => {
    window.__events = [];
    const url = new URL('/.well-known/mercure', location.origin);
    url.searchParams.append('match_urlpattern', '/.well-known/mercure/subscriptions/*');
    const es = new EventSource(url, { withCredentials: true });
    es.addEventListener('mercure', (e) => window.__events.push(JSON.parse(e.data)));
    es.onmessage = (e) => window.__events.push({ unexpected: e.data });
  });
  const room = `https://example.com/rooms/:id`;
  const joining = await hubPage(second, member);
  await joining.evaluate((room) => {
    const url = new URL('/.well-known/mercure', location.origin);
    url.searchParams.append('match_urlpattern', room);
    window.__es = new EventSource(url, { withCredentials: true });
  }, room);
  await waitFor(watching, 'the watcher sees the member arrive', (room) =>
    window.__events.some((e) => e.match === room && e.active === true && e.payload?.nick === 'ann'), room);
  const joined = await watching.evaluate((room) => window.__events.find((e) => e.match === room), room);
  if (joined.type !== 'subscription' || joined.match_type !== 'urlpattern' || !joined.subscriber.startsWith('urn:uuid:')
      || !joined.id.startsWith('/.well-known/mercure/subscriptions/urlpattern/')) {
    throw new Error(`subscription event: ${JSON.stringify(joined)}`);
  }
  const listed = await watching.evaluate(async () => {
    const res = await fetch('/.well-known/mercure/subscriptions', { credentials: 'include' });
    return { status: res.status, link: res.headers.get('Link'), doc: await res.json() };
  });
  if (listed.status !== 200 || !/rel="mercure"; last-event-id="/.test(listed.link)
      || !listed.doc.subscriptions.some((s) => s.subscriber === joined.subscriber && s.match === room)) {
    throw new Error(`the subscription API: ${JSON.stringify(listed)}`);
  }
  console.log('ok: the first browser saw the second arrive (subscription event and API)');
  await joining.context().close();
  await waitFor(watching, 'the watcher sees the member leave', (id) =>
    window.__events.some((e) => e.subscriber === id && e.active === false), joined.subscriber);
  const after = await watching.evaluate(async () =>
    (await (await fetch('/.well-known/mercure/subscriptions', { credentials: 'include' })).json()).subscriptions);
  if (after.some((s) => s.subscriber === joined.subscriber)) {
    throw new Error(`still listed after leaving: ${JSON.stringify(after)}`);
  }
  const unexpected = await watching.evaluate(() => window.__events.filter((e) => e.unexpected));
  if (unexpected.length) throw new Error(`non-mercure events: ${JSON.stringify(unexpected)}`);
  console.log('ok: the first browser saw the second leave, and the API forgot it');
}

try {
  const first = await launch();
  const second = await launch();
  await conformance(await hubPage(first, null));
  await activeSubscriptions(first, second);
  clearTimeout(overall);
  await Promise.all(browsers.map((b) => b.close()));
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  await Promise.all(browsers.map((b) => b.close().catch(() => {})));
  process.exit(1);
}
