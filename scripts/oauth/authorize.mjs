// The browser step of scripts/oauth-test.sh: a person authorizing an MCP client at the hub, in
// headless Debian chromium driven by playwright-core (as scripts/ui/walk.mjs).
//
//   node authorize.mjs AUTHORIZATION_URL
//
// Opens the URL in a fresh browser context (signed out): the hub sends it to /ui/login → the
// "Sign in with SSO" link → the OpenID provider's login (OA_LOGIN, any password) and consent →
// back at the hub, /oauth/authorize again → the consent page (the client's name, the redirect
// URI and the scope must be on it) → "Allow" → the hub redirects to the client's redirect URI.
// When the hub remembers the consent, it redirects at once after the sign-in (no consent page).
// The redirect URI (http://127.0.0.1:PORT/…) is answered by a listener of ours on that port,
// as a native client's loopback listener would (RFC 8252 §7.3); it records the URL and answers
// a small "done" page. (page.route cannot do it: Playwright routes the first request of a
// redirect chain only, and this one is the target of the hub's 303.)
//
// Prints one JSON line:
//   {ok, url: "<the callback URL with code, state, iss>", loginShown, consentShown,
//    consent: {clientName, redirectUri, scope, unverified}, connectedApp (with OA_CLIENT_NAME: the Keys
//    page's table#apps lists the client after the redirect), requests: [{m, path, st, ms, srv?, host}]}
// or {ok: false, error, at} (where the browser was). Screenshots of the login and consent pages:
// OA_SHOTS_DIR/OA_SHOT_PREFIX-{login,consent,keys}.png.
//
// Environment: OA_HUB, OA_OP (the provider's issuer), OA_CHROMIUM, OA_SHOTS_DIR, OA_SHOT_PREFIX,
// OA_LOGIN (default alice), OA_CLIENT_NAME (what the consent page must show; optional).
import http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const HUB = process.env.OA_HUB;
const OP = process.env.OA_OP;
const CHROMIUM = process.env.OA_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.OA_SHOTS_DIR;
const PREFIX = process.env.OA_SHOT_PREFIX || 'authorize';
const LOGIN = process.env.OA_LOGIN || 'alice';
const CLIENT_NAME = process.env.OA_CLIENT_NAME || '';
const WAIT = 10000;

const out = { ok: false, loginShown: false, consentShown: false, requests: [] };
function done(extra) {
  console.log(JSON.stringify({ ...out, ...extra }));
}
function fail(m) {
  throw new Error(m);
}

const authUrl = new URL(process.argv[2] || fail('usage: authorize.mjs AUTHORIZATION_URL'));
const redirectUri = new URL(authUrl.searchParams.get('redirect_uri') || fail('the authorization URL has no redirect_uri'));
if (redirectUri.hostname !== '127.0.0.1') fail(`the redirect URI ${redirectUri.href} is not on 127.0.0.1`);

// the client's loopback listener
let resolveCallback;
const callback = new Promise((r) => { resolveCallback = r; });
const listener = http.createServer((req, res) => {
  const u = new URL(req.url, redirectUri.origin);
  if (u.pathname === redirectUri.pathname) resolveCallback(u.href);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end('<!doctype html><title>done</title><h1>Authorized</h1><p>You can close this window.</p>');
});
await new Promise((ok, bad) => {
  listener.once('error', bad);
  listener.listen(Number(redirectUri.port), '127.0.0.1', ok);
});

async function shot(page, name) {
  if (!SHOTS) return;
  try {
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.waitForLoadState('load', { timeout: WAIT });
    await page.screenshot({ path: path.join(SHOTS, `${PREFIX}-${name}.png`), fullPage: true, timeout: WAIT });
  } catch {}
}

