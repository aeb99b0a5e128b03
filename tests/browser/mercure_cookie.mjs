// Headless Chromium and the Mercure cookie: a page on another origin subscribes to ssed's hub
// with `new EventSource(url, {withCredentials: true})`, and the browser sends the
// mercureAuthorization cookie that the page's own server set, as a Symfony app does.
//
//   node tests/browser/mercure_cookie.mjs http://127.0.0.1:HUB_PORT PAGE_PORT TOKEN
//
// The page is served from http://127.0.0.1:PAGE_PORT: another origin than the hub (another
// port), but the same site, so a SameSite=Strict cookie of 127.0.0.1 goes to the hub, and only
// with credentials. ssed runs with --subscriber-jwt-key, --anonymous and --cors-origin naming the
// page's origin. Proves that the credentialed EventSource opens across origins (CORS with
// credentials) and receives a private update, and that an anonymous EventSource on the same page
// receives the public updates and never the private one. Exits non-zero with a message on
// failure.

import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';

const TOTAL_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 10_000;
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const [hub, pagePort, token] = process.argv.slice(2);
if (!hub || !/^http:\/\//.test(hub) || !pagePort || !token) {
  console.error('usage: node mercure_cookie.mjs http://127.0.0.1:HUB_PORT PAGE_PORT TOKEN');
  process.exit(2);
}
const hubUrl = `${hub}/.well-known/mercure`;
const run = `${process.pid}-${Date.now()}`;
const topic = `https://example.com/books/${run}`;

let cleanup = async () => {};
const overall = setTimeout(async () => {
  console.error(`FAIL: browser test did not finish within ${TOTAL_TIMEOUT_MS / 1000} s`);
  await Promise.race([cleanup(), new Promise((r) => setTimeout(r, 2000))]);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

// The app's own server: it hands the browser its subscriber token in the cookie Mercure reads,
// for the hub's path only, out of reach of scripts.
function startPageServer() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Set-Cookie': `mercureAuthorization=${token}; Path=/.well-known/mercure; HttpOnly; SameSite=Strict`,
    });
    res.end('<!doctype html><title>app</title><p>app page</p>');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(pagePort), '127.0.0.1', () => resolve(server));
  });
}

// Publishes with a form from this (loopback) process; returns the id the hub answered.
async function publish(fields) {
  const body = new URLSearchParams(fields);
  const res = await fetch(hubUrl, { method: 'POST', body, signal: AbortSignal.timeout(5000) });
  const text = (await res.text()).trim();
  if (res.status !== 200) throw new Error(`publish ${JSON.stringify(fields)}: HTTP ${res.status}: ${text}`);
  return text;
}

async function waitFor(page, label, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_TIMEOUT_MS, polling: 50 });
  } catch (e) {
    const seen = await page.evaluate(() => JSON.stringify(window.__got ?? null)).catch(() => '?');
    throw new Error(`${label}: ${e.message.split('\n')[0]}; events seen: ${seen}`);
  }
}

async function cookieTest(context) {
  const page = await context.newPage();
  const pageOrigin = `http://127.0.0.1:${pagePort}`;
  const res = await page.goto(`${pageOrigin}/`, { timeout: STEP_TIMEOUT_MS });
  if (!res || res.status() !== 200) throw new Error(`GET the app page: HTTP ${res && res.status()}`);

  await page.evaluate(({ hubUrl, topic }) => {
    window.__got = { credentialed: [], anonymous: [] };
    const url = `${hubUrl}?topic=${encodeURIComponent('https://example.com/books/{id}')}`;
    const open = (name, options) => {
      const es = new EventSource(url, options);
      es.onmessage = (e) => window.__got[name].push({ data: e.data, id: e.lastEventId });
      es.onerror = () => window.__got[name].push({ error: es.readyState });
      return es;
    };
    window.__credentialed = open('credentialed', { withCredentials: true });
    window.__anonymous = open('anonymous');
  }, { hubUrl, topic });
  await waitFor(page, 'both EventSources open', () =>
    window.__credentialed.readyState === EventSource.OPEN && window.__anonymous.readyState === EventSource.OPEN);

  const first = await publish({ topic, data: 'public 1' });
  const secret = await publish({ topic, data: 'private for the cookie', private: 'on' });
  const last = await publish({ topic, data: 'public 2' });
  for (const id of [first, secret, last]) {
    if (!id.startsWith('urn:uuid:')) throw new Error(`a hub id should be a urn:uuid, got ${id}`);
  }
  await waitFor(page, 'the credentialed stream got three events', () => window.__got.credentialed.length >= 3);
  await waitFor(page, 'the anonymous stream got two events', () => window.__got.anonymous.length >= 2);
  const got = await page.evaluate(() => window.__got);
  assertEvents(got.credentialed, [
    { data: 'public 1', id: first },
    { data: 'private for the cookie', id: secret },
    { data: 'public 2', id: last },
  ], 'EventSource with credentials (the cookie)');
  assertEvents(got.anonymous, [
    { data: 'public 1', id: first },
    { data: 'public 2', id: last },
  ], 'EventSource without credentials');
  await page.evaluate(() => { window.__credentialed.close(); window.__anonymous.close(); });
  await page.close();
  console.log('ok: a page on another origin got a private update through the mercureAuthorization cookie '
    + '(EventSource withCredentials, CORS with credentials); the anonymous EventSource beside it got only the public ones');
}

function assertEvents(got, want, label) {
  const a = JSON.stringify(got);
  const b = JSON.stringify(want);
  if (a !== b) throw new Error(`${label}: expected ${b}\n  got ${a}`);
}

async function main() {
  const pageServer = await startPageServer();
  const profile = await mkdtemp(join(tmpdir(), 'ssed-chromium-'));
  let context;
  cleanup = async () => {
    pageServer.close();
    await context?.close().catch(() => {});
    // Chromium's helper processes may still write to the profile a moment after it closed.
    await rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  };
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: STEP_TIMEOUT_MS,
    });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    await cookieTest(context);
  } finally {
    await cleanup();
  }
}

main().then(
  () => { clearTimeout(overall); process.exit(0); },
  (e) => { console.error(`FAIL: ${e.message}`); process.exit(1); },
);
