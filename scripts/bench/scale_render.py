#!/usr/bin/env python3
"""Tables and a plot of `make bench-scale`'s rows (scripts/bench-scale.sh).

  scale_render.py ROWS.tsv OUTDIR

ROWS.tsv: lines `curve<TAB>x<TAB>metric<TAB>value<TAB>unit<TAB>note`; lines starting
with `#` are comments (printed under the tables as the run's notes). Writes
OUTDIR/tables.md (one markdown table per curve: a row per x, a column per metric,
units in the headers, the rows' notes listed under it) and prints it; then OUTDIR/scale.svg and
OUTDIR/scale.png: one column of panels per curve, log-scale x, top row the CPU
cost per unit of work (metrics with unit µs or ns, drawn in µs), middle row memory (unit KiB, drawn
in MiB when a panel reaches 10 MiB), bottom row throughput (units req/s, lists/s) and latency (ms, on a
second axis). matplotlib is pip-installed if missing.
"""

import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

TO_US = {"µs": 1.0, "us": 1.0, "ns": 1e-3}  # per-unit costs, drawn in µs
CURVE_ORDER = ["connections", "servers", "sessions", "users"]
X_LABEL = {
    "connections": "keep-alive client connections",
    "servers": "upstream servers (57 tools each)",
    "sessions": "idle legacy client sessions",
    "users": "users (per-user credentials)",
}


def read_rows(path):
    """(curves, comments): curves[curve][x][metric] = (value, unit, note)."""
    curves, comments = OrderedDict(), []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            if "\t" not in line:  # a column header comment is not a note
                comments.append(line[1:].strip())
            continue
        f = line.split("\t")
        if len(f) < 5:
            print(f"scale_render: skipped a malformed row: {line!r}", file=sys.stderr)
            continue
        curve, x, metric, value, unit = f[:5]
        note = f[5] if len(f) > 5 else ""
        try:
            xv = float(x)
        except ValueError:
            print(f"scale_render: skipped a row with x {x!r}", file=sys.stderr)
            continue
        curves.setdefault(curve, OrderedDict()).setdefault(xv, OrderedDict())[metric] = (value, unit, note)
    order = [c for c in CURVE_ORDER if c in curves] + [c for c in curves if c not in CURVE_ORDER]
    return OrderedDict((c, curves[c]) for c in order), comments


def fmt_x(x):
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def metrics_of(points):
    """Metric → unit, in order of first appearance."""
    out = OrderedDict()
    for row in points.values():
        for m, (_, unit, _) in row.items():
            out.setdefault(m, unit)
    return out


def header(metric, unit):
    return metric if not unit or metric.endswith(unit) else f"{metric} ({unit})"


def tables(curves, comments):
    out = []
    for curve, points in curves.items():
        metrics = metrics_of(points)
        out.append(f"### {curve}")
        out.append("")
        cols = ["x"] + [header(m, u) for m, u in metrics.items()]
        out.append("| " + " | ".join(cols) + " |")
        out.append("| " + " | ".join(["---:"] * len(cols)) + " |")
        notes = []
        for x in sorted(points):
            row = points[x]
            cells = [fmt_x(x)] + [row[m][0] if m in row else "" for m in metrics]
            out.append("| " + " | ".join(cells) + " |")
            notes += [f"x={fmt_x(x)}, {m}: {row[m][2]}" for m in metrics if m in row and row[m][2]]
        out.append("")
        if notes:
            out.extend(f"- {n}" for n in notes)
            out.append("")
    if comments:
        out.append("Notes of the run:")
        out.append("")
        out.extend(f"- {c}" for c in comments)
        out.append("")
    return "\n".join(out)


def need_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("scale_render: matplotlib missing; python3 -m pip install -q matplotlib", file=sys.stderr)
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=False)
        try:
            import matplotlib  # noqa: F401,F811
        except ImportError:
            sys.exit(f"scale_render: matplotlib is required for the plot and `pip install matplotlib` failed (exit {r.returncode}); "
                     "the tables are written; install it (pip or apt-get install python3-matplotlib) and rerun "
                     "scripts/bench/scale_render.py ROWS OUTDIR")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def series(points, metric):
    xs, ys = [], []
    for x in sorted(points):
        cell = points[x].get(metric)
        if cell is None:
            continue
        try:
            ys.append(float(cell[0]))
            xs.append(x)
        except ValueError:
            continue
    return xs, ys


