#!/usr/bin/env python3
"""E2E client built on the official MCP Python SDK (mcp==2.3.0), used by scripts/e2e.sh.

How the 2.x SDK chooses its protocol era (read from mcp/client/client.py and
mcp/client/_probe.py of mcp 2.3.0):

  * `mcp.Client(url, mode=...)` -- a URL string means the streamable HTTP
    transport (`streamable_http_client`).
  * mode="auto" (the DEFAULT): `negotiate_auto()` first sends `server/discover`
    at the newest modern version (2026-07-28, per-request `_meta` +
    MCP-Protocol-Version / Mcp-Method headers, no session). If the answer is a
    DiscoverResult listing a modern version, the session `adopt()`s it and the
    client stays modern (no initialize, no Mcp-Session-Id). Any JSON-RPC error
    (or HTTP 4xx mapped to one) falls back to the legacy `initialize`
    handshake -- except -32022 whose `supported` list is modern-only and
    disjoint (then it raises), and -32022 naming a mutual modern version (then
    one re-probe at that version). A discover result advertising no modern
    version also falls back to initialize. Network errors propagate.
  * mode="legacy": `session.initialize()` only (byte-identical pre-2026
    behaviour: initialize -> notifications/initialized -> Mcp-Session-Id).
  * mode="2026-07-28" (a modern version string): adopts that version directly
    with a synthesized DiscoverResult, no probe at all.
  * `client.protocol_version` tells what was negotiated.

Usage:
  py_client.py URL --mode auto|legacy|2026-07-28 [--expect-era modern|legacy]
               [--expect-tool NAME ...] [--call NAME=TEXT ...]
               [--sampling] [--elicitation] [--clients N] [--tag TAG]
               [--expect-error NAME=TEXT ...] [--call-json NAME=JSON=>EXPECT ...]
               [--error-json NAME=JSON=>EXPECT ...] [--progress-call NAME=JSON=>N ...]
               [--forbid TEXT ...]

--call NAME[:ARG]=TEXT calls tool NAME with {ARG: TEXT} (ARG "-": no arguments; ARG defaults to "text";
mcphub-mock's echo takes {"text"}, server-everything's echo takes {"message"}) and
requires TEXT to appear in the result's text content (NAME[:ARG]=TEXT=>EXPECT: requires
EXPECT instead); `{tag}` in TEXT is the client's tag.
--sampling / --elicitation install the SDK's callbacks (so the client declares the
capability): sampling answers "sampled-by-<tag>" and fails the run if the prompt does not
name the client's own tag (a request meant for another client); elicitation accepts with
content built from the requested schema (defaults, first enum value, "<tag>" for strings).
--clients N runs N clients at once (tags TAG00..TAG99: no tag contains another), each over its
own connection.
--expect-error NAME=TEXT calls NAME with no arguments and requires an error (isError or a
JSON-RPC error) whose text contains TEXT.
--call-json NAME=JSON=>EXPECT calls NAME with the JSON object JSON (`{tag}` replaced) and requires
EXPECT in the result (EXPECT1 && EXPECT2: both); --error-json the same but requires an error (isError or a JSON-RPC error)
naming EXPECT; --progress-call NAME=JSON=>N sends a progress token with the call and requires at
least N notifications/progress for it before the result (scripts/stdio-test.sh).
--forbid TEXT fails the run if TEXT appears in any tool result (another user's value). Prints one `info:` line per step; on failure prints
`FAIL: reason` as the last line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio

from mcp import Client, types


class Fail(Exception):
    pass


def fail(msg: str) -> None:
    raise Fail(msg)


def text_of(result) -> str:
    parts = []
    for block in getattr(result, "content", None) or []:
        t = getattr(block, "text", None)
        if t is not None:
            parts.append(t)
    sc = getattr(result, "structured_content", None)
    if sc:
        parts.append(json.dumps(sc))
    return "\n".join(parts)


def prompt_text(params) -> str:
    parts = []
    for m in params.messages:
        blocks = m.content if isinstance(m.content, list) else [m.content]
        parts.extend(getattr(b, "text", "") or "" for b in blocks)
    return " ".join(parts)


def answer_for(schema: dict, tag: str) -> dict:
    """Form content for a requested schema: defaults, the first enum value, the tag for strings."""
    content = {}
    for key, prop in (schema.get("properties") or {}).items():
        if "default" in prop:
            content[key] = prop["default"]
        elif prop.get("enum"):
            content[key] = prop["enum"][0]
        elif prop.get("oneOf"):
            content[key] = prop["oneOf"][0]["const"]
        elif prop.get("type") == "array":
            items = prop.get("items") or {}
            first = (items.get("enum") or [None])[0] or ((items.get("anyOf") or [{}])[0].get("const"))
            content[key] = [first] if first is not None else []
        elif prop.get("type") == "boolean":
            content[key] = True
        elif prop.get("type") in ("integer", "number"):
            content[key] = max(1, int(prop.get("minimum", 1)))
        elif prop.get("format") == "email":
            content[key] = f"{tag}@example.com"
        elif prop.get("format") == "uri":
            content[key] = f"https://example.com/{tag}"
        elif prop.get("format") == "date":
            content[key] = "2000-01-01"
        else:
            content[key] = tag
    return content


def callbacks(args: argparse.Namespace, tag: str, seen: list[str]) -> dict:
    kw = {}
    if args.sampling:

        async def sampling(context, params):
            text = prompt_text(params)
            seen.append(f"sampling:{text}")
            if tag not in text:
                seen.append(f"FOREIGN sampling request {text!r} reached client {tag}")
            return types.CreateMessageResult(
                role="assistant", content=types.TextContent(type="text", text=f"sampled-by-{tag}"), model="e2e"
            )

        kw["sampling_callback"] = sampling
    if args.elicitation:

        async def elicitation(context, params):
            schema = getattr(params, "requested_schema", None) or {}
            if hasattr(schema, "model_dump"):
                schema = schema.model_dump(by_alias=True, exclude_none=True)
            seen.append(f"elicitation:{params.message}")
            return types.ElicitResult(action="accept", content=answer_for(schema, tag))

        kw["elicitation_callback"] = elicitation
    return kw


async def run(args: argparse.Namespace) -> None:
    if args.clients == 1:
        await run_one(args, args.tag)
        return
    failures: list[str] = []

    async def one(i: int) -> None:
        try:
            await run_one(args, f"{args.tag}{i:02d}")
        except Exception as e:  # noqa: BLE001 - collected and reported together
            while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
                e = e.exceptions[0]
            failures.append(f"client {args.tag}{i:02d}: {e}")

    async with anyio.create_task_group() as tg:
        for i in range(args.clients):
            tg.start_soon(one, i)
    if failures:
        fail(f"{len(failures)}/{args.clients} clients failed; first: {failures[0]}")
    print(f"info: all {args.clients} clients passed", flush=True)


async def run_one(args: argparse.Namespace, tag: str) -> None:
    seen: list[str] = []
    outputs: list[str] = []
    with anyio.fail_after(args.timeout):
        async with Client(args.url, mode=args.mode, **callbacks(args, tag, seen)) as client:
            pv = client.protocol_version
            era = "modern" if pv >= "2026-07-28" else "legacy"
            print(f"info: [{tag}] mode={args.mode} negotiated protocol_version={pv} era={era}", flush=True)
            if args.expect_era and era != args.expect_era:
                fail(f"expected {args.expect_era} era, negotiated {pv}")

            names: list[str] = []
            cursor = None
            for _ in range(20):
                page = await client.list_tools(cursor=cursor)
                names.extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            print(f"info: tools/list -> {len(names)} tools: {' '.join(sorted(names))}", flush=True)
            missing = [n for n in args.expect_tool if n not in names]
            if missing:
                fail(f"tools/list lacks {missing}; got {sorted(names)}")

            for spec in args.call:
                target, _, text = spec.partition("=")
                text, _, expect = text.replace("{tag}", tag).partition("=>")
                name, _, arg = target.partition(":")
                arguments = {arg or "text": text} if arg != "-" else {}
                expect = expect or text
                result = await client.call_tool(name, arguments)
                out = text_of(result)
                print(f"info: [{tag}] tools/call {name} -> isError={result.is_error} text={out[:300]!r}", flush=True)
                if result.is_error:
                    fail(f"tools/call {name} returned isError: {out!r}")
                if expect not in out:
                    fail(f"tools/call {name}: {expect!r} not in the result, got {out!r}")
                outputs.append(out)
            for spec in args.expect_error:
                name, _, text = spec.partition("=")
                try:
                    result = await client.call_tool(name, {})
                    out, errored = text_of(result), result.is_error
                except Exception as e:  # noqa: BLE001 - a JSON-RPC error is what is expected
                    out, errored = str(e), True
                print(f"info: [{tag}] tools/call {name} -> error={errored} text={out[:300]!r}", flush=True)
                if not errored or text not in out:
                    fail(f"tools/call {name}: want an error naming {text!r}, got error={errored} {out!r}")
            for spec in args.call_json:
                name, _, rest = spec.partition("=")
                raw, _, expect = rest.replace("{tag}", tag).rpartition("=>")
                result = await client.call_tool(name, json.loads(raw))
                out = text_of(result)
                print(f"info: [{tag}] tools/call {name} {raw} -> isError={result.is_error} text={out[:300]!r}", flush=True)
                if result.is_error:
                    fail(f"tools/call {name} returned isError: {out!r}")
                for want in expect.split(" && "):
                    if want not in out:
                        fail(f"tools/call {name}: {want!r} not in the result, got {out!r}")
                outputs.append(out)
            for spec in args.error_json:
                name, _, rest = spec.partition("=")
                raw, _, expect = rest.replace("{tag}", tag).rpartition("=>")
                try:
                    result = await client.call_tool(name, json.loads(raw))
                    out, errored = text_of(result), result.is_error
                except Exception as e:  # noqa: BLE001 - a JSON-RPC error is what is expected
                    out, errored = str(e), True
                print(f"info: [{tag}] tools/call {name} {raw} -> error={errored} text={out[:300]!r}", flush=True)
                if not errored or expect not in out:
                    fail(f"tools/call {name}: want an error naming {expect!r}, got error={errored} {out!r}")
            for spec in args.progress_call:
                name, _, rest = spec.partition("=")
                raw, _, want = rest.rpartition("=>")
                progress: list[tuple] = []

                async def on_progress(p: float, total: float | None, message: str | None) -> None:
                    progress.append((p, total))

                result = await client.call_tool(name, json.loads(raw), progress_callback=on_progress)
                out = text_of(result)
                print(f"info: [{tag}] tools/call {name} {raw} -> isError={result.is_error} progress={progress} text={out[:200]!r}", flush=True)
                if result.is_error:
                    fail(f"tools/call {name} returned isError: {out!r}")
                if len(progress) < int(want):
                    fail(f"tools/call {name}: {len(progress)} progress notifications, want {want}: {progress}")
                outputs.append(out)
    for text in args.forbid:
        hits = [o for o in outputs if text in o]
        if hits:
            fail(f"{text!r} (not this client's) appears in a result: {hits[0][:300]!r}")
    foreign = [s for s in seen if s.startswith("FOREIGN")]
    if foreign:
        fail(foreign[0])
    print(f"info: [{tag}] done; callbacks: {seen}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--mode", default="auto")
    p.add_argument("--expect-era", choices=["modern", "legacy"])
    p.add_argument("--expect-tool", action="append", default=[])
    p.add_argument("--call", action="append", default=[])
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--sampling", action="store_true")
    p.add_argument("--elicitation", action="store_true")
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--tag", default="py")
    p.add_argument("--expect-error", action="append", default=[])
    p.add_argument("--call-json", action="append", default=[])
    p.add_argument("--error-json", action="append", default=[])
    p.add_argument("--progress-call", action="append", default=[])
    p.add_argument("--forbid", action="append", default=[])
    args = p.parse_args()
    try:
        anyio.run(run, args)
    except BaseException as e:  # noqa: BLE001 - report anything as a failure line
        # unwrap exception groups from anyio task groups for a readable reason
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        reason = str(e) if isinstance(e, Fail) else f"{type(e).__name__}: {e}"
        print(f"FAIL: {reason}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
