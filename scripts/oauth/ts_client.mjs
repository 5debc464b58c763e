// The TypeScript SDK client of scripts/oauth-test.sh: @modelcontextprotocol/sdk 1.29.0's
// StreamableHTTPClientTransport with an OAuthClientProvider of our own (in memory), registered
// by Client ID Metadata Document (its client_id is an https URL the test serves), through the
// whole OAuth flow against the hub:
//   discover  connect → 401 → PRM + AS metadata → redirectToAuthorization(url)
//   browser   scripts/oauth/authorize.mjs plays the person (sign-in at the OpenID provider,
//             consent) and gives back the redirect to our callback
//   token     state and iss checked here (the SDK checks neither) → transport.finishAuth(code)
//   mcp       a new transport: initialize, tools/list, tools/call echo
//   expiry    the raw access token is polled on /mcp until the hub refuses it (accessTokenSecs)
//   refresh   the next SDK call: 401 → the SDK refreshes (it never does so before a 401) → retried
//   revoke    POST /oauth/revoke with the refresh token → the raw access token gets 401, the SDK's
//             next call fails: its refresh gets invalid_grant, it asks for a new authorization
//   reauth    that second authorization in a fresh browser: signed in again, the consent is
//             remembered (no consent page), finishAuth, a call works again
// Prints one JSON line: {ok, error?, facts: {...}, steps: {NAME: {ms, requests: [...]}}}; the
// shell turns the facts into checks. Tokens, codes and secrets never reach stdout: they are
// appended to OA_SECRETS (one a line) for the shell's log grep.
//
// Environment: OA_HUB (http://127.0.0.1:P), OA_CIMD_URL (https URL of the metadata document),
// OA_CB_PORT (the redirect URI's port), OA_AUTHORIZE (authorize.mjs), OA_NODE (the Node to run it
// with), OA_SECRETS (file), OA_MARKER (what the reflect-mode mock says for alice), OA_CLIENT_NAME.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const env = (n) => {
  const v = process.env[n];
  if (!v) {
    console.log(JSON.stringify({ ok: false, error: `environment: ${n} is not set` }));
    process.exit(2);
  }
  return v;
};
const HUB = env('OA_HUB');
const CIMD_URL = env('OA_CIMD_URL');
const CB = `http://127.0.0.1:${env('OA_CB_PORT')}/callback`;
const AUTHORIZE = env('OA_AUTHORIZE');
const NODE = env('OA_NODE');
const SECRETS = env('OA_SECRETS');
const MARKER = env('OA_MARKER');
const CLIENT_NAME = env('OA_CLIENT_NAME');
const WAIT_MS = 8000;

// --- what the run saw ---------------------------------------------------------------------
const facts = {};
const steps = {};
let step = 'setup';
let stepStart = performance.now();
// a step's wall time (ms) and its wall-clock bounds t0..t1 (epoch ms: the shell matches the
// hub's log lines to steps by them)
function begin(name) {
  const now = performance.now();
  if (steps[step]) {
    steps[step].ms = Math.round(now - stepStart);
    steps[step].t1 = Date.now();
  }
  step = name;
  stepStart = now;
  steps[name] = steps[name] || { ms: 0, t0: Date.now(), requests: [] };
}
function end() {
  begin('done');
  delete steps.done;
}
const secrets = new Set();
function secret(v) {
  if (v && !secrets.has(v)) {
    secrets.add(v);
    fs.appendFileSync(SECRETS, `${v}\n`, { mode: 0o600 });
  }
}
function scrub(s) {
  let out = String(s);
  for (const v of secrets) out = out.split(v).join('<secret>');
  return out.replace(/mcphub_(at|rt)_[0-9a-f]+/g, 'mcphub_$1_…').slice(0, 500);
}
const msg = (e) => scrub(`${e?.constructor?.name || 'Error'}: ${e?.message ?? e}`);

// every HTTP request the SDK makes goes through here (the transport's `fetch` option covers the
// auth requests too): method, path, status, wall ms, the hub's Server-Timing if any
async function recFetch(url, init) {
  const u = new URL(url instanceof Request ? url.url : String(url));
  const method = init?.method || (url instanceof Request ? url.method : 'GET');
  const t = performance.now();
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    steps[step]?.requests.push({ m: method, path: u.pathname, st: 0, ms: Math.round(performance.now() - t) });
    throw e;
  }
  const st = /(?:^|,)\s*\w+;dur=([0-9.]+)/.exec(res.headers.get('server-timing') || '');
  steps[step]?.requests.push({
    m: method, path: u.pathname, st: res.status, ms: Math.round((performance.now() - t) * 10) / 10,
    ...(st ? { srv: Number(st[1]) } : {}),
  });
  if (u.pathname === '/oauth/token' && res.ok) {
    try {
      const j = await res.clone().json();
      secret(j.access_token);
      secret(j.refresh_token);
    } catch {}
  }
  return res;
}