def throughput_metrics(metrics):
    """Rates to plot: where "ok" rates (answers with a result) exist, only those and the other units."""
    rates = [m for m, u in metrics.items() if u.endswith("/s") and u != "ms/s"]
    if any(" ok " in f" {m} " for m in rates):
        rates = [m for m in rates if " ok " in f" {m} " or metrics[m] != "req/s"]
    return rates


def plot(curves, outdir):
    plt = need_matplotlib()
    names = list(curves)
    ncol = max(1, len(names))
    fig, axes = plt.subplots(3, ncol, figsize=(5.2 * ncol, 11), squeeze=False)
    fig.suptitle("MCPHub: cost as the work grows (make bench-scale, one run on this machine)", fontsize=13)
    markers = "os^vDPX*<>"
    for col, curve in enumerate(names):
        points = curves[curve]
        metrics = metrics_of(points)
        xlabel = X_LABEL.get(curve, curve)
        rows = [
            ([m for m, u in metrics.items() if u in TO_US], "CPU or time per unit of work", "µs"),
            ([m for m, u in metrics.items() if u == "KiB"], "memory (RSS)", "MiB"),
            (throughput_metrics(metrics), "throughput", None),
        ]
        for r, (ms, what, to) in enumerate(rows):
            ax = axes[r][col]
            ax.set_xscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlabel(xlabel)
            ax.set_title(f"{curve}: {what}", fontsize=11)
            drawn = 0
            units = set()
            if to == "MiB":  # MiB for totals, KiB for small per-unit figures
                kib = [y for m in ms for y in series(points, m)[1]]
                to = "MiB" if kib and max(kib) >= 10 * 1024 else None
            for i, m in enumerate(ms):
                xs, ys = series(points, m)
                if not xs:
                    continue
                unit = metrics[m]
                if to == "µs":
                    ys, unit = [y * TO_US[unit] for y in ys], "µs"
                elif to == "MiB":
                    ys, unit = [y / 1024 for y in ys], "MiB"
                units.add(unit)
                label = header(m, unit) if unit == metrics[m] else f"{m} (in {unit})"
                ax.plot(xs, ys, marker=markers[i % len(markers)], label=label)
                drawn += 1
            if drawn:
                ax.set_ylabel(" / ".join(sorted(units)))
                ys = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
                if ys and max(ys) / min(ys) > 50:  # costs apart by orders of magnitude: log y
                    ax.set_yscale("log")
                    ax.set_ylabel(" / ".join(sorted(units)) + ", log scale")
                else:
                    ax.set_ylim(bottom=0)
            if r == 2:  # latency on a second axis
                lat = [m for m, u in metrics.items() if u == "ms" and ("p50" in m or "p99" in m)]
                if len(lat) > 3:  # too many lines: the tails only
                    lat = [m for m in lat if "p99" in m] or lat
                if lat:
                    ax2 = ax.twinx()
                    for i, m in enumerate(lat):
                        xs, ys = series(points, m)
                        if xs:
                            ax2.plot(xs, ys, linestyle="--", marker=markers[(i + 3) % len(markers)], alpha=0.7,
                                     label=header(m, "ms"), color=f"C{(i + drawn) % 10}")
                    ax2.set_ylabel("latency (ms, dashed)")
                    ax2.set_ylim(bottom=0)
                    h1, l1 = ax.get_legend_handles_labels()
                    h2, l2 = ax2.get_legend_handles_labels()
                    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
                    drawn += len(lat)
                elif drawn:
                    ax.legend(fontsize=7, loc="best")
            elif drawn:
                ax.legend(fontsize=7, loc="best")
            if not drawn:
                ax.text(0.5, 0.5, f"({curve}: no {what} metric)", ha="center", va="center", transform=ax.transAxes, color="grey")
                ax.grid(False)
                ax.set_xticks([], minor=True)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            xs = sorted(points)
            if xs:
                ax.set_xticks(xs)
                ax.set_xticklabels([fmt_x(x) for x in xs])
                ax.minorticks_off()
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    svg, png = outdir / "scale.svg", outdir / "scale.png"
    fig.savefig(svg)
    fig.savefig(png, dpi=110)
    return svg, png


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows, outdir = sys.argv[1], Path(sys.argv[2])
    outdir.mkdir(parents=True, exist_ok=True)
    curves, comments = read_rows(rows)
    md = tables(curves, comments)
    (outdir / "tables.md").write_text(md, encoding="utf-8")
    print(md)
    if not curves:
        print("scale_render: no rows; no plot", file=sys.stderr)
        return
    plot(curves, outdir)


if __name__ == "__main__":
    main()
