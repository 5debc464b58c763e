// The browser walk of scripts/ui-test.sh: headless Debian chromium, driven by playwright-core,
// goes through the hub's /ui pages as a person would, plus the security checks of issue 17.
// Prints `ok - NAME` / `not ok - NAME: REASON` lines (counted by ui-test.sh) and `#` notes;
// screenshots (full page PNG) go to UI_SHOTS_DIR as NN-name.png, the page timings to
// UI_SHOTS_DIR/timings.md. Every wait is bounded and fails naming what it waited for and
// where the browser was. Secrets (hub keys, the token value) never reach the output.
//
// Environment (set by ui-test.sh): UI_HUB, UI_OP, UI_CTRL (provider control), UI_GH,
// UI_ROOT_KEY (an admin's hub key), UI_DEMO_TOKEN, UI_DEMO_MARKER (what the reflect-mode mock
// prints for that token), UI_PY + UI_MCP_CALL (the Python SDK client), UI_SHOTS_DIR, UI_CHROMIUM.
//
// Sign-in attempts: the hub allows 10 a minute per IP (UI-DESIGN.md), and this walk makes
// exactly 10 (alice, bob, 4 refused OIDC, eve, octocat, mallory, root's key) before the
// rate-limit check at the end. A new sign-in check must replace one, not add one.
import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const env = (n) => {
  const v = process.env[n];
  if (!v) {
    console.log(`not ok - walk: environment: ${n} is not set`);
    process.exit(1);
  }
  return v;
};
const HUB = env('UI_HUB');
const OP = env('UI_OP');
const CTRL = env('UI_CTRL');
const GH = env('UI_GH');
const ROOT_KEY = env('UI_ROOT_KEY');
const DEMO_TOKEN = env('UI_DEMO_TOKEN');
const MARKER = env('UI_DEMO_MARKER');
const PY = env('UI_PY');
const MCP_CALL = env('UI_MCP_CALL');
const SHOTS = env('UI_SHOTS_DIR');
const CHROMIUM = env('UI_CHROMIUM');
const TIMING_LOADS = Number(process.env.UI_TIMING_LOADS || 20);

const WAIT = 8000; // one element / one navigation
const LABEL = 'laptop-ui-walk';
const EVIL_LABEL = `${LABEL} <b id="inj-label">bold</b>`;
const EVIL_TOOL = '<img id="inj-tool" src="x">';

// --- reporting ----------------------------------------------------------------------------
const keys = new Set([ROOT_KEY]);
function scrub(s) {
  let out = String(s);
  for (const k of keys) out = out.split(k).join('mcphub_…');
  out = out.replace(/mcphub_[0-9a-f]{64}/g, 'mcphub_…').split(DEMO_TOKEN).join('<DEMO_TOKEN>');
  return out.replace(/\s+/g, ' ').trim().slice(0, 600);
}
let passed = 0;
let failed = 0;
const facts = {}; // what earlier checks established, for the checks that need it
async function check(name, needs, fn) {
  const missing = needs.filter((n) => !facts[n]);
  if (missing.length) {
    failed += 1;
    console.log(`not ok - ${name}: not run, needs ${missing.join(', ')} (an earlier check failed)`);
    return false;
  }
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name}`);
    return true;
  } catch (e) {
    failed += 1;
    console.log(`not ok - ${name}: ${scrub(e && e.message ? e.message.split('\n')[0] : e)}`);
    return false;
  }
}
const note = (s) => console.log(`# ${scrub(s)}`);
function fail(msg) {
  throw new Error(msg);
}

// --- browser helpers ----------------------------------------------------------------------
let shotN = 0;
async function shot(page, name) {
  shotN += 1;
  const file = path.join(SHOTS, `${String(shotN).padStart(2, '0')}-${name}.png`);
  try {
    await page.waitForLoadState('load', { timeout: WAIT });
    await page.screenshot({ path: file, fullPage: true, timeout: WAIT });
  } catch (e) {
    note(`screenshot ${path.basename(file)} failed: ${e.message.split('\n')[0]}`);
  }
}

async function where(page) {
  let h1 = '';
  let text = '';
  try {
    h1 = (await page.locator('h1').first().innerText({ timeout: 500 })).trim();
  } catch {}
  try {
    text = (await page.locator('body').innerText({ timeout: 500 })).slice(0, 160);
  } catch {}
  return `at ${page.url()}${h1 ? ` (h1 "${h1}")` : ''}${text && !h1 ? ` body "${text}"` : ''}`;
}

