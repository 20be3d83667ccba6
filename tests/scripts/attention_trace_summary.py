#!/usr/bin/env python3
"""CPU test of scripts/attention_trace.py: a synthetic trace with known phase times (two launches; full query tiles'
warpgroups and tail-split units on a 2 GHz clock) must come back as those times, launch spans and clock.

usage: python3 tests/scripts/attention_trace_summary.py <repository root> <scratch dir>
"""
import csv
import importlib.util
import os
import sys

root, scratch = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("attention_trace", os.path.join(root, "scripts", "attention_trace.py"))
at = importlib.util.module_from_spec(spec)
spec.loader.exec_module(at)

GHZ = 2.0
# Phase durations in us of every full tile's warpgroup: PDL wait, prologue, first tile visible, key tiles 0 .. 5,
# walk end, merge + store.
PHASE_US = [0.05, 1.25, 0.25, 1.5, 1.0, 1.0, 1.0, 1.0, 0.75, 0.05, 0.5]
HEADER = ("qt,h,b,wg,unit,sm,start_ns,start,pdl_wait,prologue,first_tile,tile0,tile1,tile2,tile3,tile4,tile5,walk_end,"
          "end,end_ns").split(",")


def record(qt, h, wg, unit, sm, start_ns, start_clk, phases_us):
    clocks, c = [start_clk], start_clk
    for us in phases_us:
        c += int(round(us * 1e3 * GHZ))
        clocks.append(c)
    if unit:  # start, pdl_wait, prologue, end only
        full = [clocks[0], clocks[1], clocks[2]] + [0] * 8 + [clocks[-1]]
    else:
        full = clocks
    end_ns = start_ns + int(round((clocks[-1] - start_clk) / GHZ))
    return [qt, h, 0, wg, 1 if unit else 0, sm, start_ns, *full, end_ns]


rows = []
for launch, t0 in enumerate((1_000_000, 1_100_000)):
    for qt in range(4):
        for wg in range(2):
            rows.append(record(qt, 0, wg, False, qt, t0 + 10 * qt, 10_000 * (launch + 1), PHASE_US))
    rows.append(record(4, 0, 0, True, 0, t0 + 20, 5_000, [0.02, 0.5, 2.0]))  # a unit on SM 0
path = os.path.join(scratch, "attention_trace_test.b1.csv")
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(HEADER)
    w.writerows(rows)

out = at.summarise(path)
print(out)
failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)


expect("18 records, 2 launches, SM clock 2.00 GHz" in out, "records / launches / clock line")
whole = sum(PHASE_US)
span = whole + 0.03  # the last full tile starts 30 ns after the first
expect(f"launch spans (us): {span:.2f}, {span:.2f}" in out, f"launch spans {span:.2f}")
names = ["PDL wait", "prologue", "first tile visible"] + [f"key tile {i}" for i in range(6)] + [
    "walk to end", "merge + store (warpgroup 0)"]
for name, us in zip(names, PHASE_US):
    expect(f"| {name} | {us:.2f} | {us:.2f} | {us:.2f} | {us:.2f} |" in out, f"row {name} = {us:.2f}")
expect(f"| whole warpgroup | {whole:.2f} |" in out, "whole warpgroup row")
expect("| tail-split unit warpgroup | 2.52 |" in out, "tail unit row")
expect("on SMs that also ran a tail unit: p50" in out and "(2)" in out, "tail-unit SM split")
if failures:
    print("FAILED:", "; ".join(failures))
    sys.exit(1)
print("attention_trace.py summary: OK")
