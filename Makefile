# MCPHub — the two set-up commands are `make run` and `make test` (README.md).
CARGO ?= cargo

.PHONY: build run install test check-order unit e2e stdio cluster ui oauth conformance fuzz bench bench-scale bench-instructions profile bench-shaping bench-stdio bench-cluster soak soak-cluster attack clippy clean

build:
	$(CARGO) build --release --locked

## The hub on the embedded default (no Redis), in front of two demo upstreams.
run: build
	scripts/run.sh

## Install as a systemd service (scripts/install.sh): binary to $(PREFIX)/bin, unit,
## /etc/mcphub with example config + env file (existing ones kept), the `mcphub` user.
## PREFIX (/usr/local), DESTDIR, SYSCONFDIR (/etc), UNITDIR; INSTALL_FLAGS=--no-user to skip user/chown.
install: build
	PREFIX=$${PREFIX:-/usr/local} DESTDIR=$${DESTDIR:-} scripts/install.sh $(INSTALL_FLAGS)

## The whole suite: unit + integration (real sockets) + fuzz smoke, e2e with
## real MCP clients and servers from npm and PyPI, and the official MCP
## conformance suite directly against mcphub-mock and through the hub, real
## stdio (and SSE) servers behind the hub, three hubs behind HAProxy on a Redis with Sentinel, the browser test of the sign-in and
## users' pages, and the OAuth sign-in of the official TypeScript and Python SDK clients.
test: check-order build unit e2e stdio cluster ui oauth conformance

## The module order of the library (docs/module-order.md): fails on an import that runs upward.
check-order:
	python3 scripts/check-module-order.py

unit: check-order
	$(CARGO) test --release --locked --workspace --all-targets

e2e: build
	scripts/e2e.sh

## Issue 19's real-parts test (~35 s; scripts/stdio-test.sh): server-memory, server-filesystem,
## mcp-server-time, mcp-server-git and server-everything run by the hub as stdio processes, driven
## through it by the Python SDK (legacy and 2026-07-28) and the Inspector CLI: tool calls, progress,
## sampling and elicitation, ${user.X} env isolation between users (one process per value), the
## processes stopped with the hub; with the SSE transport, SSE servers too. Parts: e2e's npm/PyPI set.
stdio: build
	scripts/stdio-test.sh

## Issue 20's real-parts test (~2-3 min; scripts/cluster-test.sh): 3 hubs behind HAProxy (round-robin, no
## stickiness) on a Redis primary + replica with Sentinel, all on loopback ports; Python SDK clients (legacy and
## 2026-07-28) list, call, get list_changed, answer sampling and resume a stream through the balancer; then
## mcphub-load, 70 clients for CLUSTER_SECS (60) s, while a hub is killed and restarted, a hub reloaded and the
## Redis primary killed (Sentinel promotes the replica): failed calls by cause, re-initializations, sessions
## lost, upstream initialize, all checked against issue 20's targets. Installs haproxy (apt) when missing.
cluster: build
	CLUSTER_SECS=$${CLUSTER_SECS:-60} scripts/cluster-test.sh

## The same with a 600 s load (CLUSTER_SECS; an event every CLUSTER_EVENT_EVERY s, default CLUSTER_SECS/4).
soak-cluster: build
	CLUSTER_SECS=$${CLUSTER_SECS:-600} CLUSTER_EVENT_EVERY=$${CLUSTER_EVENT_EVERY:-40} scripts/cluster-test.sh

## Issue 17's real-parts test: sign-in through a real OpenID provider (oidc-provider) and a
## GitHub OAuth fake, the /ui pages in headless Debian chromium (Playwright), a tool call
## with the key made on the pages (Python SDK). Installs chromium / npm / PyPI parts on
## first run (scripts/ui-test.sh); screenshots and page timings in target/ui-screenshots/.
ui: build
	scripts/ui-test.sh

## Issue 18's real-parts test: the official MCP TypeScript SDK (client id = an https Client ID
## Metadata Document) and Python SDK (Dynamic Client Registration) clients sign in to the hub with
## OAuth — 401 → discovery → sign-in at oidc-provider and the consent page in headless chromium →
## token → tools/call → refresh after a 5 s expiry → revocation → 401 — plus the conformance
## suite's authorization-server metadata scenario (scripts/oauth-test.sh; the parts of `make ui`,
## conformance 0.2.0-alpha.12, openssl). Screenshots and the per-step timings in target/oauth-screenshots/.
oauth: build
	scripts/oauth-test.sh

