// A real OpenID provider for scripts/ui-test.sh: oidc-provider (the certified Node
// implementation, pinned in scripts/ui/package.json) with one client and test accounts,
// plus a small control server through which the test switches on misbehaviour for the
// negative checks. Every misbehaviour is done by the real provider: its clock, its token
// response, the nonce it signs.
//
//   node provider.mjs   (environment:)
//     OP_PORT        the provider's port on 127.0.0.1 (issuer http://127.0.0.1:OP_PORT)
//     OP_CTRL_PORT   the control server's port on 127.0.0.1
//     HUB_URL        the hub's publicUrl (redirect_uri HUB_URL/ui/callback/oidc)
//     OP_CLIENT_SECRET  the secret of client `mcphub` (client_secret_basic)
//
// Accounts (devInteractions login: any password; findAccount knows only these):
//   alice  alice@example.com  email_verified true
//   bob    bob@example.com    email_verified true
//   eve    eve@evil.example   email_verified true (outside the hub's allowed domain)
// Claims: sub = account id, email, email_verified, name (in the ID token too:
// conformIdTokenClaims false, as providers such as Google put them there).
//
// Control (POST, answers the current switches as JSON):
//   /clock?offset=S  the provider's Date.now runs S seconds off while it answers /token
//                    (offset -7200: the ID token it signs expired an hour ago). Only /token:
//                    with the whole process off, the provider's own interaction cookies
//                    would be born expired and the browser could not log in at all.
//   /tamper?on=1     /token answers carry an id_token whose signature has bytes flipped
//   /nonce?on=1      the authorization request's `nonce` is rewritten before the provider
//                    reads it, so the signed ID token carries a nonce the hub never sent
//   /callback-state?on=1  the `state` on the redirect back to the hub's callback is rewritten (an
//                    attacker's callback URL: Playwright cannot route a redirect's target)
//   /reset           all off
//   GET /state       the switches and how many times each was applied
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`provider.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const PORT = Number(env('OP_PORT'));
const CTRL_PORT = Number(env('OP_CTRL_PORT'));
const HUB_URL = env('HUB_URL');
const CLIENT_SECRET = env('OP_CLIENT_SECRET');
const ISSUER = `http://127.0.0.1:${PORT}`;

const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Example' },
  bob: { email: 'bob@example.com', email_verified: true, name: 'Bob Example' },
  eve: { email: 'eve@evil.example', email_verified: true, name: 'Eve Outsider' },
};

// --- the switches -------------------------------------------------------------------------
const sw = { offset: 0, tamper: false, nonce: false, state: false };
const applied = { offset: 0, tamper: 0, nonce: 0, state: 0 };
const realNow = Date.now.bind(Date);
let clockActive = 0; // >0 while a /token request is being answered with the offset on
Date.now = () => realNow() + (clockActive > 0 ? sw.offset * 1000 : 0);

// --- the provider -------------------------------------------------------------------------
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'ui-test-rs256', use: 'sig', alg: 'RS256' };

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: 'mcphub',
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: [`${HUB_URL}/ui/callback/oidc`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  conformIdTokenClaims: false,
  // seconds; an ID token lives an hour (the /clock check shifts its iat/exp two hours back)
  ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 3600, Interaction: 600, Session: 3600 },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const a = ACCOUNTS[id];
    if (!a) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...a }) };
  },
});

// /nonce: rewrite the authorization request's nonce before the provider parses it.
provider.use(async (ctx, next) => {
  if (sw.nonce && ctx.method === 'GET' && ctx.path === '/auth') {
    const q = new URLSearchParams(ctx.querystring);
    if (q.has('nonce')) {
      q.set('nonce', `rewritten-${crypto.randomBytes(8).toString('hex')}`);
      ctx.querystring = q.toString();
      applied.nonce += 1;
    }
  }
  await next();
});

// /callback-state: rewrite the state on the redirect to the hub's callback.
provider.use(async (ctx, next) => {
  await next();
  const loc = ctx.response.get('location');
  if (sw.state && loc && loc.startsWith(`${HUB_URL}/ui/callback/oidc`)) {
    const u = new URL(loc);
    if (u.searchParams.has('state')) {
      u.searchParams.set('state', `tampered-${crypto.randomBytes(8).toString('hex')}`);
      ctx.redirect(u.href);
      applied.state += 1;
    }
  }
});

// /clock and /tamper: around the token endpoint.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/token') return next();
  const shifted = sw.offset !== 0;
  if (shifted) {
    clockActive += 1;
    applied.offset += 1;
  }
  try {
    await next();
  } finally {
    if (shifted) clockActive -= 1;
  }
  if (sw.tamper && ctx.body && typeof ctx.body === 'object' && typeof ctx.body.id_token === 'string') {
    const [h, p, s] = ctx.body.id_token.split('.');
    const sig = Buffer.from(s, 'base64url');
    for (let i = 0; i < 8 && i < sig.length; i += 1) sig[sig.length - 1 - i] ^= 0x5a;
    ctx.body = { ...ctx.body, id_token: `${h}.${p}.${sig.toString('base64url')}` };
    applied.tamper += 1;
  }
});

provider.on('server_error', (ctx, err) => console.error('provider server_error', err));

const opServer = provider.listen(PORT, '127.0.0.1', () => console.log(`provider: issuer ${ISSUER}`));

// --- the control server -------------------------------------------------------------------
const ctrl = http.createServer((req, res) => {
  const url = new URL(req.url, `http://127.0.0.1:${CTRL_PORT}`);
  const q = url.searchParams;
  let status = 200;
  if (req.method === 'POST' && url.pathname === '/clock') {
    const off = Number(q.get('offset'));
    if (Number.isFinite(off)) sw.offset = off;
    else status = 400;
  } else if (req.method === 'POST' && url.pathname === '/tamper') {
    sw.tamper = q.get('on') === '1';
  } else if (req.method === 'POST' && url.pathname === '/nonce') {
    sw.nonce = q.get('on') === '1';
  } else if (req.method === 'POST' && url.pathname === '/callback-state') {
    sw.state = q.get('on') === '1';
  } else if (req.method === 'POST' && url.pathname === '/reset') {
    Object.assign(sw, { offset: 0, tamper: false, nonce: false, state: false });
  } else if (!(req.method === 'GET' && url.pathname === '/state')) {
    status = 404;
  }
  console.log(`control: ${req.method} ${url.pathname}${url.search} -> ${status}`);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ...sw, applied }));
});
ctrl.listen(CTRL_PORT, '127.0.0.1', () => console.log(`provider control on 127.0.0.1:${CTRL_PORT}`));

const stop = () => {
  opServer.close();
  ctrl.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
