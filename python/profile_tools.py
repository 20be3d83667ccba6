#!/usr/bin/env python3
"""Helpers for scripts/gpu_check.sh's `profile` step (GPU machine).

  profile_tools.py kernels NCU.csv OUT.md [--title T] [--from-last REGEX]
      Per-kernel device time from `ncu --csv --metrics gpu__time_duration.sum` (one forward): kernels grouped by a
      short name, launches, total microseconds and share, largest first, as a markdown table. --from-last: only the
      launches from the last kernel whose name matches REGEX on (e.g. text_embedding: the last of several forwards,
      after warm-up runs and GEMM tuning).
  profile_tools.py stalls OUT.md NAME=SOURCE.csv ... [--top N]
      The hottest instructions of one kernel launch per run from ncu's source page (`ncu --page source --print-source
      sass --csv`, warp stall sampling): per instruction its share of all samples of that launch, in each run, the
      instructions ranked by their largest share (scripts/attention_stalls.sh). Runs of different kernel
      instantiations (the B = 1 attention kernel splits its keys over two warpgroups) list their own rows.
  profile_tools.py strip-bias CKPT_DIR OUT_DIR
      A copy of a LayoutLMv3 checkpoint without relative-position biases (has_relative_attention_bias and
      has_spatial_attention_bias false, the rel_pos tensors dropped): same shapes otherwise, so the attention stage of
      the two plans differs only by the bias lookups.
"""
import argparse
import csv
import json
import os
import re
import shutil
import sys
from collections import defaultdict

UNIT_US = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6, "ns": 1e-3, "us": 1.0, "ms": 1e3}


def short_name(kernel: str) -> str:
    """A readable group for a kernel: our kernels by function name, cuBLAS(Lt) GEMMs by their tile signature."""
    k = kernel.strip()
    name = re.sub(r"^(void )?", "", k)
    name = name.replace("<unnamed>::", "").replace("(anonymous namespace)::", "")
    name = re.sub(r"\(.*$", "", name)  # argument list
    base = re.sub(r"<.*$", "", name)
    base = base.split("::")[-1]
    if re.search(r"gemm|sm90_xmma|cutlass|nvjet|cublas", k, re.I):
        m = re.search(r"(\d+x\d+x\d+)", k)
        return f"GEMM {base[:40]}" + (f" {m.group(1)}" if m else "")
    tmpl = re.search(r"<([^<>]*)>", name)
    return base + (f"<{tmpl.group(1)}>" if tmpl and len(tmpl.group(1)) < 40 else "")


def kernels(args):
    rows = []
    with open(args.csv, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu prints its own log lines before the CSV
    reader = csv.DictReader(lines)
    for r in reader:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        rows.append((r["Kernel Name"], v * UNIT_US.get(r.get("Metric Unit", "usecond"), 1.0)))
    if not rows:
        sys.exit(f"{args.csv}: no gpu__time_duration.sum rows (did ncu run?)")
    if args.from_last:
        starts = [i for i, (name, _) in enumerate(rows) if re.search(args.from_last, name)]
        if not starts:
            sys.exit(f"{args.csv}: no kernel matches --from-last {args.from_last!r}")
        rows = rows[starts[-1]:]
    groups = defaultdict(lambda: [0, 0.0])
    for name, us in rows:
        g = groups[short_name(name)]
        g[0] += 1
        g[1] += us
    total = sum(us for _, us in rows)
    out = [f"### {args.title}", "",
           f"{len(rows)} kernel launches, {total / 1e3:.3f} ms of kernel time (serialized by ncu: no overlap, "
           "no launch gaps)", "",
           "| kernel | launches | total ms | share | mean us |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, (n, us) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        out.append(f"| `{name}` | {n} | {us / 1e3:.3f} | {100 * us / total:.1f}% | {us / n:.1f} |")
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))


def strip_bias(args):
    from safetensors.numpy import load_file, save_file  # numpy: no torch needed
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.ckpt, "config.json")) as f:
        cfg = json.load(f)
    cfg["has_relative_attention_bias"] = False
    cfg["has_spatial_attention_bias"] = False
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tensors = load_file(os.path.join(args.ckpt, "model.safetensors"))
    kept = {k: v for k, v in tensors.items() if "rel_pos" not in k}
    save_file(kept, os.path.join(args.out, "model.safetensors"))
    print(f"{args.out}: dropped {len(tensors) - len(kept)} rel_pos tensors: "
          + ", ".join(sorted(k for k in tensors if k not in kept)))


def source_page(path):
    """(instruction text, stall samples) per SASS line of the first kernel in an ncu source-page CSV."""
    rows = list(csv.reader(open(path, newline="")))
    head = next((i for i, r in enumerate(rows) if r and r[0] == "Address"), None)
    if head is None:
        sys.exit(f"{path}: no source page (no 'Address' header row)")
    hdr = rows[head]
    src, smp = hdr.index("Source"), hdr.index("Warp Stall Sampling (All Samples)")
    out = []
    for r in rows[head + 1:]:
        if len(r) != len(hdr):
            break  # the next kernel's header or the end
        out.append((" ".join(r[src].split()), float(r[smp] or 0)))
    return out


def stalls(args):
    runs = []
    for spec in args.runs:
        name, _, path = spec.partition("=")
        if not path:
            sys.exit(f"{spec}: expected NAME=SOURCE.csv")
        lines = source_page(path)
        total = sum(v for _, v in lines) or 1.0
        runs.append((name, lines, total))
    # An instruction is identified by its index and text (the runs profile the same binary, so the SASS matches).
    share = defaultdict(dict)
    for name, lines, total in runs:
        for i, (text, v) in enumerate(lines):
            share[(i, text)][name] = 100.0 * v / total
    ranked = sorted(share.items(), key=lambda kv: -max(kv[1].values()))[: args.top]
    names = [n for n, _, _ in runs]
    md = ["Hottest instructions (share of the launch's warp stall samples; # = index in the SASS listing):", "",
          "| # | instruction | " + " | ".join(names) + " |", "| ---: | --- |" + " ---: |" * len(names)]
    for (i, text), per in ranked:
        md.append(f"| {i} | `{text}` | " + " | ".join(f"{per.get(n, 0):.1f} %" for n in names) + " |")
    md.append("")
    md.append("Samples per run: " + ", ".join(f"{n} {int(t)}" for n, _, t in runs) + ".")
    open(args.out, "w").write("\n".join(md) + "\n")
    print("\n".join(md))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kernels", help="per-kernel table from an ncu CSV")
    k.add_argument("csv")
    k.add_argument("out")
    k.add_argument("--title", default="Per-kernel device time")
    k.add_argument("--from-last", default="", help="keep the launches from the last kernel matching this regex on")
    t = sub.add_parser("stalls", help="hottest instructions from ncu source-page CSVs")
    t.add_argument("out")
    t.add_argument("runs", nargs="+", help="NAME=SOURCE.csv")
    t.add_argument("--top", type=int, default=15)
    s = sub.add_parser("strip-bias", help="checkpoint copy without relative-position biases")
    s.add_argument("ckpt")
    s.add_argument("out")
    a = ap.parse_args()
    {"kernels": kernels, "stalls": stalls, "strip-bias": strip_bias}[a.cmd](a)


if __name__ == "__main__":
    main()