// the last document response of each page (its status and headers), and every Server-Timing
const lastDoc = new WeakMap();
const timings = new Map(); // page key -> [ms]
function pageKey(u) {
  const p = new URL(u).pathname;
  return p.replace(/^\/ui\/admin\/users\/[^/]+/, '/ui/admin/users/{name}').replace(/^\/ui\/keys\/[^/]+\/revoke$/, '/ui/keys/{id}/revoke');
}
function recordTiming(resp) {
  const u = resp.url();
  if (!u.startsWith(`${HUB}/ui`) || u.includes('/ui/static/')) return null;
  const st = resp.headers()['server-timing'] || '';
  const m = /render;dur=([0-9.]+)/.exec(st);
  if (!m) return null;
  const k = `${resp.request().method()} ${pageKey(u)}`;
  if (!timings.has(k)) timings.set(k, []);
  timings.get(k).push(Number(m[1]));
  return Number(m[1]);
}
// every /ui page the browser got (not redirects, not static files) must carry these
const headerFaults = new Map(); // "status path: what" -> count
let pagesSeen = 0;
function headerRules(resp) {
  const u = resp.url();
  if (!u.startsWith(`${HUB}/ui`) || u.includes('/ui/static/') || (resp.status() >= 300 && resp.status() < 400)) return;
  pagesSeen += 1;
  const h = resp.headers();
  const bad = [];
  if (!/default-src 'self'/.test(h['content-security-policy'] || '')) bad.push('CSP');
  if ((h['x-frame-options'] || '').toUpperCase() !== 'DENY') bad.push('X-Frame-Options');
  if ((h['referrer-policy'] || '') !== 'no-referrer') bad.push('Referrer-Policy');
  if ((h['x-content-type-options'] || '') !== 'nosniff') bad.push('nosniff');
  if (!/no-store/.test(h['cache-control'] || '')) bad.push('Cache-Control no-store');
  if (!/render;dur=[0-9]/.test(h['server-timing'] || '')) bad.push('Server-Timing');
  if (bad.length) {
    const k = `${resp.status()} ${pageKey(u)} lacks ${bad.join('+')}`;
    headerFaults.set(k, (headerFaults.get(k) || 0) + 1);
  }
}
async function newContext(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  ctx.setDefaultTimeout(WAIT);
  ctx.setDefaultNavigationTimeout(WAIT + 2000);
  ctx.on('response', (resp) => {
    recordTiming(resp);
    if (resp.request().isNavigationRequest()) {
      lastDoc.set(resp.frame().page(), resp);
      headerRules(resp);
    }
  });
  return ctx;
}

async function go(page, p) {
  let resp;
  try {
    resp = await page.goto(p.startsWith('http') ? p : HUB + p);
  } catch (e) {
    fail(`GET ${p}: ${e.message.split('\n')[0]}`);
  }
  return resp;
}

async function el(page, sel, what) {
  const loc = page.locator(sel).first();
  try {
    await loc.waitFor({ state: 'attached', timeout: WAIT });
  } catch {
    fail(`waited ${WAIT / 1000}s for ${what || sel}; ${await where(page)}`);
  }
  return loc;
}

// click SEL and wait for the navigation it starts (a form POST and its redirects)
async function clickNav(page, sel, what) {
  const loc = await el(page, sel, what);
  try {
    await Promise.all([page.waitForNavigation({ timeout: WAIT + 2000 }), loc.click({ timeout: WAIT })]);
  } catch (e) {
    fail(`clicking ${what || sel}: ${e.message.split('\n')[0]}; ${await where(page)}`);
  }
}

async function waitUrl(page, pred, what) {
  try {
    await page.waitForURL(pred, { timeout: WAIT + 2000 });
  } catch {
    fail(`waited ${(WAIT + 2000) / 1000}s to reach ${what}; ${await where(page)}`);
  }
}

const onHub = (p) => (u) => u.href.startsWith(HUB + p);

async function sessionCookie(ctx) {
  const all = await ctx.cookies(HUB);
  return all.find((c) => /mcphub_session$/.test(c.name));
}

// a page answer's status: the last navigation response of the page
function status(page) {
  const r = lastDoc.get(page);
  return r ? r.status() : 0;
}

// --- out-of-browser helpers ---------------------------------------------------------------
function pyCall(key, args) {
  const r = spawnSync(PY, ['-I', MCP_CALL, `${HUB}/mcp?key=${key}`, ...args], { timeout: 45000, encoding: 'utf8' });
  const line = (r.stdout || '').trim().split('\n').pop() || '';
  try {
    return JSON.parse(line);
  } catch {
    return { ok: false, status: null, error: `mcp_call.py printed no JSON (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): ${(r.stderr || '').slice(-300)}` };
  }
}

async function adminApi(p) {
  const r = await fetch(HUB + p, { headers: { authorization: `Bearer ${ROOT_KEY}` }, signal: AbortSignal.timeout(5000) });
  const body = await r.text();
  if (r.status !== 200) fail(`GET ${p} with root's key: HTTP ${r.status} ${body.slice(0, 200)}`);
  return JSON.parse(body);
}
// user names in GET /api/admin/users, whatever the exact shape ({data: [{name}]} or {data: {users: …}})
async function userNames() {
  const j = await adminApi('/api/admin/users');
  const names = new Set();
  const walk = (v) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      if (typeof v.name === 'string') names.add(v.name);
      Object.values(v).forEach(walk);
    }
  };
  walk(j.data ?? j);
  return names;
}

