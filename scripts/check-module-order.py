#!/usr/bin/env python3
"""Check the module order of the mcphub library (docs/module-order.md; issue 15, item 2).

Every non-test `crate::x` path in src/ (in `use` items and inline paths, `use crate::{a, b}`
groups included) is an edge from the file's top-level module to `x`. An edge may only point to a
module in a lower layer (or the same module); an edge that points to the same or a higher layer
is an upward edge and is printed as `file:line: rule`. Inside `http` the submodules are ordered
too (`super::x` / `crate::http::x`), so http/server.rs and http/sse.rs cannot import each other.

Skipped: `#[cfg(test)]` items (inline `mod tests { ... }` and `mod tests;` files), comments, string
literals, and src/mock/, src/load.rs, src/bin/ (their own crates, moved out separately).

Exit status: 0 when every edge runs downward (or is on ALLOWED), 1 otherwise.
`--graph` prints the import graph (module -> modules it imports) after the check.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")

# Bottom first. Modules on one line are one layer: they may not import each other.
LAYERS = [
    ["random"],
    ["protocol", "trace", "singleflight", "threads"],
    ["http"],
    ["config"],
    ["store", "logging", "metrics"],
    ["limits", "users", "cluster"],
    ["upstream"],
    ["catalog"],
    ["hub"],
    ["main"],
]
# Inside `http`, bottom first (the same rule one level down).
SUBLAYERS = {
    "http": [["parse", "write"], ["sse"], ["server"]],
}
IGNORED = ()
# Upward edges tolerated for now, each with its reason: (from, to) -> reason. May only shrink.
ALLOWED = {}

RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
SUBRANK = {top: {m: i for i, layer in enumerate(ls) for m in layer} for top, ls in SUBLAYERS.items()}


def strip(text):
    """`text` with comments and string/char literals blanked (newlines kept, so lines still count)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or c == "'" and re.match(r"'\\[xu]", text[i:i + 3]):
            j = text.find("'", i + 2) + 1
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_items(text):
    """Blank every item annotated `#[cfg(test)]` (a braced block or up to the `;`)."""
    out = list(text)
    for m in re.finditer(r"#\[cfg\(test\)\]", text):
        i = m.end()
        while i < len(text) and text[i] not in "{;":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            while i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
                if depth == 0:
                    break
        else:
            i += 1
        for k in range(m.start(), i):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out)


def test_files():
    """Files that are whole `#[cfg(test)] mod x;` modules."""
    skip = set()
    for path in rust_files(include_tests=True):
        text = strip(open(path).read())
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
            base = os.path.dirname(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            d = base if stem in ("mod", "lib", "main") else os.path.join(base, stem)
            for cand in (os.path.join(d, m.group(1) + ".rs"), os.path.join(d, m.group(1), "mod.rs")):
                skip.add(os.path.normpath(cand))
    return skip


def rust_files(include_tests=False):
    for dirpath, _, names in os.walk(SRC):
        for name in sorted(names):
            if name.endswith(".rs"):
                path = os.path.normpath(os.path.join(dirpath, name))
                rel = os.path.relpath(path, SRC)
                if rel.split(os.sep)[0].removesuffix(".rs") in IGNORED or rel == "lib.rs":
                    continue
                yield path


def module_of(rel):
    """(top-level module, submodule) of a file path relative to src/."""
    parts = rel.removesuffix(".rs").split(os.sep)
    return parts[0], (parts[1] if len(parts) > 1 else "mod")


def use_targets(text):
    """(offset, top, sub) for every `crate::top[::sub]` path, expanding `use crate::{...}` groups;
    `sub` is the next path segment or None."""
    for m in re.finditer(r"\bcrate\s*::\s*(\w+)(?:\s*::\s*(\w+))?", text):
        yield m.start(), m.group(1), m.group(2)
    for m in re.finditer(r"\bcrate\s*::\s*\{", text):
        i, depth, start = m.end(), 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[start:i - 1]
        # top-level names of the group: `a`, `b::c`, `d::{e, f}`
        depth, item, off = 0, "", start
        for k, ch in enumerate(body + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                nm = re.match(r"\s*(\w+)(?:\s*::\s*(\w+))?", item)
                if nm:
                    yield off, nm.group(1), nm.group(2)
                item, off = "", start + k + 1
            else:
                item += ch


def super_targets(text):
    """(offset, sub) for `super::sub` paths (one level up from a submodule file)."""
    for m in re.finditer(r"(?<!::)\bsuper\s*::\s*(\w+)", text):
        if m.group(1) != "super":
            yield m.start(), m.group(1)


def main():
    graph, errors = {}, []
    skip = test_files()
    for path in rust_files():
        if path in skip:
            continue
        rel = os.path.relpath(path, SRC)
        top, sub = module_of(rel)
        if top not in RANK:
            errors.append(f"src/{rel}:1: module `{top}` has no layer in scripts/check-module-order.py (docs/module-order.md)")
            continue
        text = drop_test_items(strip(open(path).read()))
        line = lambda off: text.count("\n", 0, off) + 1
        edges = [(off, t, s) for off, t, s in use_targets(text)]
        if sub != "mod" and top in SUBRANK:
            edges += [(off, top, s) for off, s in super_targets(text)]
        for off, to, tosub in edges:
            if to in ("self", "super"):
                continue
            if to == top:
                if top in SUBRANK and tosub in SUBRANK[top] and tosub != sub:
                    rk = SUBRANK[top]
                    if rk[tosub] >= rk[sub]:
                        graph.setdefault(f"{top}::{sub}", set()).add(f"{top}::{tosub}")
                        errors.append(f"src/{rel}:{line(off)}: `{top}::{sub}` may not use `{top}::{tosub}` "
                                      f"(layer {rk[tosub]} is not below {rk[sub]} inside `{top}`)")
                    else:
                        graph.setdefault(f"{top}::{sub}", set()).add(f"{top}::{tosub}")
                continue
            if to not in RANK:
                continue  # a crate-level item (e.g. a macro), not a module
            graph.setdefault(top, set()).add(to)
            if RANK[to] >= RANK[top] and (top, to) not in ALLOWED:
                errors.append(f"src/{rel}:{line(off)}: `{top}` (layer {RANK[top]}) may not use `{to}` "
                              f"(layer {RANK[to]}): imports only run downward (docs/module-order.md)")
    # main.rs is the binary: it uses the library as `mcphub::x`.
    main_rs = os.path.join(SRC, "main.rs")
    if os.path.exists(main_rs):
        text = drop_test_items(strip(open(main_rs).read()))
        for m in re.finditer(r"\bmcphub\s*::\s*(\w+)", text):
            if m.group(1) in RANK:
                graph.setdefault("main", set()).add(m.group(1))
    for e in sorted(set(errors)):
        print(e)
    if "--graph" in sys.argv[1:]:
        order = lambda m: (RANK.get(m.split("::")[0], 99), m)
        for m in sorted(graph, key=order):
            print(f"{m} -> {' '.join(sorted(graph[m], key=order))}")
    if errors:
        print(f"check-module-order: {len(set(errors))} upward import(s); see docs/module-order.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
