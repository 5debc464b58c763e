#!/usr/bin/env python3
"""A small stand-in for GitHub's OAuth app endpoints and the two REST calls a sign-in needs,
for scripts/ui-test.sh (github.com is not reachable from test machines). Shapes follow
GitHub's documentation:

  * "Authorizing OAuth apps" (web application flow):
      GET  /login/oauth/authorize?client_id&redirect_uri&scope&state
           -> the user approves -> 302 redirect_uri?code=CODE&state=STATE
           (here: a page with one button per test login; a redirect_uri that does not start
           with the app's registered callback URL gets GitHub's error page instead)
      POST /login/oauth/access_token  (client_id, client_secret, code, redirect_uri)
           -> `access_token=…&scope=…&token_type=bearer` (form encoded), or JSON
              {"access_token", "scope", "token_type": "bearer"} with `Accept: application/json`
  * "Troubleshooting OAuth app access token request errors": a wrong client secret, a bad or
    already used code, or a different redirect_uri are answered with HTTP 200 and
    {"error": "incorrect_client_credentials" | "bad_verification_code" | "redirect_uri_mismatch",
     "error_description", "error_uri"} — GitHub does not use 4xx there. A code is one-use and
    lives 10 minutes.
  * REST API (under /api here; the hub's `auth.github.apiUrl`):
      GET /api/user       (Authorization: Bearer T | token T) -> {login, id, name, email, ...}
      GET /api/user/orgs  -> [{login, id, ...}]. GitHub's docs ("List organizations for the
                             authenticated user"): OAuth tokens need the `user` or `read:org` scope
                             for this endpoint, "requests with insufficient scope will receive a
                             403 Forbidden response" — so does this fake.
      Bad or missing credentials -> 401 {"message": "Bad credentials", "documentation_url": ...}.

Test logins: `octocat` (member of org `acme`), `mallory` (no org).

Usage: github_fake.py PORT CLIENT_ID CLIENT_SECRET CALLBACK_URL
GET /_state answers what was issued and used (for the test's log; no secrets in it).
"""

from __future__ import annotations

import html
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS = {
    "octocat": {"id": 583231, "name": "The Octocat", "email": "octocat@example.com",
                "orgs": [{"login": "acme", "id": 9001}]},
    "mallory": {"id": 777001, "name": "Mallory", "email": "mallory@example.net", "orgs": []},
}
CODE_TTL_S = 600
DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"


class State:
    def __init__(self, client_id: str, client_secret: str, callback: str):
        self.client_id = client_id
        self.client_secret = client_secret
        self.callback = callback
        self.lock = threading.Lock()
        self.codes: dict[str, dict] = {}  # code -> {login, scope, redirect_uri, at}
        self.tokens: dict[str, dict] = {}  # token -> {login, scope}
        self.counts = {"authorize": 0, "codes": 0, "exchanged": 0, "refused": 0, "api": 0}


S: State


