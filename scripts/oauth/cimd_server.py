#!/usr/bin/env python3
"""The client's https site for scripts/oauth-test.sh: serves one Client ID Metadata Document
(draft-ietf-oauth-client-id-metadata-document) over TLS on loopback, as a real MCP client's
website would, so the hub can fetch the https client_id URL both SDKs insist on.

Usage: cimd_server.py PORT CERT.pem KEY.pem DOC.json PATH

GET PATH → 200 DOC.json (application/json, Cache-Control: public, max-age=300); GET /_count →
{"fetches": N} (how many times PATH was fetched); anything else 404. One line per request on
stdout. The certificate is the test's own (its CA goes to the hub's auth.oauth.clientMetadata.caFile).
"""

import http.server
import json
import ssl
import sys

port, cert, key, doc_file, doc_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
with open(doc_file, "rb") as f:
    DOC = f.read()
fetches = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        global fetches
        if self.path == doc_path:
            fetches += 1
            body, ctype, extra = DOC, "application/json", [("Cache-Control", "public, max-age=300")]
            status = 200
        elif self.path == "/_count":
            body, ctype, extra, status = json.dumps({"fetches": fetches}).encode(), "application/json", [], 200
        else:
            body, ctype, extra, status = b"not found\n", "text/plain", [], 404
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(f"cimd: {self.address_string()} {fmt % args}", flush=True)


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(f"cimd: serving https://127.0.0.1:{port}{doc_path}", flush=True)
srv.serve_forever()
