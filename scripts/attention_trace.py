#!/usr/bin/env python3
"""Summarises the Hopper attention kernel's phase trace (layoutrt bench --attention-trace PREFIX, in a build configured
with -DLAYOUTRT_ATTENTION_TRACE=ON; the fields are documented in src/cuda/flash_attention_sm90.h).

usage: python3 scripts/attention_trace.py PREFIX.b1.csv [more.csv ...]   (markdown on stdout)

Per file: the launches (records grouped by start time), each launch's span (first warpgroup start to last end,
%globaltimer), and percentiles over all launches of the time each warpgroup of a full query tile spends per phase:
the PDL wait, the prologue (first copies), the first key tile becoming visible, each of the first six key tiles of its
walk, and the end (merge and store). Cycles are converted with the SM clock the records themselves show (clock64
cycles per %globaltimer ns, median over records).
"""
import csv
import statistics
import sys

PHASES = [("PDL wait", "start", "pdl_wait"), ("prologue", "pdl_wait", "prologue"),
          ("first tile visible", "prologue", "first_tile")]
PHASES += [(f"key tile {i}", "first_tile" if i == 0 else f"tile{i - 1}", f"tile{i}") for i in range(6)]
PHASES += [("walk to end", "tile5", "walk_end"), ("merge + store (warpgroup 0)", "walk_end", "end")]


def load(path):
    with open(path, newline="") as f:
        rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return [r for r in rows if r["end"] and r["end_ns"] >= r["start_ns"] > 0]


def launches(rows, gap_ns=3000):
    rows = sorted(rows, key=lambda r: r["start_ns"])
    out, cur = [], []
    for r in rows:
        if cur and r["start_ns"] - cur[-1]["start_ns"] > gap_ns:
            out.append(cur)
            cur = []
        cur.append(r)
    if cur:
        out.append(cur)
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summarise(path):
    rows = load(path)
    if not rows:
        return f"## {path}\n\nno complete records\n"
    ghz = statistics.median((r["end"] - r["start"]) / (r["end_ns"] - r["start_ns"])
                            for r in rows if r["end_ns"] > r["start_ns"])
    groups = launches(rows)
    lines = [f"## {path}", "",
             f"{len(rows)} records, {len(groups)} launches, SM clock {ghz:.2f} GHz (from the records)", ""]
    spans = [(max(r["end_ns"] for r in g) - min(r["start_ns"] for r in g)) / 1e3 for g in groups]
    lines.append("launch spans (us): " + ", ".join(f"{s:.2f}" for s in spans))
    lines.append("")
    main = [r for r in rows if not r["unit"]]
    lines += ["| phase (full query tiles' warpgroups) | p10 us | p50 us | p90 us | max us |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for name, a, b in PHASES:
        # The end: warpgroup 0 merges the others' partials and stores; the others only hand theirs over.
        d = [(r[b] - r[a]) / ghz / 1e3 for r in main if r[a] and r[b] and (b != "end" or r["wg"] == 0)]
        if d:
            lines.append(f"| {name} | {pct(d, .1):.2f} | {pct(d, .5):.2f} | {pct(d, .9):.2f} | {max(d):.2f} |")
    tot = [(r["end"] - r["start"]) / ghz / 1e3 for r in main]
    lines.append(f"| whole warpgroup | {pct(tot, .1):.2f} | {pct(tot, .5):.2f} | {pct(tot, .9):.2f} | {max(tot):.2f} |")
    units = [(r["end"] - r["start"]) / ghz / 1e3 for r in rows if r["unit"]]
    if units:
        lines.append(f"| tail-split unit warpgroup | {pct(units, .1):.2f} | {pct(units, .5):.2f} | "
                     f"{pct(units, .9):.2f} | {max(units):.2f} |")
    # Where the launch's last microseconds go: end times of the full tiles' CTAs (warpgroup 0) from the launch start,
    # on SMs that also ran a tail-split unit and on the others.
    with_unit, without = [], []
    for g in groups:
        t0 = min(r["start_ns"] for r in g)
        unit_sms = {r["sm"] for r in g if r["unit"]}
        for r in g:
            if not r["unit"] and r["wg"] == 0:
                (with_unit if r["sm"] in unit_sms else without).append((r["end_ns"] - t0) / 1e3)
    lines.append("")
    for name, d in (("SMs that also ran a tail unit", with_unit), ("the other SMs", without)):
        if d:
            lines.append(f"- full tiles' CTAs end (from launch start) on {name}: p50 {pct(d, .5):.2f}, "
                         f"p90 {pct(d, .9):.2f}, max {max(d):.2f} us ({len(d)})")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    for path in argv[1:]:
        print(summarise(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
