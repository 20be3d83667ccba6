#!/usr/bin/env python3
"""The PyTorch baseline `layoutrt bench` is measured against: transformers' LayoutLMv3ForTokenClassification with the
layoutlmv3-base shapes (random init) on the same synthetic inputs (T text tokens, all real, + a 224x224 image).

Modes: eager-fp32 (TF32 off, the exact mode), eager-fp16, eager-bf16, compile-fp16 (torch.compile; compile time is
printed and reported apart). Timing with torch.cuda.Event around each forward (time.perf_counter on the CPU);
median / p90 / p99 ms, sequences/s = B / median, TFLOP/s from the same model-FLOP formula as layoutrt bench
(tools/layoutrt/cmd_bench.cpp), peak memory = torch.cuda.max_memory_allocated (the caching allocator's peak).

    python3 python/torch_baseline.py --batches 1,2,4,8,16,32 --json torch.json --markdown speed.md
    python3 python/torch_baseline.py --device cpu --batches 1 --modes eager-fp32 --tiny        # CPU smoke test
"""
import argparse
import datetime
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity_hf import BASE, TINY  # noqa: E402

import transformers  # noqa: E402
from transformers import LayoutLMv3Config, LayoutLMv3ForTokenClassification  # noqa: E402

PRECISION_NAME = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
MODES = {"eager-fp32": (torch.float32, False), "eager-fp16": (torch.float16, False),
         "eager-bf16": (torch.bfloat16, False), "compile-fp16": (torch.float16, True)}
NUM_LABELS = 7


