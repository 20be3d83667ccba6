#!/usr/bin/env python3
"""Summarises a device timeline written by `layoutrt bench --kernel-trace PREFIX` (CUPTI activity records, one row per
kernel / memcpy / memset of one forward; fields in src/cuda/kernel_trace.h) and draws it.

usage: python3 scripts/kernel_trace.py PREFIX.b1.csv [more.csv ...] [--svg OUT.svg] [--from US] [--to US]
  markdown on stdout; --svg draws the (first) file's forward, one lane per stream, kernels coloured by class, each with
  a tooltip (name, start, duration, grid); --from / --to cut the picture to that window (us from the forward's start).

Per file, over the forward (first kernel start to last kernel end; the run's transfers before and after are left out):
the span, the time some kernel runs (union of the records) and the idle rest, the overlap of consecutive kernels
(programmatic dependent launch lets a kernel start before its predecessor ends), the time and count per kernel class
and per kernel name, the encoder's layer period (between consecutive attention kernels) and one layer's kernels in
order with their attributed time, and the longest idle gaps with the kernels on either side. Attributed time: each
busy instant charged to the earliest-started record running then, so a kernel launched early and waiting for its
predecessor is charged only from the predecessor's end (the critical path's share). Compare times within one stream:
on an H200 the traces showed holes of 70 – 400 us exactly where the work moved between streams (README, "Device
timeline"), and bench prints the recorded run's own compute time to compare the span with.
"""
import argparse
import csv
import html
import re
import statistics
import sys

# (class, colour, name patterns); the first match wins.
CLASSES = [
    ("attention bias cache", "#ff9896", [r"bias_cache_kernel"]),
    ("attention", "#d62728",
     [r"flash_wgmma(_inline)?_kernel", r"flash_attention", r"\battention_kernel", r"flash::.*kernel"]),
    ("layernorm", "#2ca02c", [r"layer_norm"]),
    ("embeddings", "#9467bd", [r"text_embedding", r"visual_rows", r"im2col"]),
    ("head", "#8c564b", [r"gather_linear"]),
    ("gather / copy", "#7f7f7f", [r"gather_rows", r"copy_rows", r"convert_kernel"]),
    ("bias + activation", "#bcbd22", [r"bias_activation"]),
    ("GEMM (CUTLASS)", "#1f77b4", [r"cutlass", r"GemmUniversal", r"gemm_sm90"]),
    ("GEMM (cuBLASLt)", "#17becf", [r"nvjet", r"gemm", r"xmma", r"cublas", r"splitKreduce"]),
    ("memcpy / memset", "#e377c2", [r"^memcpy$", r"^memset$"]),
]
OTHER = ("other", "#c7c7c7")


def classify(name):
    for cls, colour, pats in CLASSES:
        if any(re.search(p, name) for p in pats):
            return cls, colour
    return OTHER


def short_name(name):
    """The kernel's identifier without return type, template arguments and parameters."""
    anon = "(anonymous namespace)"
    s = name.replace(anon, "\x00")
    depth, out = 0, []
    for ch in s:  # drop <...> (nested)
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    s = "".join(out)
    s = s.split("(")[0].strip()
    s = s.split(" ")[-1]  # "void ns::kernel" -> "ns::kernel"
    return s.replace("\x00", anon) or name


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({"kind": r["kind"], "name": r["name"], "start": float(r["start_us"]), "end": float(r["end_us"]),
                    "stream": int(r["stream"]), "grid": r["grid"], "block": r["block"], "cluster": r["cluster"],
                    "registers": int(r["registers"])})
    out.sort(key=lambda r: (r["start"], r["end"]))
    return out


def union(rows):
    """Busy intervals: the union of the records' [start, end]."""
    segs = []
    for r in sorted(rows, key=lambda r: r["start"]):
        if segs and r["start"] <= segs[-1][1]:
            segs[-1][1] = max(segs[-1][1], r["end"])
        else:
            segs.append([r["start"], r["end"]])
    return segs


def attribute(rows):
    """Each instant of busy time given to the earliest-started record running then: a kernel launched early
    (programmatic dependent launch) and waiting for its predecessor is charged only from the predecessor's end."""
    cuts = sorted({r["start"] for r in rows} | {r["end"] for r in rows})
    own = [0.0] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["start"], rows[i]["end"]))
    for a, b in zip(cuts, cuts[1:]):
        for i in order:
            if rows[i]["start"] <= a and rows[i]["end"] >= b:
                own[i] += b - a
                break
    return own


def layer(rows, own):
    """One encoder layer's kernels in order, from each attention kernel's start to the next one's, with the median
    attributed time per position over the layers — when every such stretch runs the same kernels (else None)."""
    idx = [i for i, r in enumerate(rows) if classify(r["name"])[0] == "attention"]
    stretches = [list(range(a, b)) for a, b in zip(idx, idx[1:])]
    if not stretches:
        return None
    names = [[short_name(rows[i]["name"]) for i in st] for st in stretches]
    if any(n != names[0] for n in names):
        return None
    out = []
    for k, name in enumerate(names[0]):
        ts = [own[st[k]] for st in stretches]
        out.append((name, classify(rows[stretches[0][k]]["name"])[0], statistics.median(ts), min(ts), max(ts)))
    return {"layers": len(stretches), "kernels": out}