## The official MCP conformance suites (@modelcontextprotocol/conformance 0.1.16, and
## 0.2.0-alpha.12 at 2025-11-25 and 2026-07-28; server scenarios) against mcphub-mock
## directly and through the hub (scripts/conformance.sh; ~40 s, each run bounded).
conformance: build
	CONFORMANCE_SUITE_TIMEOUT=$${CONFORMANCE_SUITE_TIMEOUT:-300} CONFORMANCE_ALPHA_TIMEOUT=$${CONFORMANCE_ALPHA_TIMEOUT:-300} scripts/conformance.sh

## Coverage-guided fuzzing of the HTTP request reader (optional; see fuzz/).
fuzz:
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run request_reader -- -max_total_time=60

## Benchmarks, one table from one run (~2 min; scripts/bench.sh): tools/call at 70 connections direct,
## through mcphub-forward (the bare-forwarder floor) and through the hub; tools/list over 3 servers warm
## and cold; hub RSS idle / +1000 sessions / +1000 keep-alive connections; latency added at 1 connection.
## Figures printed, nothing asserted (needs wrk).
bench: build
	scripts/bench.sh

## Scale benchmark (issue 16; ~5 min; scripts/bench-scale.sh): how the hub's cost grows with the work —
## keep-alive connections (1…1000), upstream servers (1…100, 57 tools each), idle client sessions, users —
## as tables (printed, tables.md), rows.tsv and a plot (scale.svg, scale.png) in BENCH_SCALE_OUT
## (target/bench-scale); BENCH_SCALE_SECS (5) s per wrk point. Figures only (needs wrk, python3).
bench-scale: build
	BENCH_SCALE_SECS=$${BENCH_SCALE_SECS:-5} scripts/bench-scale.sh

## User-space instructions per request (callgrind; ~1 min; scripts/bench/instructions.sh): forwarder and hub
## tools/call, hub warm tools/list — a figure that does not drift with the machine's load. INSTR_TOP=N: top functions.
bench-instructions: build
	scripts/bench/instructions.sh

## Where the CPU goes (scripts/bench/profile.sh; perf record -g under wrk, inferno flame graph, top frames):
## PROFILE="hub call-legacy" (default) | "forward call-legacy" | "hub call-modern" | "hub list-warm";
## output in target/profile/<target>-<scenario>/ (needs linux-perf, inferno: cargo install inferno).
profile: build
	scripts/bench/profile.sh $${PROFILE:-hub call-legacy}

## Shaping benchmark (issue 6, docs/decisions.md D8's scenario): 70 clients against mcphub-mock
## --max-concurrency 8 --latency-ms 200, through the hub (maxConcurrency 8) and directly; SHAPING_SECS (60).
bench-shaping: build
	SHAPING_SECS=$${SHAPING_SECS:-60} scripts/bench-shaping.sh

## What a stdio server costs behind the hub (issue 19; ~1 min; scripts/bench-stdio.sh): start latency
## and RSS (process tree) of `npx -y @modelcontextprotocol/server-memory@2026.8.31` vs `node <entry>`
## (medians of BENCH_STARTS=5 fresh starts), tools/call req/s at BENCH_CONNS=70 through the hub to
## `mcphub-mock --stdio` (one shared process) vs the mock over HTTP. Figures only (e2e's parts, npx).
bench-stdio: build
	scripts/bench-stdio.sh

## Several instances (issue 20; ~2 min; scripts/bench-cluster.sh): tools/call req/s through HAProxy in front of
## 1 hub vs 3 hubs (same load: BENCH_CLUSTER_CONNS=70 clients, BENCH_CLUSTER_SECS=20 s each), and the Redis
## operations per tools/call, per initialize and per notification delivery (INFO commandstats deltas on the
## primary, less the background rate, divided by the requests). Figures only (the parts of `make cluster`).
bench-cluster: build
	scripts/bench-cluster.sh

## Soak: 70 legacy clients for SOAK_SECS (default 600) s through the hub (Redis store, a mock
## expiring sessions every 50 uses), with an upstream restart at 25 %, a hub restart at 50 % and a
## Redis restart at 75 % (SOAK_EVENTS=0: none), then SOAK_DIRECT_SECS (60) s directly; calls, failures
## by cause, sessions re-established, hub RSS; nothing asserted (needs redis-server).
soak: build
	SOAK_SECS=$${SOAK_SECS:-600} scripts/soak.sh

## HTTP attack battery against the real binary (measurement, run by hand; not in `make test`).
attack: build
	scripts/attack.py

clippy:
	$(CARGO) clippy --release --locked --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