// --- the provider: everything in memory -----------------------------------------------------
class MemoryProvider {
  constructor() {
    this._tokens = undefined;
    this._client = undefined;
    this._verifier = undefined;
    this.lastState = undefined;
    this.redirects = []; // authorization URLs the SDK asked us to open
    this.invalidated = [];
  }
  get redirectUrl() { return CB; }
  get clientMetadataUrl() { return CIMD_URL; }
  get clientMetadata() {
    return {
      client_name: CLIENT_NAME,
      redirect_uris: [CB],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this.lastState = crypto.randomBytes(16).toString('base64url');
    return this.lastState;
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(t) {
    secret(t.access_token);
    secret(t.refresh_token);
    this._tokens = t;
  }
  redirectToAuthorization(url) { this.redirects.push(url.href); }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }
  invalidateCredentials(scope) {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
  }
}

// --- helpers --------------------------------------------------------------------------------
// the browser step: authorize.mjs URL → {ok, url (the callback with code/state/iss), consent, …}
function authorize(url, shotPrefix) {
  return new Promise((resolve) => {
    const child = spawn(NODE, [AUTHORIZE, url], {
      env: { ...process.env, OA_SHOT_PREFIX: shotPrefix },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() || '';
      try {
        resolve(JSON.parse(line));
      } catch {
        resolve({ ok: false, error: `authorize.mjs printed no JSON (exit ${code}): ${scrub(err.slice(-400))}` });
      }
    });
  });
}

function textOf(result) {
  return (result?.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

// a raw POST /mcp with a bearer, as no SDK: the hub's status for that token
async function rawStatus(token) {
  const t = performance.now();
  const r = await fetch(`${HUB}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    signal: AbortSignal.timeout(5000),
  });
  await r.text().catch(() => '');
  steps[step]?.requests.push({ m: 'POST', path: '/mcp', st: r.status, ms: Math.round((performance.now() - t) * 10) / 10, raw: true });
  return { status: r.status, www: r.headers.get('www-authenticate') || '' };
}

async function refreshCounter() {
  const r = await fetch(`${HUB}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  const m = /^mcphub_oauth_tokens_issued_total\{[^}]*grant="refresh_token"[^}]*\}\s+([0-9.e+]+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function connect(provider) {
  const transport = new StreamableHTTPClientTransport(new URL(`${HUB}/mcp`), { authProvider: provider, fetch: recFetch });
  const client = new Client({ name: 'mcphub-oauth-test-ts', version: '1.0.0' });
  await client.connect(transport, { timeout: WAIT_MS });
  return { client, transport };
}

async function callEcho(client, text) {
  const r = await client.callTool({ name: 'echo', arguments: { text } }, undefined, { timeout: WAIT_MS });
  return textOf(r);
}

function fail(m) {
  throw new Error(m);
}

// --- the flow -------------------------------------------------------------------------------
async function run() {
  const provider = new MemoryProvider();

  begin('discover');
  const t1 = new StreamableHTTPClientTransport(new URL(`${HUB}/mcp`), { authProvider: provider, fetch: recFetch });
  const c1 = new Client({ name: 'mcphub-oauth-test-ts', version: '1.0.0' });
  try {
    await c1.connect(t1, { timeout: WAIT_MS });
    fail('connect without a token succeeded: the hub did not ask for authorization');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) fail(`connect without a token: want UnauthorizedError, got ${msg(e)}`);
  }
  facts.unauthorized = true;
  facts.clientId = provider.clientInformation()?.client_id || null;
  facts.usedCimd = facts.clientId === CIMD_URL;
  if (provider.redirects.length !== 1) fail(`want one redirectToAuthorization, got ${provider.redirects.length}`);
  const authUrl = new URL(provider.redirects[0]);
  facts.authorizeParams = Object.fromEntries(
    ['response_type', 'client_id', 'redirect_uri', 'scope', 'resource', 'code_challenge_method'].map((k) => [k, authUrl.searchParams.get(k)]),
  );
  facts.authorizeHasState = authUrl.searchParams.get('state') === provider.lastState;
  facts.authorizeHasChallenge = /^[A-Za-z0-9_-]{43}$/.test(authUrl.searchParams.get('code_challenge') || '');

  begin('browser');
  const b = await authorize(authUrl.href, 'ts');
  steps.browser.requests = b.requests || [];
  facts.browser = { ok: b.ok, consentShown: b.consentShown, loginShown: b.loginShown, consent: b.consent, connectedApp: b.connectedApp, error: b.error };
  if (!b.ok) fail(`browser step: ${b.error}`);
  const cb = new URL(b.url);
  const code = cb.searchParams.get('code');
  secret(code);
  facts.callback = {
    path: cb.pathname, hasCode: !!code, stateOk: cb.searchParams.get('state') === provider.lastState,
    iss: cb.searchParams.get('iss'), error: cb.searchParams.get('error'),
  };
  if (!code) fail(`the callback has no code (error=${cb.searchParams.get('error')}: ${cb.searchParams.get('error_description')})`);
  if (!facts.callback.stateOk) fail('the callback state is not the one sent');
  if (facts.callback.iss !== HUB) fail(`the callback iss is ${facts.callback.iss}, want ${HUB}`);

  begin('token');
  await t1.finishAuth(code);
  await t1.close().catch(() => {});
  const tokens1 = provider.tokens();
  facts.token = {
    accessPrefix: /^mcphub_at_[0-9a-f]{64}$/.test(tokens1?.access_token || ''),
    refreshPrefix: /^mcphub_rt_[0-9a-f]{64}$/.test(tokens1?.refresh_token || ''),
    tokenType: tokens1?.token_type, expiresIn: tokens1?.expires_in, scope: tokens1?.scope,
  };

  begin('mcp');
  const { client, transport } = await connect(provider);
  const listed = await client.listTools(undefined, { timeout: WAIT_MS });
  facts.tools = listed.tools.map((t) => t.name).sort();
  const text = await callEcho(client, 'hello from the ts oauth test');
  facts.callText = text.includes('hello from the ts oauth test');
  facts.callMarker = text.includes(MARKER);

  // wait (bounded, observable) until the hub refuses the access token the SDK holds
  begin('expiry');
  const old = provider.tokens();
  const deadline = Date.now() + 30000;
  let polls = 0;
  let last = { status: 0, www: '' };
  while (Date.now() < deadline) {
    polls += 1;
    last = await rawStatus(old.access_token);
    if (last.status === 401) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  facts.expiry = { status: last.status, polls, wwwInvalidToken: /error="invalid_token"/.test(last.www) };
  if (last.status !== 401) fail(`the access token was still accepted 30 s later (HTTP ${last.status})`);

  begin('refresh');
  const before = await refreshCounter(); // (not through recFetch: not one of the flow's requests)
  const text2 = await callEcho(client, 'after the refresh');
  const now = provider.tokens();
  const after = await refreshCounter();
  facts.refresh = {
    callOk: text2.includes('after the refresh') && text2.includes(MARKER),
    newAccess: now.access_token !== old.access_token,
    newRefresh: now.refresh_token !== old.refresh_token,
    counterBefore: before, counterAfter: after,
    paths: steps.refresh.requests.map((r) => `${r.m} ${r.path} ${r.st}`),
  };

  begin('revoke');
  const cur = provider.tokens();
  const rv = await recFetch(`${HUB}/oauth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: cur.refresh_token, token_type_hint: 'refresh_token', client_id: CIMD_URL }).toString(),
  });
  await rv.text().catch(() => '');
  const raw = await rawStatus(cur.access_token);
  let sdkError = null;
  const redirectsBefore = provider.redirects.length;
  try {
    await callEcho(client, 'after the revocation');
  } catch (e) {
    sdkError = msg(e);
    facts.revokeSdkUnauthorized = e instanceof UnauthorizedError;
  }
  facts.revoke = {
    status: rv.status, rawStatus: raw.status, sdkError,
    askedForAuthorization: provider.redirects.length === redirectsBefore + 1,
    invalidated: provider.invalidated,
    paths: steps.revoke.requests.map((r) => `${r.m} ${r.path} ${r.st}`),
  };
  await transport.close().catch(() => {});

  // the SDK's second authorization, in a fresh browser: consent remembered
  if (provider.redirects.length === redirectsBefore + 1) {
    begin('reauth');
    const b2 = await authorize(provider.redirects[provider.redirects.length - 1], 'ts-again');
    steps.reauth.requests = b2.requests || [];
    facts.reauth = { ok: b2.ok, consentShown: b2.consentShown, error: b2.error };
    if (b2.ok) {
      const cb2 = new URL(b2.url);
      const code2 = cb2.searchParams.get('code');
      secret(code2);
      facts.reauth.stateOk = cb2.searchParams.get('state') === provider.lastState;
      const t3 = new StreamableHTTPClientTransport(new URL(`${HUB}/mcp`), { authProvider: provider, fetch: recFetch });
      try {
        await t3.finishAuth(code2);
        const c3 = await connect(provider);
        facts.reauth.callOk = (await callEcho(c3.client, 'after the second authorization')).includes(MARKER);
        await c3.transport.close().catch(() => {});
      } catch (e) {
        facts.reauth.callError = msg(e);
      }
    }
  }
  end();
}

let error = null;
try {
  await run();
} catch (e) {
  error = msg(e);
  facts.failedIn = step;
  end();
}
console.log(JSON.stringify({ ok: !error, error, facts, steps }));
process.exit(0);