def window(rows):
    """The forward: from the first kernel's start to the last kernel's end (the run's uploads and downloads, memcpys
    outside it, are left out)."""
    ks = [r for r in rows if r["kind"] == "kernel"] or rows
    lo, hi = min(r["start"] for r in ks), max(r["end"] for r in ks)
    inside = [r for r in rows if r["end"] > lo and r["start"] < hi]
    return inside, len(rows) - len(inside)


def analyse(rows):
    rows, outside = window(rows)
    t0 = min(r["start"] for r in rows)
    t1 = max(r["end"] for r in rows)
    segs = union(rows)
    busy = sum(b - a for a, b in segs)
    gaps = []  # (length, start, end, kernel before, kernel after)
    for (a0, b0), (a1, b1) in zip(segs, segs[1:]):
        before = max((r for r in rows if r["end"] <= a1 and r["end"] >= b0 - 1e-9), key=lambda r: r["end"])
        after = min((r for r in rows if r["start"] >= a1 - 1e-9), key=lambda r: r["start"])
        gaps.append((a1 - b0, b0, a1, before, after))
    # Overlap of each record with the latest end of all earlier ones (PDL, concurrent streams).
    overlap, latest = 0.0, None
    for r in rows:
        if latest is not None and r["start"] < latest:
            overlap += min(latest, r["end"]) - r["start"]
        latest = r["end"] if latest is None else max(latest, r["end"])
    own = attribute(rows)
    classes = {}
    for r, o in zip(rows, own):
        cls, _ = classify(r["name"])
        c = classes.setdefault(cls, [0, 0.0, 0.0])
        c[0] += 1
        c[1] += r["end"] - r["start"]
        c[2] += o
    names = {}
    for r, o in zip(rows, own):
        k = short_name(r["name"])
        c = names.setdefault(k, [0, 0.0, classify(r["name"])[0], [], 0.0])
        c[0] += 1
        c[1] += r["end"] - r["start"]
        c[3].append(r["end"] - r["start"])
        c[4] += o
    att = [r["start"] for r in rows if classify(r["name"])[0] == "attention"]
    periods = [b - a for a, b in zip(att, att[1:])]
    return {"t0": t0, "t1": t1, "span": t1 - t0, "busy": busy, "idle": (t1 - t0) - busy, "gaps": gaps,
            "overlap": overlap, "classes": classes, "names": names, "periods": periods, "layer": layer(rows, own),
            "streams": sorted({r["stream"] for r in rows}), "n": len(rows), "outside": outside}