async function adminPost(p, body) {
  const r = await fetch(HUB + p, {
    method: 'POST', headers: { authorization: `Bearer ${ROOT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body), signal: AbortSignal.timeout(5000),
  });
  const text = await r.text();
  if (r.status !== 200 && r.status !== 201) fail(`POST ${p} with root's key: HTTP ${r.status} ${text.slice(0, 200)}`);
  return text;
}

// When the OIDC sign-in of NAME failed, the user pages are still walked: NAME is made with the
// admin API and signs in with a key (reported as its own check, so the run still fails).
async function fallbackUser(name, set) {
  if (facts[name]) return;
  await check(`fallback: ${name} made with the admin API signs in by key, so the user pages are still walked`, ['login'], async () => {
    await adminPost('/api/admin/users', { name });
    const key = (/mcphub_[0-9a-f]{64}/.exec(await adminPost(`/api/admin/users/${name}/keys`, { label: 'fallback sign-in' })) || [])[0];
    if (!key) fail(`no key in the answer to POST /api/admin/users/${name}/keys`);
    keys.add(key);
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    await go(page, '/ui/login');
    await el(page, 'form#signin-key input[name=key]', 'form#signin-key input[name=key]');
    await page.fill('form#signin-key input[name=key]', key);
    await clickNav(page, 'form#signin-key button[type=submit], form#signin-key input[type=submit]', 'the key sign-in button');
    await waitUrl(page, onHub('/ui/connect'), '/ui/connect');
    if (name === 'alice') await shot(page, 'connect');
    set({ ctx, page });
    facts[name] = true;
  });
}

async function ctrl(p) {
  const r = await fetch(CTRL + p, { method: 'POST', signal: AbortSignal.timeout(3000) });
  if (r.status !== 200) fail(`provider control POST ${p}: HTTP ${r.status}`);
}

// form POST from a signed-in context, as a browser's form would (same Origin), no redirects followed
async function formPost(ctx, p, form) {
  return ctx.request.post(HUB + p, { form, maxRedirects: 0, headers: { origin: HUB }, failOnStatusCode: false, timeout: WAIT });
}

// The provider's pages: devInteractions login (any password), then its consent screen.
async function providerLogin(page, login, shots) {
  await waitUrl(page, (u) => u.href.startsWith(OP), `the provider's login page (${OP})`);
  await el(page, 'input[name=login]', "the provider's login field");
  if (shots) await shot(page, 'provider-login');
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password');
  await clickNav(page, 'button[type=submit]', "the provider's Sign-in button");
  if (page.url().startsWith(OP) && (await page.locator('input[name=login]').count()) === 0) {
    if (shots) await shot(page, 'provider-consent');
    await clickNav(page, 'button[type=submit]', "the provider's consent button");
  }
  await waitUrl(page, (u) => u.href.startsWith(HUB), 'the hub after the provider');
}

async function oidcSignIn(browser, login, shots) {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  await go(page, '/ui/login');
  await clickNav(page, 'a#signin-oidc', 'the "Sign in with SSO" link a#signin-oidc');
  await providerLogin(page, login, shots);
  return { ctx, page };
}

// a refused sign-in: a page with an h1, an error status, no session
async function expectRefusal(ctx, page, shotName, words) {
  await page.waitForLoadState('load');
  const st = status(page);
  const u = page.url();
  await shot(page, shotName);
  if (u.startsWith(`${HUB}/ui/connect`)) fail(`signed in (landed on /ui/connect) instead of being refused`);
  if (!(st >= 400)) fail(`want an error status for the refusal page, got ${st}; ${await where(page)}`);
  const h1 = await page.locator('h1').count();
  if (!h1) fail(`the refusal page has no h1; ${await where(page)}`);
  const text = (await page.locator('body').innerText()).toLowerCase();
  if (words && !words.some((w) => text.includes(w))) fail(`the refusal page does not say what happened (none of ${words.join('/')}); ${await where(page)}`);
  const c = await sessionCookie(ctx);
  if (c) {
    const r = await ctx.request.get(`${HUB}/ui/connect`, { maxRedirects: 0, failOnStatusCode: false });
    if (r.status() === 200) fail('a session cookie was set and /ui/connect opens with it');
  }
}

function p50(a) {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor((s.length - 1) * 0.5)] : NaN;
}
function pct(a, q) {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] : NaN;
}

// ------------------------------------------------------------------------------------------
// The walk
// ------------------------------------------------------------------------------------------
fs.mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Playwright gives every launch a fresh temporary profile (user-data dir) of its own
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
note(`chromium ${browser.version()} (${CHROMIUM})`);
await fetch(`${CTRL}/reset`, { method: 'POST' }).catch(() => {});

let alice; // {ctx, page}
let aliceKey = '';
let aliceKeyId = '';
let bob;
let root;

const anon = await newContext(browser);
const anonPage = await anon.newPage();

await check('login page: /ui/ sends a signed-out browser to /ui/login, with SSO, GitHub and key sign-in', [], async () => {
  await go(anonPage, '/ui/');
  await waitUrl(anonPage, onHub('/ui/login'), '/ui/login');
  await el(anonPage, 'a#signin-oidc', 'a#signin-oidc');
  await el(anonPage, 'a#signin-github', 'a#signin-github');
  await el(anonPage, 'form#signin-key input[name=key]', 'form#signin-key input[name=key]');
  await shot(anonPage, 'login');
  facts.login = true;
});

await check('headers: pages answer with CSP default-src \'self\', X-Frame-Options DENY, Referrer-Policy no-referrer, nosniff, no-store, Server-Timing', ['login'], async () => {
  const r = await anon.request.get(`${HUB}/ui/login`, { failOnStatusCode: false });
  const h = r.headers();
  const bad = [];
  if (!/default-src 'self'/.test(h['content-security-policy'] || '')) bad.push(`content-security-policy "${h['content-security-policy'] || ''}"`);
  if ((h['x-frame-options'] || '').toUpperCase() !== 'DENY') bad.push(`x-frame-options "${h['x-frame-options'] || ''}"`);
  if ((h['referrer-policy'] || '') !== 'no-referrer') bad.push(`referrer-policy "${h['referrer-policy'] || ''}"`);
  if ((h['x-content-type-options'] || '') !== 'nosniff') bad.push(`x-content-type-options "${h['x-content-type-options'] || ''}"`);
  if (!/no-store/.test(h['cache-control'] || '')) bad.push(`cache-control "${h['cache-control'] || ''}"`);
  if (!/render;dur=[0-9]+\.[0-9]{3}/.test(h['server-timing'] || '')) bad.push(`server-timing "${h['server-timing'] || ''}"`);
  if (bad.length) fail(`GET /ui/login: ${bad.join(', ')}`);
});

await check('signed out: GET /ui/keys redirects to /ui/login', ['login'], async () => {
  const r = await anon.request.get(`${HUB}/ui/keys`, { maxRedirects: 0, failOnStatusCode: false });
  const loc = r.headers().location || '';
  if (!(r.status() === 303 || r.status() === 302) || !/\/ui\/login/.test(loc)) fail(`want 303 to /ui/login, got ${r.status()} location "${loc}"`);
});

await check('oidc: alice signs in at the real provider and lands on Connect (auto-provisioned)', ['login'], async () => {
  alice = await oidcSignIn(browser, 'alice', true);
  await waitUrl(alice.page, onHub('/ui/connect'), '/ui/connect');
  await shot(alice.page, 'connect');
  const names = await userNames();
  if (!names.has('alice')) fail(`no user alice in GET /api/admin/users (${[...names].join(', ')})`);
  facts.alice = true;
  facts.oidc = true;
});
await fallbackUser('alice', (x) => { alice = x; });

await check('connect: the page shows the endpoint and snippets for Cursor, Claude Code and VS Code', ['alice'], async () => {
  const text = await alice.page.locator('body').innerText();
  const missing = [`${HUB}/mcp`, 'Cursor', 'Claude Code', 'VS Code'].filter((w) => !text.includes(w));
  if (missing.length) fail(`missing ${missing.join(', ')} on /ui/connect`);
});

await check('cookie: the session cookie is __Host-mcphub_session; HttpOnly; Secure; SameSite=Lax; Path=/ (host-only)', ['alice'], async () => {
  const c = await sessionCookie(alice.ctx);
  if (!c) fail(`no *mcphub_session cookie in the browser (${(await alice.ctx.cookies(HUB)).map((x) => x.name).join(', ')})`);
  const bad = [];
  if (c.name !== '__Host-mcphub_session') bad.push(`name ${c.name}`);
  if (!c.httpOnly) bad.push('not HttpOnly');
  if (!c.secure) bad.push('not Secure');
  if (c.sameSite !== 'Lax') bad.push(`SameSite ${c.sameSite}`);
  if (c.path !== '/') bad.push(`Path ${c.path}`);
  if (c.domain.startsWith('.')) bad.push(`Domain ${c.domain} (a __Host- cookie has none)`);
  if (!/^[A-Za-z0-9_-]{43}$/.test(c.value)) bad.push(`value is not 43 base64url characters (${c.value.length})`);
  if (bad.length) fail(bad.join(', '));
});

await check('csrf: POST /ui/keys/create without a csrf field → 403 page, with a wrong one → 403 page, no key made', ['alice'], async () => {
  const before = await alice.ctx.request.get(`${HUB}/ui/keys`);
  const countBefore = ((await before.text()).match(/\/revoke"/g) || []).length;
  const none = await formPost(alice.ctx, '/ui/keys/create', { label: 'csrf-none' });
  const wrong = await formPost(alice.ctx, '/ui/keys/create', { label: 'csrf-wrong', csrf: 'A'.repeat(43) });
  const bad = [];
  if (none.status() !== 403) bad.push(`without csrf: HTTP ${none.status()}`);
  if (wrong.status() !== 403) bad.push(`wrong csrf: HTTP ${wrong.status()}`);
  const body = await wrong.text();
  if (wrong.status() === 403 && !/expired|did not come from this page/i.test(body)) bad.push('the 403 page does not say the form expired / did not come from this page');
  if (/mcphub_[0-9a-f]{64}/.test((await none.text()) + body)) bad.push('a key was shown anyway');
  const after = await alice.ctx.request.get(`${HUB}/ui/keys`);
  const countAfter = ((await after.text()).match(/\/revoke"/g) || []).length;
  if (countAfter !== countBefore) bad.push(`the keys table went from ${countBefore} to ${countAfter} rows`);
  if (bad.length) fail(bad.join('; '));
});

await check('keys: create a key with a label; the key is shown once (output#new-key), no-store, Connect snippets filled in', ['alice'], async () => {
  const { page } = alice;
  await go(page, '/ui/keys');
  await el(page, 'form#create-key input[name=label]', 'form#create-key input[name=label]');
  await page.fill('form#create-key input[name=label]', EVIL_LABEL);
  await clickNav(page, 'form#create-key button[type=submit], form#create-key input[type=submit]', 'the create-key button');
  const out = await el(page, 'output#new-key', 'output#new-key');
  aliceKey = (await out.innerText()).trim();
  if (!/^mcphub_[0-9a-f]{64}$/.test(aliceKey)) fail(`output#new-key does not hold a hub key (${aliceKey.length} chars)`);
  keys.add(aliceKey);
  facts.key = true;
  await shot(page, 'keys-new-key');
  const r = lastDoc.get(page);
  const cc = r ? r.headers()['cache-control'] || '' : '';
  if (!/no-store/.test(cc)) fail(`the page showing the key has Cache-Control "${cc}"`);
  const html = await page.content();
  if (html.split(aliceKey).length - 1 < 2) fail('the key is not filled into the Connect snippets on the same page');
  if (!html.includes(`${HUB}/mcp`)) fail('the snippets on the new-key page lack the endpoint');
});

await check('keys: the list shows the label (HTML escaped), created / last used, a revoke form; the key is not shown again', ['key'], async () => {
  const { page } = alice;
  await go(page, '/ui/keys');
  const table = await el(page, 'table#keys', 'table#keys');
  const row = table.locator('tr', { hasText: LABEL }).first();
  try {
    await row.waitFor({ timeout: WAIT });
  } catch {
    fail(`no row with label ${LABEL} in table#keys; ${await where(page)}`);
  }
  const action = await row.locator('form[action$="/revoke"]').first().getAttribute('action', { timeout: WAIT });
  const m = /^\/ui\/keys\/([^/]+)\/revoke$/.exec(action || '');
  if (!m) fail(`revoke form action "${action}" is not /ui/keys/{id}/revoke`);
  aliceKeyId = decodeURIComponent(m[1]);
  facts.keyId = true;
  await shot(page, 'keys');
  if (await page.locator('#inj-label').count()) fail('the label\'s <b id="inj-label"> became an element: not escaped');
  if (!(await row.innerText()).includes('<b id="inj-label">')) fail('the label is not shown literally in its row');
  if ((await page.content()).includes(aliceKey)) fail('the key itself is on the keys page again');
});

await check('tokens: the Tokens page lists DEMO_TOKEN for server demo; set it (write-only field; the value never shown back)', ['alice'], async () => {
  const { page } = alice;
  await go(page, '/ui/tokens');
  const form = await el(page, 'form.set-token:has(input[name=name][value="DEMO_TOKEN"])', 'form.set-token for DEMO_TOKEN');
  await shot(page, 'tokens');
  const type = await form.locator('input[name=value]').getAttribute('type');
  if (type !== 'password') fail(`the value field is type "${type}", want password`);
  await form.locator('input[name=value]').fill(DEMO_TOKEN);
  await clickNav(page, 'form.set-token:has(input[name=name][value="DEMO_TOKEN"]) button[type=submit], form.set-token:has(input[name=name][value="DEMO_TOKEN"]) input[type=submit]', 'the set-token button');
  await waitUrl(page, onHub('/ui/tokens'), '/ui/tokens after setting the token');
  await shot(page, 'tokens-set');
  if ((await page.content()).includes(DEMO_TOKEN)) fail('the token value is on the page after setting it');
  const text = await page.locator('body').innerText();
  if (!/DEMO_TOKEN/.test(text)) fail('DEMO_TOKEN not named on the page');
  facts.token = true;
});

await check('escaping: a token name that is HTML (POST /ui/tokens/<b id=inj-tok>) is refused and never echoed raw', ['alice'], async () => {
  await go(alice.page, '/ui/tokens');
  const csrf = await (await el(alice.page, 'input[name=csrf]', 'a csrf field on the tokens page')).getAttribute('value');
  const evil = '<b id="inj-tok">X</b>';
  const r = await formPost(alice.ctx, `/ui/tokens/${encodeURIComponent(evil)}`, { csrf, name: evil, value: 'v' });
  const body = await r.text();
  if (r.status() < 400) fail(`want a 4xx refusal, got ${r.status()}`);
  if (body.includes(evil)) fail('the name is echoed unescaped in the answer');
});

await check('mcp: the Python SDK client with the new key (/mcp?key=…) lists demo\'s tools and calls echo; the upstream got alice\'s DEMO_TOKEN', ['key', 'token'], async () => {
  const r = pyCall(aliceKey, ['--call', 'echo', '--text', 'ui-walk-call']);
  if (!r.ok) fail(`the call failed: ${r.error}`);
  if (!r.tools.includes('echo')) fail(`echo not in tools/list: ${r.tools.join(', ')}`);
  if (!String(r.text).includes(MARKER)) fail(`the result lacks the upstream's marker for DEMO_TOKEN (${MARKER}): ${r.text}`);
  facts.called = true;
  // a call naming a tool that is HTML, for the activity page's escaping check
  pyCall(aliceKey, ['--call', EVIL_TOOL]);
});

await check('activity: table#activity shows the echo call (server demo), the chart svg#activity-chart is there', ['called'], async () => {
  const { page } = alice;
  await go(page, '/ui/activity');
  const table = await el(page, 'table#activity', 'table#activity');
  await el(page, 'svg#activity-chart', 'svg#activity-chart');
  await shot(page, 'activity');
  const text = await table.innerText();
  if (!/\becho\b/.test(text)) fail(`no echo call in table#activity: "${text.slice(0, 300)}"`);
  if (!/\bdemo\b/.test(text)) fail('the echo row does not name server demo');
  facts.activity = true;
});

await check('escaping: a tool name that is HTML shows literally on the activity page', ['activity'], async () => {
  const { page } = alice;
  if (await page.locator('#inj-tool').count()) fail('<img id="inj-tool"> became an element: not escaped');
  const text = await page.locator('table#activity').innerText();
  if (!text.includes(EVIL_TOOL)) fail(`the call to ${EVIL_TOOL} is not listed literally in table#activity`);
});

await check('bob: a second user signs in through the provider', ['login', 'oidc'], async () => {
  bob = await oidcSignIn(browser, 'bob', false);
  await waitUrl(bob.page, onHub('/ui/connect'), '/ui/connect');
  facts.bob = true;
});
await fallbackUser('bob', (x) => { bob = x; });

await check("bob: his activity and keys pages show nothing of alice's", ['bob', 'activity', 'keyId'], async () => {
  await go(bob.page, '/ui/activity');
  await shot(bob.page, 'activity-bob');
  const text = await bob.page.locator('body').innerText();
  if (/\becho\b/.test(text) || text.includes(EVIL_TOOL)) fail("alice's calls are on bob's activity page");
  await go(bob.page, '/ui/keys');
  const html = await bob.page.content();
  if (html.includes(aliceKeyId) || html.includes(LABEL)) fail("alice's key is on bob's keys page");
});

await check("bob: POST /ui/keys/<alice's key id>/revoke with bob's own csrf → 404; alice's key still works", ['bob', 'keyId', 'called'], async () => {
  await go(bob.page, '/ui/keys');
  const csrf = await (await el(bob.page, 'input[name=csrf]', "a csrf field on bob's keys page")).getAttribute('value');
  const r = await formPost(bob.ctx, `/ui/keys/${encodeURIComponent(aliceKeyId)}/revoke`, { csrf });
  if (r.status() !== 404) fail(`want 404, got ${r.status()}`);
  const c = pyCall(aliceKey, ['--call', 'echo', '--text', 'still-mine']);
  if (!c.ok) fail(`alice's key stopped working: ${c.error}`);
});

await check('bob: the admin pages refuse a non-admin with a 403 page', ['bob'], async () => {
  await go(bob.page, '/ui/admin/users');
  await shot(bob.page, 'refused-not-admin');
  if (status(bob.page) !== 403) fail(`GET /ui/admin/users as bob: HTTP ${status(bob.page)}; ${await where(bob.page)}`);
  await go(bob.page, '/ui/admin/users/alice');
  if (status(bob.page) !== 403) fail(`GET /ui/admin/users/alice as bob: HTTP ${status(bob.page)}`);
});

// --- the refused OIDC sign-ins (each in a fresh browser context) --------------------------
// [what, control switch, screenshot, account, words the page may use, the provider's `applied` counter]
const refusals = [
  ['state mismatch (the callback URL\'s state tampered)', '/callback-state?on=1', 'refused-oidc-state', 'alice', ['state', 'expired', 'again', 'sign'], 'state'],
  ['nonce mismatch (the provider signed another nonce)', '/nonce?on=1', 'refused-oidc-nonce', 'alice', ['nonce', 'token', 'sign'], 'nonce'],
  ['tampered ID token signature', '/tamper?on=1', 'refused-oidc-tampered', 'alice', ['signature', 'token', 'sign'], 'tamper'],
  ['expired ID token (provider clock 2 h behind)', '/clock?offset=-7200', 'refused-oidc-expired', 'alice', ['expired', 'token', 'sign'], 'offset'],
];
async function applied(counter) {
  const r = await fetch(`${CTRL}/state`, { signal: AbortSignal.timeout(3000) });
  return (await r.json()).applied[counter];
}
for (const [what, ctl, shotName, login, words, counter] of refusals) {
  await check(`oidc: ${what} → a clear refusal page, no session`, ['login', 'oidc'], async () => {
    await ctrl('/reset');
    await ctrl(ctl);
    const before = await applied(counter);
    let ctx;
    try {
      const s = await oidcSignIn(browser, login, false);
      ctx = s.ctx;
      await expectRefusal(s.ctx, s.page, shotName, words);
      // the refusal must come from the misbehaviour, which the provider must have done
      if ((await applied(counter)) <= before) fail(`the provider never applied ${ctl} during this sign-in`);
    } finally {
      await ctrl('/reset');
      if (ctx) await ctx.close();
    }
  });
}

// (the refusals need a working sign-in first: a refusal from a broken flow would prove nothing)
await check('oidc: eve (email outside example.com) gets a refusal page and no user is created', ['login', 'oidc'], async () => {
  const s = await oidcSignIn(browser, 'eve', false);
  await expectRefusal(s.ctx, s.page, 'refused-oidc-eve', ['not allowed', 'allowed', 'eve@evil.example', 'admin']);
  await s.ctx.close();
  const names = await userNames();
  const hits = [...names].filter((n) => /eve/i.test(n));
  if (hits.length) fail(`user(s) ${hits.join(', ')} exist after eve's refused sign-in`);
});

// --- GitHub --------------------------------------------------------------------------------
async function githubSignIn(login, shots) {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  await go(page, '/ui/login');
  await clickNav(page, 'a#signin-github', 'the GitHub sign-in link a#signin-github');
  await waitUrl(page, (u) => u.href.startsWith(`${GH}/login/oauth/authorize`), "the (fake) GitHub's authorize page");
  if (shots) await shot(page, 'github-authorize');
  const scope = new URL(page.url()).searchParams.get('scope') || '';
  await clickNav(page, `#as-${login}`, `the "Authorize as ${login}" button`);
  return { ctx, page, scope };
}
await check('github: octocat (member of acme) signs in and is auto-provisioned', ['login'], async () => {
  const s = await githubSignIn('octocat', true);
  if (!/read:org/.test(s.scope)) note(`the hub asks GitHub for scope "${s.scope}" (GET /user/orgs needs read:org or user: 403 without)`);
  await waitUrl(s.page, onHub('/ui/connect'), '/ui/connect');
  await shot(s.page, 'connect-octocat');
  await s.ctx.close();
  const names = await userNames();
  if (!names.has('octocat')) fail(`no user octocat in GET /api/admin/users (${[...names].join(', ')})`);
  facts.octocat = true;
});
await check('github: mallory (in no allowed org) gets a refusal page and no user is created', ['login', 'octocat'], async () => {
  const s = await githubSignIn('mallory', false);
  await expectRefusal(s.ctx, s.page, 'refused-github-mallory', ['not allowed', 'allowed', 'org', 'mallory', 'admin']);
  await s.ctx.close();
  const names = await userNames();
  if (names.has('mallory')) fail('user mallory exists after the refused sign-in');
});

// --- the admin's pages (root signs in with its hub key) -----------------------------------
await check("admin: root signs in by pasting its hub key (form#signin-key)", ['login'], async () => {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  await go(page, '/ui/login');
  await el(page, 'form#signin-key input[name=key]', 'form#signin-key input[name=key]');
  await page.fill('form#signin-key input[name=key]', ROOT_KEY);
  await clickNav(page, 'form#signin-key button[type=submit], form#signin-key input[type=submit]', 'the key sign-in button');
  await waitUrl(page, onHub('/ui/connect'), '/ui/connect');
  root = { ctx, page };
  facts.root = true;
});
await check('admin: users page lists alice, bob, octocat (not eve, not mallory)', ['root'], async () => {
  await go(root.page, '/ui/admin/users');
  await shot(root.page, 'admin-users');
  if (status(root.page) !== 200) fail(`HTTP ${status(root.page)}; ${await where(root.page)}`);
  const text = await root.page.locator('body').innerText();
  const missing = ['alice', 'bob', 'octocat'].filter((n) => !text.includes(n));
  if (missing.length) fail(`missing ${missing.join(', ')}`);
  if (/\beve\b|\bmallory\b/.test(text)) fail('a refused identity is listed as a user');
});
await check("admin: alice's user page shows her key and token name, never the token value", ['root', 'token'], async () => {
  await go(root.page, '/ui/admin/users/alice');
  await shot(root.page, 'admin-user-alice');
  if (status(root.page) !== 200) fail(`HTTP ${status(root.page)}; ${await where(root.page)}`);
  const html = await root.page.content();
  if (html.includes(DEMO_TOKEN)) fail('the token value is on the admin page');
  if (!html.includes('DEMO_TOKEN')) fail('the token name DEMO_TOKEN is not on the page');
  if (aliceKeyId && !html.includes(aliceKeyId)) fail(`alice's key id is not on the page`);
});
await check('admin: upstream sessions page', ['root'], async () => {
  await go(root.page, '/ui/admin/sessions');
  await shot(root.page, 'admin-sessions');
  if (status(root.page) !== 200) fail(`HTTP ${status(root.page)}; ${await where(root.page)}`);
  if (!(await root.page.locator('body').innerText()).includes('demo')) fail("server demo's session (from alice's calls) is not listed");
});
await check('admin: servers page shows demo with its health', ['root'], async () => {
  await go(root.page, '/ui/admin/servers');
  await shot(root.page, 'admin-servers');
  if (status(root.page) !== 200) fail(`HTTP ${status(root.page)}; ${await where(root.page)}`);
  if (!(await root.page.locator('body').innerText()).includes('demo')) fail('server demo is not listed');
});

// --- revoke, then the key is refused --------------------------------------------------------
await check('keys: alice revokes her key on the Keys page; the next Python SDK call gets 401', ['keyId', 'called'], async () => {
  const { page } = alice;
  await go(page, '/ui/keys');
  const sel = `table#keys form[action="/ui/keys/${aliceKeyId}/revoke"] button, table#keys form[action="/ui/keys/${aliceKeyId}/revoke"] input[type=submit]`;
  await clickNav(page, sel, `the revoke button of key ${aliceKeyId}`);
  await waitUrl(page, onHub('/ui/keys'), '/ui/keys after revoking');
  await shot(page, 'keys-revoked');
  const r = pyCall(aliceKey, ['--call', 'echo']);
  if (r.ok) fail('the revoked key still works');
  if (r.status !== 401) fail(`want 401, got ${r.status}: ${r.error}`);
});

// --- timings --------------------------------------------------------------------------------
await check(`timings: ${TIMING_LOADS} loads of each page, every answer 200 with Server-Timing render;dur`, ['alice', 'root'], async () => {
  const plan = [
    [anon, '/ui/login'],
    [alice.ctx, '/ui/connect'],
    [alice.ctx, '/ui/keys'],
    [alice.ctx, '/ui/tokens'],
    [alice.ctx, '/ui/activity'],
    [root.ctx, '/ui/admin/users'],
    [root.ctx, '/ui/admin/users/alice'],
    [root.ctx, '/ui/admin/sessions'],
    [root.ctx, '/ui/admin/servers'],
  ];
  const bad = [];
  const rows = [];
  for (const [ctx, p] of plan) {
    const ms = [];
    for (let i = 0; i < TIMING_LOADS; i += 1) {
      const r = await ctx.request.get(HUB + p, { maxRedirects: 0, failOnStatusCode: false });
      const m = /render;dur=([0-9.]+)/.exec(r.headers()['server-timing'] || '');
      if (r.status() !== 200 || !m) {
        bad.push(`${p}: HTTP ${r.status()} server-timing "${r.headers()['server-timing'] || ''}"`);
        break;
      }
      ms.push(Number(m[1]));
    }
    if (ms.length) rows.push([p, ms]);
  }
  const lines = [
    `Server time per page render (Server-Timing render;dur, ms), ${TIMING_LOADS} loads each, one run of scripts/ui-test.sh:`,
    '',
    '| page | loads | p50 ms | p90 ms | max ms |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map(([p, ms]) => `| ${p} | ${ms.length} | ${p50(ms).toFixed(3)} | ${pct(ms, 0.9).toFixed(3)} | ${Math.max(...ms).toFixed(3)} |`),
  ];
  // every /ui answer the browser itself got during the walk, by method and page (sign-in
  // callbacks include the hub's calls to the provider)
  const walked = [...timings.entries()].sort(([a], [b]) => a.localeCompare(b));
  lines.push('', 'Every /ui answer the browser got during the walk (Server-Timing render;dur, ms):', '',
    '| request | answers | p50 ms | max ms |', '| --- | ---: | ---: | ---: |',
    ...walked.map(([k, ms]) => `| ${k} | ${ms.length} | ${p50(ms).toFixed(3)} | ${Math.max(...ms).toFixed(3)} |`));
  fs.writeFileSync(path.join(SHOTS, 'timings.md'), `${lines.join('\n')}\n`);
  for (const l of lines) console.log(`# ${l}`);
  if (bad.length) fail(bad.join('; '));
});

await check('headers: every /ui page the browser was shown (refusals and errors too) had CSP, X-Frame-Options, Referrer-Policy, nosniff, no-store and Server-Timing', ['login'], async () => {
  if (headerFaults.size) fail([...headerFaults.keys()].slice(0, 6).join('; '));
  note(`${pagesSeen} /ui pages seen by the browser`);
});

// --- logout ----------------------------------------------------------------------------------
await check('logout: POST /ui/logout ends the session; /ui/connect then goes to /ui/login', ['alice'], async () => {
  const { page, ctx } = alice;
  await go(page, '/ui/connect');
  const before = await sessionCookie(ctx);
  await clickNav(page, 'form[action="/ui/logout"] button, form[action="/ui/logout"] input[type=submit]', 'the logout button (form action /ui/logout)');
  await waitUrl(page, onHub('/ui/login'), '/ui/login after logout');
  await go(page, '/ui/connect');
  await waitUrl(page, onHub('/ui/login'), '/ui/login');
  if (before) {
    // the old cookie value, replayed, opens nothing
    const r = await anon.request.get(`${HUB}/ui/connect`, {
      maxRedirects: 0, failOnStatusCode: false, headers: { cookie: `${before.name}=${before.value}` },
    });
    if (r.status() === 200) fail('the session cookie from before logout still opens /ui/connect');
  }
});

// --- sign-in rate limit (last: it uses up this IP's sign-in budget) ----------------------------
await check('rate limit: repeated key sign-ins from one IP get 429 with Retry-After (a page)', ['login'], async () => {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  await go(page, '/ui/login');
  let csrf = await (await el(page, 'form#signin-key input[name=csrf]', 'form#signin-key input[name=csrf]')).getAttribute('value');
  let got = null;
  let gotBody = '';
  const seen = [];
  for (let i = 0; i < 15 && !got; i += 1) {
    const r = await ctx.request.post(`${HUB}/ui/login/key`, {
      form: { key: `mcphub_${'0'.repeat(64)}`, csrf }, maxRedirects: 0, failOnStatusCode: false, headers: { origin: HUB },
    });
    seen.push(r.status());
    const body = await r.text();
    if (r.status() === 429) {
      got = r;
      gotBody = body;
    }
    // the refusal is the sign-in page again, with a new double-submit token (and its cookie)
    const m = /name="csrf" value="([^"]*)"/.exec(body);
    if (m) csrf = m[1];
  }
  await ctx.close();
  if (!got) fail(`15 wrong-key sign-ins in a row, no 429 (statuses ${seen.join(' ')})`);
  if (!got.headers()['retry-after']) fail('429 without Retry-After');
  if (!/<h1/i.test(gotBody)) fail('the 429 answer is not a page with an h1');
});

await browser.close();
note(`walk: ${passed} passed, ${failed} failed; screenshots in ${SHOTS}`);
process.exit(0);
