// The viewer on a server that needs a token, in headless Chromium:
//
//   node tests/browser/viewer_credential.mjs TOKEN_BASE TOKEN JWT_BASE JWT PNG
//
// On each server the viewer's stream is refused: the page says why ("401: this server needs a
// token"), asks for the credential, and once given it (the static token as ?token=, a JSON Web
// Token as ?authorization=) opens and shows an event published then. A wrong token is said to
// be wrong. The refused page is screenshot to PNG. Exits non-zero with a message on failure.

import { launch, run as runMain, waitFor } from './chromium.mjs';

const [tokenBase, token, jwtBase, jwt, pngPath] = process.argv.slice(2);
if (!pngPath) {
  console.error('usage: node viewer_credential.mjs TOKEN_BASE TOKEN JWT_BASE JWT PNG');
  process.exit(2);
}

let browser;

async function publish(base, headers, data) {
  const res = await fetch(base + '/publish', {
    method: 'POST',
    headers,
    body: new URLSearchParams({ data }),
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200) throw new Error(`publish to ${base}: HTTP ${res.status}: ${await res.text()}`);
}

const reason = () => document.getElementById('reason').textContent;

// Opens the viewer, checks the refusal it shows, gives it `secret` and sees it open.
async function refusedThenLetIn(base, secret, kind, publishHeaders, png) {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1000, height: 400 });
  await page.goto(base + '/');
  await waitFor(page, `${kind}: the viewer says why its stream closed`,
    () => document.getElementById('reason').textContent === '401: this server needs a token'
      && !document.getElementById('credential').hidden
      && document.getElementById('state').textContent === 'closed');
  if (png) {
    await page.screenshot({ path: png });
    console.log(`ok: refused viewer screenshot written to ${png}`);
  }
  await page.fill('#secret', 'not-it');
  await Promise.all([page.waitForNavigation(), page.click('#credential button')]);
  await waitFor(page, `${kind}: a wrong credential is said to be wrong`,
    () => /^401: /.test(document.getElementById('reason').textContent)
      && document.getElementById('reason').textContent !== '401: this server needs a token');
  const wrong = await page.evaluate(reason);
  await page.fill('#secret', secret);
  await Promise.all([page.waitForNavigation(), page.click('#credential button')]);
  await waitFor(page, `${kind}: the viewer opens with the credential`,
    () => document.getElementById('state').textContent === 'open'
      && document.getElementById('why').hidden);
  const param = new URL(page.url()).searchParams;
  const sent = kind === 'token' ? param.get('token') : param.get('authorization');
  if (sent !== secret) throw new Error(`${kind}: the page URL carries ${page.url()}`);
  await publish(base, publishHeaders, `after the ${kind}`);
  await waitFor(page, `${kind}: the event shows`,
    (text) => [...document.querySelectorAll('#events td')].some((td) => td.textContent === text),
    `after the ${kind}`);
  await page.close();
  console.log(`ok: ${kind}: the viewer said "401: this server needs a token", then "${wrong}", `
    + 'then opened with the credential');
}

async function main() {
  browser = await launch();
  try {
    await refusedThenLetIn(tokenBase, token, 'token', {}, pngPath);
    await refusedThenLetIn(jwtBase, jwt, 'jwt', {}, null);
  } finally {
    await browser.close();
  }
}

runMain(main, 40_000, async () => { await browser?.close(); });