async function where(page) {
  let h1 = '';
  try {
    h1 = (await page.locator('h1').first().innerText({ timeout: 500 })).trim();
  } catch {}
  // the URL without its query (a code or state in it is nobody's business here)
  const u = new URL(page.url());
  return `${u.origin}${u.pathname}${h1 ? ` (h1 "${h1}")` : ''}`;
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
let page;
try {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  ctx.setDefaultTimeout(WAIT);
  ctx.setDefaultNavigationTimeout(WAIT);
  // every request the browser made to the hub or the provider: method, path, status, wall ms,
  // the hub's Server-Timing (its pages say render;dur=MS)
  ctx.on('requestfinished', async (req) => {
    const u = new URL(req.url());
    if (u.origin !== HUB && u.origin !== OP) return;
    let resp;
    try {
      resp = await req.response();
    } catch {}
    const t = req.timing();
    const st = /(?:^|,)\s*\w+;dur=([0-9.]+)/.exec((resp && resp.headers()['server-timing']) || '');
    out.requests.push({
      host: u.origin === HUB ? 'hub' : 'op', m: req.method(), path: u.pathname, st: resp ? resp.status() : 0,
      ms: t.responseEnd >= 0 ? Math.round(t.responseEnd * 10) / 10 : null, ...(st ? { srv: Number(st[1]) } : {}),
    });
  });
  page = await ctx.newPage();
  const captured = callback.then((u) => ({ callback: u }));

  await page.goto(authUrl.href);
  // signed out: the hub sends us to its sign-in page
  const first = await Promise.race([
    page.waitForURL((u) => u.href.startsWith(`${HUB}/ui/login`), { timeout: WAIT }).then(() => 'login'),
    captured.then(() => 'callback'),
  ]).catch(() => null);
  if (first !== 'login') fail(`want the hub's /ui/login first (not signed in), ${first === 'callback' ? 'got the callback at once' : `waited ${WAIT / 1000}s`}; at ${await where(page)}`);
  out.loginShown = true;
  await shot(page, 'login');
  const sso = page.locator('a#signin-oidc').first();
  await sso.waitFor({ state: 'attached' }).catch(async () => fail(`no "Sign in with SSO" link a#signin-oidc; at ${await where(page)}`));
  await Promise.all([page.waitForURL((u) => u.href.startsWith(OP)), sso.click()]).catch(async (e) =>
    fail(`the SSO link did not lead to the provider (${e.message.split('\n')[0]}); at ${await where(page)}`));

  // the provider's pages: devInteractions login (any password), then its consent
  await page.locator('input[name=login]').waitFor().catch(async () => fail(`no login field at the provider; at ${await where(page)}`));
  await page.fill('input[name=login]', LOGIN);
  await page.fill('input[name=password]', 'any password');
  await Promise.all([page.waitForNavigation(), page.locator('button[type=submit]').first().click()]);
  if (page.url().startsWith(OP) && (await page.locator('input[name=login]').count()) === 0) {
    await Promise.all([page.waitForNavigation(), page.locator('button[type=submit]').first().click()]);
  }

  // back at the hub: the consent page, or (consent remembered) straight to the callback
  const next = await Promise.race([
    page.waitForURL((u) => u.href.startsWith(`${HUB}/oauth/authorize`), { timeout: WAIT })
      .then(() => page.getByRole('button', { name: /^\s*allow\b/i }).first().waitFor({ timeout: WAIT }))
      .then(() => 'consent'),
    captured.then(() => 'callback'),
  ]).catch(() => null);
  if (!next) fail(`after the sign-in, want the hub's consent page or the redirect to the client (waited ${WAIT / 1000}s); at ${await where(page)}`);
  if (next === 'consent') {
    out.consentShown = true;
    await shot(page, 'consent');
    const text = await page.locator('body').innerText();
    const items = (await page.locator('li').allInnerTexts()).join('\n');
    const scope = authUrl.searchParams.get('scope') || 'mcp';
    out.consent = {
      clientName: CLIENT_NAME ? text.includes(CLIENT_NAME) : null,
      redirectUri: text.includes(redirectUri.href),
      // the scopes in words, one list item each: `mcp` lets the client call tools, `mcp:read` list and read
      scope: scope.split(' ').every((s) => ({ mcp: /call tools/i, 'mcp:read': /\b(list|read)\b/i }[s] || new RegExp(s)).test(items)),
      unverified: /unverified|not verified/i.test(text),
      // a metadata-document client: its URL's host in bold
      cimdHost: null,
    };
    const cid = authUrl.searchParams.get('client_id') || '';
    if (/^https:/.test(cid)) {
      const bold = await page.locator('b, strong').allInnerTexts();
      out.consent.cimdHost = bold.some((b) => b.includes(new URL(cid).hostname));
    }
    const allow = page.getByRole('button', { name: /^\s*allow\b/i }).first();
    await allow.click();
  }
  const url = await Promise.race([captured.then((c) => c.callback), new Promise((r) => setTimeout(() => r(null), WAIT))]);
  if (!url) fail(`no redirect to ${redirectUri.href} within ${WAIT / 1000}s after ${next === 'consent' ? 'Allow' : 'the sign-in'}; at ${await where(page)}`);
  // let the done page finish so its request is counted
  await page.waitForLoadState('load').catch(() => {});
  // the person's Keys page now lists the client under "Connected apps"
  if (CLIENT_NAME) {
    await page.goto(`${HUB}/ui/keys`);
    const apps = page.locator('table#apps');
    out.connectedApp = (await apps.count()) > 0 && (await apps.innerText()).includes(CLIENT_NAME);
    await shot(page, 'keys');
  }
  out.ok = true;
  done({ url });
} catch (e) {
  let at = '';
  try {
    at = page ? await where(page) : '';
  } catch {}
  done({ ok: false, error: String(e && e.message ? e.message.split('\n')[0] : e).slice(0, 500), at });
} finally {
  await browser.close().catch(() => {});
  listener.close();
  listener.closeAllConnections?.();
}
process.exit(0);