def summarise(path):
    rows = load(path)
    if not rows:
        return f"## {path}\n\nno records\n"
    a = analyse(rows)
    out = [f"## {path}", ""]
    out.append(f"{a['n']} records on {len(a['streams'])} stream(s) in the forward (first kernel start to last kernel "
               f"end; {a['outside']} transfers of the run outside it left out); span {a['span']:.1f} us; "
               f"some kernel running {a['busy']:.1f} us ({100 * a['busy'] / a['span']:.1f} %), idle {a['idle']:.1f} us "
               f"in {len(a['gaps'])} gaps; kernels overlapping their predecessors {a['overlap']:.1f} us in all.")
    if a["periods"]:
        p = a["periods"]
        out.append(f"Attention kernels: {len(p) + 1}; layer period (attention start to the next) median "
                   f"{statistics.median(p):.2f} us, min {min(p):.2f}, max {max(p):.2f}.")
    if a["layer"]:
        ly = a["layer"]
        out += ["", f"One layer's critical path (attention start to the next; medians over {ly['layers']} layers of "
                    "each position's attributed time):", "", "| # | kernel | class | attributed us | min | max |",
                "| ---: | --- | --- | ---: | ---: | ---: |"]
        for k, (name, cls, med, lo, hi) in enumerate(ly["kernels"]):
            out.append(f"| {k} | `{name[:60]}` | {cls} | {med:.2f} | {lo:.2f} | {hi:.2f} |")
        total = sum(k[2] for k in ly["kernels"])
        out.append(f"| | sum (the rest of the period: idle) | | {total:.2f} | | |")
    out += ["", "Kernel time: start to end of each record (a kernel launched early and waiting for its predecessor "
                "counts its wait); attributed: each busy instant charged to the earliest-started record running then "
                "(the attributed column sums to the busy time).", "",
            "| class | count | kernel time us | attributed us | attributed per record us | share of span |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for cls, (n, t, o) in sorted(a["classes"].items(), key=lambda kv: -kv[1][2]):
        out.append(f"| {cls} | {n} | {t:.1f} | {o:.1f} | {o / n:.2f} | {100 * o / a['span']:.1f} % |")
    out += ["", "| kernel | class | count | total us | attributed us | median us | min us | max us |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for k, (n, t, cls, ds, o) in sorted(a["names"].items(), key=lambda kv: -kv[1][4]):
        out.append(f"| `{k[:70]}` | {cls} | {n} | {t:.1f} | {o:.1f} | {statistics.median(ds):.2f} | {min(ds):.2f} | "
                   f"{max(ds):.2f} |")
    gaps = sorted(a["gaps"], key=lambda g: -g[0])
    if gaps:
        lens = [g[0] for g in a["gaps"]]
        out += ["", f"Idle gaps: {len(lens)}, median {statistics.median(lens):.2f} us, total {sum(lens):.1f} us. "
                    "The longest:", "", "| gap us | at us | after | before |", "| ---: | ---: | --- | --- |"]
        for g, b0, _, before, after in gaps[:10]:
            out.append(f"| {g:.2f} | {b0 - a['t0']:.1f} | `{short_name(before['name'])[:50]}` | "
                       f"`{short_name(after['name'])[:50]}` |")
    out.append("")
    return "\n".join(out)


def svg(path, out_path, lo=None, hi=None):
    rows = load(path)
    if not rows:
        raise SystemExit(f"{path}: no records")
    rows, _ = window(rows)
    t0 = min(r["start"] for r in rows)
    lo = 0.0 if lo is None else lo
    hi = max(r["end"] for r in rows) - t0 if hi is None else hi
    if hi <= lo:
        raise SystemExit(f"--from {lo} / --to {hi}: empty window")
    rows = [r for r in rows if r["end"] - t0 >= lo and r["start"] - t0 <= hi]
    streams = []
    for r in rows:
        if r["stream"] not in streams:
            streams.append(r["stream"])
    W, left, top, lane_h, gap = 1600, 90, 40, 34, 8
    scale = (W - left - 20) / (hi - lo)
    used = sorted({classify(r["name"]) for r in rows})
    H = top + len(streams) * (lane_h + gap) + 40 + 18 * ((len(used) + 4) // 5)
    x = lambda t: left + (t - t0 - lo) * scale  # noqa: E731
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{left}" y="16" font-size="13">{html.escape(path)}: {len(rows)} records, {lo:.1f} – {hi:.1f} us'
         f'</text>']
    # Axis: a tick every "nice" step.
    span = hi - lo
    step = next(s for s in [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 1e4, 1e5] if span / s <= 16)
    axis_y = top + len(streams) * (lane_h + gap)
    t = (int(lo / step) + 1) * step if lo % step else lo
    while t <= hi:
        xx = left + (t - lo) * scale
        o.append(f'<line x1="{xx:.1f}" y1="{top - 4}" x2="{xx:.1f}" y2="{axis_y}" stroke="#eee"/>')
        o.append(f'<text x="{xx:.1f}" y="{axis_y + 14}" text-anchor="middle">{t:g} us</text>')
        t += step
    for i, s in enumerate(streams):
        y = top + i * (lane_h + gap)
        o.append(f'<text x="6" y="{y + lane_h / 2 + 4:.1f}">stream {s}</text>')
        o.append(f'<rect x="{left}" y="{y}" width="{W - left - 20}" height="{lane_h}" fill="#fafafa"/>')
    for r in rows:
        y = top + streams.index(r["stream"]) * (lane_h + gap)
        cls, colour = classify(r["name"])
        x0, x1 = max(left, x(r["start"])), min(W - 20, x(r["end"]))
        tip = (f'{r["name"]}\n{cls}; start {r["start"] - t0:.2f} us, {r["end"] - r["start"]:.2f} us; grid '
               f'{r["grid"]}, block {r["block"]}, cluster {r["cluster"]}, {r["registers"]} registers')
        o.append(f'<rect x="{x0:.2f}" y="{y}" width="{max(0.6, x1 - x0):.2f}" height="{lane_h}" fill="{colour}" '
                 f'stroke="white" stroke-width="0.3"><title>{html.escape(tip)}</title></rect>')
    for i, (cls, colour) in enumerate(used):
        lx, ly = left + (i % 5) * 240, axis_y + 30 + (i // 5) * 18
        o.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>')
        o.append(f'<text x="{lx + 16}" y="{ly}">{html.escape(cls)}</text>')
    o.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(o) + "\n")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+", help="PREFIX.b<batch>.csv files from layoutrt bench --kernel-trace")
    ap.add_argument("--svg", help="draw the first file's timeline into this SVG file")
    ap.add_argument("--from", dest="lo", type=float,
                    help="picture window start, us from the forward's first kernel start")
    ap.add_argument("--to", dest="hi", type=float, help="picture window end, us from the forward's first kernel start")
    args = ap.parse_args(argv)
    for p in args.csv:
        print(summarise(p))
    if args.svg:
        svg(args.csv[0], args.svg, args.lo, args.hi)
        print(f"timeline picture: {args.svg}")


if __name__ == "__main__":
    main(sys.argv[1:])