class Handler(BaseHTTPRequestHandler):
    server_version = "github-fake/1"

    def log_message(self, fmt, *args):  # one line per request, without the query (codes)
        sys.stderr.write("github_fake: %s %s -> %s\n" % (self.command, self.path.split("?")[0], args[1] if len(args) > 1 else ""))

    # -- helpers -----------------------------------------------------------------------------
    def send(self, status: int, body: bytes, ctype: str, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def json(self, status: int, obj):
        self.send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def page(self, status: int, title: str, body_html: str):
        doc = f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title></head><body>{body_html}</body></html>"
        self.send(status, doc.encode(), "text/html; charset=utf-8")

    def token_of(self) -> dict | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, tok = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not tok:
            return None
        with S.lock:
            return S.tokens.get(tok.strip())

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if url.path == "/login/oauth/authorize":
            return self.authorize(q)
        if url.path == "/login/oauth/authorize/approve":
            return self.approve(q)
        if url.path in ("/api/user", "/api/user/orgs"):
            return self.api(url.path)
        if url.path == "/_state":
            with S.lock:
                return self.json(200, dict(S.counts))
        self.json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/login/oauth/access_token":
            return self.json(404, {"message": "Not Found"})
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace")
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            try:
                form = {k: str(v) for k, v in json.loads(raw or "{}").items()}
            except ValueError:
                form = {}
        else:
            form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
        # GitHub also takes the parameters on the query string
        form = {**dict(urllib.parse.parse_qsl(url.query)), **form}
        self.access_token(form)

    def authorize(self, q: dict):
        with S.lock:
            S.counts["authorize"] += 1
        if q.get("client_id") != S.client_id:
            return self.page(404, "Not Found", "<h1>404</h1><p>The OAuth app (client_id) is not known.</p>")
        redirect_uri = q.get("redirect_uri") or S.callback
        if not redirect_uri.startswith(S.callback):
            return self.page(400, "Redirect URI mismatch",
                             "<h1>The redirect_uri MUST match the registered callback URL for this application.</h1>")
        buttons = "".join(
            f"<form method=get action='/login/oauth/authorize/approve'>"
            f"<input type=hidden name=login value='{html.escape(login)}'>"
            f"<input type=hidden name=redirect_uri value='{html.escape(redirect_uri)}'>"
            f"<input type=hidden name=state value='{html.escape(q.get('state', ''))}'>"
            f"<input type=hidden name=scope value='{html.escape(q.get('scope', ''))}'>"
            f"<button type=submit id='as-{html.escape(login)}'>Authorize as {html.escape(login)}</button></form>"
            for login in USERS)
        self.page(200, "Authorize application",
                  f"<h1>Authorize {html.escape(S.client_id)}</h1><p>scope: <code>{html.escape(q.get('scope', ''))}</code></p>{buttons}")

    def approve(self, q: dict):
        login = q.get("login", "")
        if login not in USERS:
            return self.page(404, "Not Found", "<h1>No such user</h1>")
        code = secrets.token_hex(10)
        with S.lock:
            S.codes[code] = {"login": login, "scope": q.get("scope", ""), "redirect_uri": q.get("redirect_uri", ""), "at": time.time()}
            S.counts["codes"] += 1
        sep = "&" if "?" in q["redirect_uri"] else "?"
        loc = q["redirect_uri"] + sep + urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
        self.send(302, b"", "text/html", {"Location": loc})

    def access_token(self, form: dict):
        def err(error: str, desc: str, anchor: str):
            with S.lock:
                S.counts["refused"] += 1
            sys.stderr.write(f"github_fake: access_token refused: {error}\n")
            body = {"error": error, "error_description": desc, "error_uri": f"{DOCS}#{anchor}"}
            if "json" in self.headers.get("Accept", ""):
                return self.json(200, body)
            self.send(200, urllib.parse.urlencode(body).encode(), "application/x-www-form-urlencoded; charset=utf-8")

        if form.get("client_id") != S.client_id or not secrets.compare_digest(form.get("client_secret", ""), S.client_secret):
            return err("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.", "incorrect-client-credentials")
        with S.lock:
            entry = S.codes.pop(form.get("code", ""), None)  # one use, wrong or right
        if entry is None or time.time() - entry["at"] > CODE_TTL_S:
            return err("bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code")
        if form.get("redirect_uri") and form["redirect_uri"] != entry["redirect_uri"]:
            return err("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.", "redirect-uri-mismatch")
        token = "gho_" + secrets.token_hex(18)
        with S.lock:
            S.tokens[token] = {"login": entry["login"], "scope": entry["scope"]}
            S.counts["exchanged"] += 1
        # GitHub answers the granted scopes comma-separated
        scope = ",".join(s for s in entry["scope"].replace(",", " ").split() if s)
        body = {"access_token": token, "token_type": "bearer", "scope": scope}
        if "json" in self.headers.get("Accept", ""):
            return self.json(200, body)
        self.send(200, urllib.parse.urlencode(body).encode(), "application/x-www-form-urlencoded; charset=utf-8")

    def api(self, path: str):
        with S.lock:
            S.counts["api"] += 1
        tok = self.token_of()
        if tok is None:
            return self.json(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
        u = USERS[tok["login"]]
        if path == "/api/user":
            return self.json(200, {"login": tok["login"], "id": u["id"], "node_id": f"MDQ6VXNlcj{u['id']}",
                                   "type": "User", "site_admin": False, "name": u["name"], "email": u["email"]})
        scopes = set(tok["scope"].replace(",", " ").split())
        if not scopes & {"read:org", "user", "admin:org", "write:org"}:
            sys.stderr.write(f"github_fake: /user/orgs refused: the token's scopes {sorted(scopes)} include neither read:org nor user\n")
            return self.json(403, {"message": "Resource not accessible by integration: this endpoint needs the user or read:org scope",
                                   "documentation_url": "https://docs.github.com/rest/orgs/orgs#list-organizations-for-the-authenticated-user",
                                   "status": "403"})
        orgs = [{"login": o["login"], "id": o["id"], "url": f"/api/orgs/{o['login']}", "description": None} for o in u["orgs"]]
        self.json(200, orgs)


def main():
    global S
    if len(sys.argv) != 5:
        sys.exit("usage: github_fake.py PORT CLIENT_ID CLIENT_SECRET CALLBACK_URL")
    port, client_id, client_secret, callback = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    S = State(client_id, client_secret, callback)
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    sys.stderr.write(f"github_fake: listening on 127.0.0.1:{port}\n")
    srv.serve_forever()


if __name__ == "__main__":
    main()
