#!/usr/bin/env python3
"""Prints the `make bench` table from the rows scripts/bench.sh collected.

  table.py ROWS_TSV

Each input line: key, label, rps, p50_ms, p99_ms, proxy_cpu_us, mock_cpu_us,
rss_kb, note (tab-separated; "" = not measured), or "#<title>" for a section
heading. Ratio and difference rows are computed here from the rows' keys:
call.{direct,fwd,hub}[_modern] and lat.{direct,fwd,hub}. A last section puts
issue 16's goals beside the figures of this run ("met" or "not met"; nothing is
asserted).
"""
import re
import sys


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def main(path):
    rows, order = {}, []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith("#"):
            order.append(("title", line[1:]))
            continue
        f = (line.split("\t") + [""] * 9)[:9]
        rows[f[0]] = f
        order.append(("row", f[0]))
        derived = derive(rows, f[0])
        for d in derived:
            order.append(("derived", d))

    head = ["measurement", "req/s", "p50 ms", "p99 ms", "proxy CPU µs/req", "mock CPU µs/req", "proxy RSS MiB", "notes"]
    out = []
    for kind, item in order:
        if kind == "title":
            out.append(("title", item))
        elif kind == "row":
            f = rows[item]
            rss = num(f[7])
            out.append(("row", [f[1], fmt(f[2], 0), fmt(f[3], 3), fmt(f[4], 3), fmt(f[5], 1), fmt(f[6], 1),
                                "" if rss is None else f"{rss / 1024:.1f}", f[8]]))
        else:
            out.append(("row", item))
    widths = [len(h) for h in head]
    for kind, r in out:
        if kind == "row":
            widths = [max(w, len(c)) for w, c in zip(widths, r)]
    total = sum(widths) + 3 * (len(widths) - 1)

    def line(cells):
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1])] + [cells[-1]]
        return " | ".join(parts).rstrip()

    print(line(head))
    print("-" * min(total, 160))
    for kind, r in out:
        if kind == "title":
            print(f"── {r} " + "─" * max(0, min(total, 160) - len(r) - 4))
        else:
            print(line(r))
    print_goals(rows)


# Issue 16's goals: (label, unit, limit, "max" | "min", function of the rows → figure or None).
def goals(rows):
    g = lambda k, i: num(rows[k][i]) if k in rows else None  # noqa: E731

    def div(a, b):
        return None if a is None or b in (None, 0) else a / b

    def sub(a, b):
        return None if a is None or b is None else a - b

    def per(key, what):
        m = re.search(r"([+-][0-9.]+) KiB per " + what, rows[key][8]) if key in rows else None
        return float(m.group(1)) if m else None

    rss_after = max([x for x in (g("call.hub", 7), g("call.hub_modern", 7)) if x is not None], default=None)
    return [
        ("legacy tools/call req/s, hub ÷ forwarder", "×", 0.9, "min", div(g("call.hub", 2), g("call.fwd", 2))),
        ("legacy tools/call, hub CPU per call", "µs", 45, "max", g("call.hub", 5)),
        ("legacy tools/call, forwarder CPU per call (the floor)", "µs", 30, "max", g("call.fwd", 5)),
        ("warm tools/list over 3 servers, hub CPU per list", "µs", 30, "max", g("list.warm", 5)),
        ("latency added by the hub at 1 connection, p50", "ms", 0.07, "max", sub(g("lat.hub", 3), g("lat.direct", 3))),
        ("p99 at 70 connections, hub ÷ direct", "×", 2.0, "max", div(g("call.hub", 4), g("call.direct", 4))),
        ("hub RSS after the tools/call runs", "MiB", 11.4, "max", None if rss_after is None else rss_after / 1024),
        ("RSS per idle client session", "KiB", 2.0, "max", per("mem.sessions", "session")),
        ("RSS per idle keep-alive connection", "KiB", 0.74, "max", per("mem.conns", "connection")),
    ]


def print_goals(rows):
    print("── goals (issue 16), beside this run's figures " + "─" * 40)
    width = max(len(label) for label, *_ in goals(rows))
    for label, unit, limit, way, figure in goals(rows):
        bound = ("≥ " if way == "min" else "≤ ") + f"{limit:g} {unit}"
        if figure is None:
            print(f"{label.ljust(width)} | goal {bound:>10} | figure      ? | not measured")
            continue
        met = figure >= limit if way == "min" else figure <= limit
        print(f"{label.ljust(width)} | goal {bound:>10} | figure {figure:7.2f} {unit} | {'met' if met else 'NOT met'}")


def fmt(v, digits):
    x = num(v)
    return "" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return "" if a is None or b in (None, 0) else f"{a / b:.2f}×"


def derive(rows, key):
    """Ratio rows after call.hub / call.hub_modern, differences after lat.hub."""
    g = lambda k, i: num(rows[k][i]) if k in rows else None  # noqa: E731
    out = []
    for suffix in ("", "_modern"):
        if key == f"call.hub{suffix}":
            for other, name in ((f"call.direct{suffix}", "direct"), (f"call.fwd{suffix}", "forwarder")):
                if other in rows:
                    out.append([f"  ratio hub/{name}", ratio(g(key, 2), g(other, 2)), ratio(g(key, 3), g(other, 3)),
                                ratio(g(key, 4), g(other, 4)), ratio(g(key, 5), g(other, 5)), "", "",
                                "req/s, p50, p99, proxy CPU: hub ÷ " + name])
    if key == "lat.hub":
        for proxy, name in (("lat.fwd", "forwarder"), ("lat.hub", "hub")):
            if proxy in rows and "lat.direct" in rows:
                d50 = (g(proxy, 3) or 0) - (g("lat.direct", 3) or 0)
                d99 = (g(proxy, 4) or 0) - (g("lat.direct", 4) or 0)
                out.append([f"  added by the {name}", "", f"{d50:+.3f}", f"{d99:+.3f}", "", "", "",
                            f"{name} − direct, ms"])
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
