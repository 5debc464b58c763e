#!/usr/bin/env python3
"""The Python SDK client of scripts/oauth-test.sh: mcp 2.3.0's OAuthClientProvider (an httpx2.Auth)
on the httpx2.AsyncClient of streamable_http_client, registered by Dynamic Client Registration
(RFC 7591; no client_metadata_url, no token_endpoint_auth_method: the hub's default,
client_secret_basic with a secret), through the whole OAuth flow against the hub:

  discover  the first request (initialize) → 401 → PRM + AS metadata → POST /oauth/register →
            redirect_handler(url)
  browser   scripts/oauth/authorize.mjs plays the person; callback_handler returns
            AuthorizationCodeResult(code, state, iss) from the captured redirect (the SDK checks
            state and iss itself)
  token     POST /oauth/token, then the initialize is retried
  mcp       tools/list, tools/call echo
  expiry    the raw access token is polled on /mcp until the hub refuses it, then until the
            provider counts it expired too (the SDK refreshes before a request once expires_in
            has passed, and never after a 401)
  refresh   the next call: the SDK refreshes first (POST /oauth/token grant_type=refresh_token)
  revoke    POST /oauth/revoke (Basic client authentication) with the refresh token → the raw
            access token gets 401 and the SDK's next call fails: the SDK starts a new
            authorization, which this script's redirect_handler refuses

Usage: py_client.py (environment: OA_HUB, OA_CB_PORT, OA_AUTHORIZE, OA_NODE, OA_SECRETS, OA_MARKER,
OA_CLIENT_NAME). Prints one JSON line {ok, error, facts, steps} as ts_client.mjs does; tokens,
codes and the client secret go to OA_SECRETS only.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from urllib.parse import parse_qs, quote, urlparse

import anyio
import httpx2

from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

HUB = os.environ["OA_HUB"]
CB = f"http://127.0.0.1:{os.environ['OA_CB_PORT']}/callback"
AUTHORIZE = os.environ["OA_AUTHORIZE"]
NODE = os.environ["OA_NODE"]
SECRETS = os.environ["OA_SECRETS"]
MARKER = os.environ["OA_MARKER"]
CLIENT_NAME = os.environ["OA_CLIENT_NAME"]
WAIT = 10.0

facts: dict = {}
steps: dict = {}
step = "setup"
step_start = time.monotonic()
seen_secrets: list[str] = []


def begin(name: str) -> None:
    """Ends the current step (its wall ms, and t1: epoch ms) and starts NAME (t0)."""
    global step, step_start
    now = time.monotonic()
    if step in steps:
        steps[step]["ms"] = round((now - step_start) * 1000)
        steps[step]["t1"] = round(time.time() * 1000)
    step, step_start = name, now
    steps.setdefault(name, {"ms": 0, "t0": round(time.time() * 1000), "requests": []})


def secret(v: str | None) -> None:
    if v and v not in seen_secrets:
        seen_secrets.append(v)
        fd = os.open(SECRETS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(v + "\n")


def scrub(s: str) -> str:
    for v in seen_secrets:
        s = s.replace(v, "<secret>")
    return re.sub(r"mcphub_(at|rt|cs)_[0-9a-f]+", r"mcphub_\1_…", s)[:500]


def msg(e: BaseException) -> str:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return scrub(f"{type(e).__name__}: {e}")


# --- every HTTP request through the SDK's client (the auth flow's requests too) --------------
started: dict[int, float] = {}
tokens_used: list[str] = []  # access tokens sent on /mcp, in order (compared, never printed)


async def on_request(request: httpx2.Request) -> None:
    started[id(request)] = time.monotonic()
    if request.url.path == "/mcp":
        if step == "token":
            begin("mcp")  # the retried initialize after the token request
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            tokens_used.append(auth[7:])


async def on_response(response: httpx2.Response) -> None:
    req = response.request
    ms = (time.monotonic() - started.pop(id(req), time.monotonic())) * 1000
    rec = {"m": req.method, "path": req.url.path, "st": response.status_code, "ms": round(ms, 1)}
    m = re.search(r"(?:^|,)\s*\w+;dur=([0-9.]+)", response.headers.get("server-timing", ""))
    if m:
        rec["srv"] = float(m.group(1))
    steps.setdefault(step, {"ms": 0, "requests": []})["requests"].append(rec)
    if req.url.path in ("/oauth/token", "/oauth/register") and response.status_code in (200, 201):
        await response.aread()
        try:
            j = response.json()
            for k in ("access_token", "refresh_token", "client_secret"):
                secret(j.get(k))
        except ValueError:
            pass


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        secret(tokens.access_token)
        secret(tokens.refresh_token)
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        secret(client_info.client_secret)
        self.client = client_info


class Reauthorization(Exception):
    """The SDK asked for a second authorization (this script refuses it)."""


browser: dict = {}
redirects: list[str] = []


async def redirect_handler(url: str) -> None:
    redirects.append(url)
    if len(redirects) > 1:
        raise Reauthorization("the SDK asked for a new authorization")
    q = parse_qs(urlparse(url).query)
    facts["authorizeParams"] = {
        k: (q.get(k) or [None])[0] for k in ("response_type", "client_id", "redirect_uri", "scope", "resource", "code_challenge_method")
    }
    facts["clientIdIsDcr"] = bool(re.fullmatch(r"mcphub_client_[0-9a-f]{32}", facts["authorizeParams"]["client_id"] or ""))
    begin("browser")
    with anyio.fail_after(60):
        r = await anyio.run_process([NODE, AUTHORIZE, url], env={**os.environ, "OA_SHOT_PREFIX": "py"}, check=False)
    line = (r.stdout.decode(errors="replace").strip().splitlines() or [""])[-1]
    try:
        b = json.loads(line)
    except ValueError:
        b = {"ok": False, "error": f"authorize.mjs printed no JSON (exit {r.returncode}): {scrub(r.stderr.decode(errors='replace')[-400:])}"}
    browser.update(b)
    steps["browser"]["requests"] = b.get("requests", [])
    facts["browser"] = {k: b.get(k) for k in ("ok", "consentShown", "loginShown", "consent", "connectedApp", "error")}
    if not b.get("ok"):
        raise RuntimeError(f"browser step: {b.get('error')}")


async def callback_handler() -> AuthorizationCodeResult:
    q = parse_qs(urlparse(browser["url"]).query)
    code = (q.get("code") or [None])[0]
    secret(code)
    facts["callback"] = {"hasCode": bool(code), "iss": (q.get("iss") or [None])[0], "error": (q.get("error") or [None])[0]}
    begin("token")
    if not code:
        raise RuntimeError(f"the callback has no code (error={facts['callback']['error']})")
    return AuthorizationCodeResult(code=code, state=(q.get("state") or [None])[0], iss=(q.get("iss") or [None])[0])


def text_of(result) -> str:
    return "\n".join(getattr(b, "text", "") or "" for b in (getattr(result, "content", None) or []))


async def refresh_counter(raw: httpx2.AsyncClient) -> float:
    r = await raw.get(f"{HUB}/metrics")
    m = re.search(r'^mcphub_oauth_tokens_issued_total\{[^}]*grant="refresh_token"[^}]*\}\s+([0-9.e+]+)', r.text, re.M)
    return float(m.group(1)) if m else 0.0


async def raw_status(raw: httpx2.AsyncClient, token: str) -> tuple[int, str]:
    t = time.monotonic()
    r = await raw.post(
        f"{HUB}/mcp",
        headers={"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
    steps[step]["requests"].append({"m": "POST", "path": "/mcp", "st": r.status_code, "ms": round((time.monotonic() - t) * 1000, 1), "raw": True})
    return r.status_code, r.headers.get("www-authenticate", "")


async def run() -> None:
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=f"{HUB}/mcp",
        client_metadata=OAuthClientMetadata(redirect_uris=[CB], client_name=CLIENT_NAME),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    http = httpx2.AsyncClient(
        auth=provider,
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"request": [on_request], "response": [on_response]},
    )
    raw = httpx2.AsyncClient(timeout=5.0)
    begin("discover")
    async with raw, http, Client(streamable_http_client(f"{HUB}/mcp", http_client=http)) as client:
        facts["connected"] = True
        facts["clientId"] = storage.client.client_id if storage.client else None
        facts["clientAuthMethod"] = storage.client.token_endpoint_auth_method if storage.client else None
        facts["hasClientSecret"] = bool(storage.client and storage.client.client_secret)
        t = storage.tokens
        facts["token"] = {
            "accessPrefix": bool(t and re.fullmatch(r"mcphub_at_[0-9a-f]{64}", t.access_token)),
            "refreshPrefix": bool(t and re.fullmatch(r"mcphub_rt_[0-9a-f]{64}", t.refresh_token or "")),
            "tokenType": t.token_type if t else None,
            "expiresIn": t.expires_in if t else None,
            "scope": t.scope if t else None,
        }
        if steps.get("token") and step == "token":
            begin("mcp")
        with anyio.fail_after(WAIT):
            tools = (await client.list_tools()).tools
        facts["tools"] = sorted(x.name for x in tools)
        with anyio.fail_after(WAIT):
            text = text_of(await client.call_tool("echo", {"text": "hello from the python oauth test"}))
        facts["callText"] = "hello from the python oauth test" in text
        facts["callMarker"] = MARKER in text

        begin("expiry")
        old = storage.tokens
        deadline = time.monotonic() + 30
        polls, status, www = 0, 0, ""
        while time.monotonic() < deadline:
            polls += 1
            status, www = await raw_status(raw, old.access_token)
            if status == 401:
                break
            await anyio.sleep(0.25)
        facts["expiry"] = {"status": status, "polls": polls, "wwwInvalidToken": 'error="invalid_token"' in www}
        if status != 401:
            raise RuntimeError(f"the access token was still accepted 30 s later (HTTP {status})")
        # the SDK's own clock: it refreshes before a request once it counts the token expired
        while provider.context.is_token_valid() and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        facts["expiry"]["sdkCountsExpired"] = not provider.context.is_token_valid()

        begin("refresh")
        before = await refresh_counter(raw)
        n_used = len(tokens_used)
        with anyio.fail_after(WAIT):
            text2 = text_of(await client.call_tool("echo", {"text": "after the refresh"}))
        after = await refresh_counter(raw)
        now = storage.tokens
        facts["refresh"] = {
            "callOk": "after the refresh" in text2 and MARKER in text2,
            "newAccess": now.access_token != old.access_token,
            "newRefresh": now.refresh_token != old.refresh_token,
            "sentNewToken": bool(tokens_used[n_used:]) and all(x == now.access_token for x in tokens_used[n_used:]),
            "counterBefore": before,
            "counterAfter": after,
            "paths": [f"{r['m']} {r['path']} {r['st']}" for r in steps["refresh"]["requests"]],
        }

        begin("revoke")
        ci = storage.client
        cur = storage.tokens
        basic = httpx2.BasicAuth(quote(ci.client_id, safe=""), quote(ci.client_secret or "", safe=""))
        t0 = time.monotonic()
        rv = await raw.post(
            f"{HUB}/oauth/revoke",
            data={"token": cur.refresh_token, "token_type_hint": "refresh_token"},
            auth=basic,
        )
        steps["revoke"]["requests"].append({"m": "POST", "path": "/oauth/revoke", "st": rv.status_code, "ms": round((time.monotonic() - t0) * 1000, 1)})
        raw_st, _ = await raw_status(raw, cur.access_token)
        sdk_error = None
        try:
            with anyio.fail_after(WAIT):
                await client.call_tool("echo", {"text": "after the revocation"})
        except BaseException as e:  # noqa: BLE001 - any failure is the expected outcome here
            sdk_error = msg(e)
        facts["revoke"] = {
            "status": rv.status_code,
            "rawStatus": raw_st,
            "sdkError": sdk_error,
            "askedForAuthorization": len(redirects) == 2,
            "paths": [f"{r['m']} {r['path']} {r['st']}" for r in steps["revoke"]["requests"]],
        }
        begin("close")


def main() -> None:
    error = None
    try:
        anyio.run(run)
    except BaseException as e:  # noqa: BLE001 - every failure is reported as JSON
        if step == "close":  # leaving the session after the revocation: not part of the flow
            facts["closeError"] = msg(e)
        else:
            error = msg(e)
            facts["failedIn"] = step
    begin("done")
    steps.pop("done", None)
    steps.pop("close", None)
    print(json.dumps({"ok": error is None, "error": error, "facts": facts, "steps": steps}), flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