def flops_per_sequence(cfg, T, labels):
    """Model FLOPs of one sequence, as layoutrt bench counts them (multiply-add = 2). L = T + visual tokens:
    per layer 2·L·H·3H (QKV) + 2·L·L·H (scores) + 2·L·L·H (P·V) + 2·L·H·H (out-proj) + 4·L·H·I (FFN), × layers,
    + patch embedding 2·P·(C·p·p)·H + token-classification head 2·T·H·labels. Base at T = 512: 139.2 GFLOP."""
    H, I, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    P = (cfg.input_size // cfg.patch_size) ** 2
    L = T + P + 1
    per_layer = 2 * L * H * 3 * H + 2 * L * L * H + 2 * L * L * H + 2 * L * H * H + 4 * L * H * I
    head = 2 * T * H * labels if labels < 10 else 2 * T * (H * H + H * labels)
    return per_layer * n + 2 * P * (cfg.num_channels * cfg.patch_size ** 2) * H + head


def synthetic_inputs(rng, batch, T, cfg, device, dtype):
    ids = rng.integers(3, cfg.vocab_size, (batch, T))
    ids[:, 0], ids[:, -1] = 0, 2
    x0 = rng.integers(0, 1001, (batch, T))
    y0 = rng.integers(0, 1001, (batch, T))
    box = np.stack([x0, y0, np.minimum(x0 + rng.integers(0, 200, (batch, T)), 1000),
                    np.minimum(y0 + rng.integers(0, 60, (batch, T)), 1000)], -1)
    box[:, [0, -1]] = 0
    u8 = rng.integers(0, 256, (batch, cfg.num_channels, cfg.input_size, cfg.input_size))
    return {"input_ids": torch.from_numpy(ids).to(device), "bbox": torch.from_numpy(box).to(device),
            "attention_mask": torch.ones(batch, T, dtype=torch.int64, device=device),
            "pixel_values": torch.from_numpy((u8 / 255.0 - 0.5) / 0.5).to(device=device, dtype=dtype)}


def percentile(sorted_ms, p):
    """Nearest rank, as layoutrt bench."""
    k = max(1, min(len(sorted_ms), int(np.ceil(p / 100.0 * len(sorted_ms)))))
    return sorted_ms[k - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,2,4,8,16,32")
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--modes", default="eager-fp32,eager-fp16,compile-fp16", help=",".join(MODES))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--max-seconds", type=float, default=8.0,
                    help="stop a (mode, batch)'s timed loop after this many seconds (at least 3 runs)")
    ap.add_argument("--compile-mode", default="reduce-overhead",
                    help="torch.compile mode: default, reduce-overhead, max-autotune-no-cudagraphs, ...")
    ap.add_argument("--compile-budget-s", type=float, default=120.0,
                    help="skip compile-* for the remaining batches once compiling took this long in total")
    ap.add_argument("--attn", default="eager",
                    help="transformers attention implementation (LayoutLMv3ForTokenClassification takes only eager in "
                         "transformers 5.17; sdpa raises)")
    ap.add_argument("--tiny", action="store_true", help="fixture-sized model (smoke test)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the results as JSON")
    ap.add_argument("--markdown", help="append one row per (mode, batch) in layoutrt bench's table format")
    args = ap.parse_args()

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            ap.error(f"--modes: unknown mode {m!r} (expected {','.join(MODES)})")
    try:
        batches = [int(b) for b in args.batches.split(",")]
        assert batches and min(batches) >= 1
    except (ValueError, AssertionError):
        ap.error(f"--batches {args.batches!r}: expected comma-separated batch sizes >= 1")
    if not 1 <= args.text_tokens <= 512:
        ap.error("--text-tokens must be in 1..512")
    on_cuda = args.device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device (use --device cpu)")
    torch.backends.cuda.matmul.allow_tf32 = False  # eager-fp32 is the exact mode; fp16/bf16 GEMMs are unaffected
    torch.backends.cudnn.allow_tf32 = False

    cfg = LayoutLMv3Config(**{**BASE, **(TINY if args.tiny else {})}, num_labels=NUM_LABELS)
    cfg._attn_implementation = args.attn
    torch.manual_seed(args.seed)
    master = LayoutLMv3ForTokenClassification(cfg).eval()
    gflop = flops_per_sequence(cfg, args.text_tokens, NUM_LABELS) / 1e9
    device_name = torch.cuda.get_device_name() if on_cuda else "CPU"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"# torch baseline | {date} | {device_name} | torch {torch.__version__}, transformers "
          f"{transformers.__version__}, attn {args.attn} | {' '.join(sys.argv)}")
    print(f"# T = {args.text_tokens} + {(cfg.input_size // cfg.patch_size) ** 2 + 1} visual tokens; {gflop:.2f} GFLOP "
          f"per sequence; timing {'torch.cuda.Event' if on_cuda else 'perf_counter'}; warmup {args.warmup}, "
          f"iters {args.iters} (at most {args.max_seconds:g} s each)")
    print(f"{'mode':>14} {'batch':>6} {'median_ms':>10} {'p90_ms':>10} {'p99_ms':>10} {'seq/s':>10} {'TFLOP/s':>9} "
          f"{'MiB':>8}", flush=True)

    rng = np.random.default_rng(args.seed)
    results, md_rows = [], []
    compile_total = 0.0
    for mode in modes:
        dtype, compiled = MODES[mode]
        model = master.to(device=args.device, dtype=dtype)  # in place: master follows
        fn = model
        if compiled:
            torch._dynamo.reset()
            fn = torch.compile(model, mode=args.compile_mode)
        for batch in batches:
            if compiled and compile_total > args.compile_budget_s:
                print(f"{mode:>14} {batch:>6}  skipped: compile budget {args.compile_budget_s:g} s spent", flush=True)
                results.append({"mode": mode, "batch": batch, "skipped": "compile budget spent"})
                continue
            inputs = synthetic_inputs(rng, batch, args.text_tokens, cfg, args.device, dtype)
            if on_cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            try:
                with torch.no_grad():
                    t0 = time.perf_counter()
                    fn(**inputs)  # first call: compiles (compile-*), else part of the warmup
                    if on_cuda:
                        torch.cuda.synchronize()
                    first_s = time.perf_counter() - t0
                    if compiled:
                        compile_total += first_s
                    for _ in range(max(args.warmup - 1, 0)):
                        fn(**inputs)
                    ms = []
                    loop_start = time.perf_counter()
                    for i in range(args.iters):
                        if on_cuda:
                            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                            start.record()
                            fn(**inputs)
                            end.record()
                            end.synchronize()
                            ms.append(start.elapsed_time(end))
                        else:
                            t = time.perf_counter()
                            fn(**inputs)
                            ms.append((time.perf_counter() - t) * 1e3)
                        if i + 1 >= 3 and time.perf_counter() - loop_start > args.max_seconds:
                            break
            except Exception as e:  # out of memory, a compile failure: report it and go on with the next one
                msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                print(f"{mode:>14} {batch:>6}  {type(e).__name__}: {msg}", flush=True)
                results.append({"mode": mode, "batch": batch, "error": f"{type(e).__name__}: {msg}"})
                del inputs
                if on_cuda:
                    torch.cuda.empty_cache()
                continue
            ms.sort()
            median = percentile(ms, 50)
            seq_s = batch / (median / 1e3)
            peak = torch.cuda.max_memory_allocated() if on_cuda else 0
            r = {"mode": mode, "batch": batch, "median_ms": median, "p90_ms": percentile(ms, 90),
                 "p99_ms": percentile(ms, 99), "min_ms": ms[0], "iters": len(ms), "seq_per_s": seq_s,
                 "tflops": gflop * seq_s / 1e3, "peak_alloc_bytes": peak, "first_call_s": first_s}
            if compiled:
                r["compile_s"] = first_s
            results.append(r)
            note = f"  (first call incl. compile {first_s:.1f} s)" if compiled else ""
            print(f"{mode:>14} {batch:>6} {median:>10.3f} {r['p90_ms']:>10.3f} {r['p99_ms']:>10.3f} {seq_s:>10.1f} "
                  f"{r['tflops']:>9.3g} {peak / 2**20 if on_cuda else float('nan'):>8.0f}{note}", flush=True)
            mem = f"{peak / 2**20:.0f} (torch peak alloc)" if on_cuda else "n/a"
            md_rows.append(f"| torch {mode} | {PRECISION_NAME[dtype]} "
                           f"| {batch} | {args.text_tokens} | {median:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | "
                           f"{seq_s:.1f} | {r['tflops']:.3g} | {mem} |")
            del inputs
        del fn, model
        if on_cuda:
            torch.cuda.empty_cache()
    if compile_total:
        print(f"# compile time (first calls of compile-* modes, {args.compile_mode}): {compile_total:.1f} s")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "torch_baseline.py", "date": date, "device": device_name, "torch": torch.__version__,
                       "transformers": transformers.__version__, "attn_implementation": args.attn,
                       "compile_mode": args.compile_mode, "compile_total_s": compile_total,
                       "model": "tiny" if args.tiny else "layoutlmv3-base shapes", "text_tokens": args.text_tokens,
                       "gflop_per_seq": gflop, "timing": "torch.cuda.Event" if on_cuda else "perf_counter",
                       "warmup": args.warmup, "iters": args.iters, "command": " ".join(sys.argv),
                       "results": results}, f, indent=1)
    if args.markdown:
        fresh = not os.path.exists(args.markdown) or os.path.getsize(args.markdown) == 0
        with open(args.markdown, "a") as f:
            if fresh:
                f.write("| engine | precision | batch | T | median ms | p90 ms | p99 ms | seq/s | TFLOP/s | memory MiB |\n"
                        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
            f.write("".join(row + "\n" for row in md_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
