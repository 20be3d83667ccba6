#!/usr/bin/env python3
"""Parity of layoutrt against HuggingFace transformers on a layoutlmv3-base-shaped model, for every precision.

A seeded random-init LayoutLMv3ForTokenClassification with the base shapes (hidden 768, 12 layers, 12 heads, FFN 3072,
vocab 50265, 224/16 image, 7 FUNSD labels, both relative-position biases), weights drawn by make_fixtures.randomize
so that LayerNorms and biases are not trivial, saved with save_pretrained into OUT/ckpt. Inputs for each batch size B
and two text shapes (512 real tokens; 137 real tokens padded to 512), with random boxes including 0/1000 edges and
equal-coordinate boxes, random pixel values, saved as OUT/inputs/*.safetensors. The reference is transformers in
float32 with TF32 off and eager attention on --device; reference logits go to OUT/ref/*.safetensors (usable with
`layoutrt compare --reference`). Then for each precision: `layoutrt build --precision P --max-batch max(B)` and
`layoutrt run --backend BACKEND` per input, compared over the real tokens (attention_mask = 1):
rel-L2 = ||a - r||₂ / ||r||₂ of the logits, max-abs, argmax agreement.

--shape large runs the same with microsoft/layoutlmv3-large's shapes (24 layers, hidden 1024, 16 heads, FFN 4096).

Gates: fp32 rel-L2 <= 1e-5; tf32 <= 1e-3; fp16 / bf16 / mixed <= 5e-3 and argmax agreement >= 99.5 %.
Writes OUT/parity.md and OUT/parity.json; exit status 1 when a gate fails, 2 on usage errors.

    python3 python/parity_hf.py --out /tmp/parity --layoutrt build/layoutrt                      # GPU machine
    python3 python/parity_hf.py --out /tmp/parity --layoutrt build/layoutrt --device cpu --backend cpu \\
        --batches 1 --precisions fp32 --tiny                                                     # CPU smoke test
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import FUNSD_LABELS, boundary_boxes, random_boxes, randomize  # noqa: E402

import transformers  # noqa: E402
from transformers import LayoutLMv3Config, LayoutLMv3ForTokenClassification  # noqa: E402

# microsoft/layoutlmv3-base's config.json shapes (max_position_embeddings 514, type_vocab_size 1).
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
            vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, max_2d_position_embeddings=1024,
            coordinate_size=128, shape_size=128, rel_pos_bins=32, max_rel_pos=128, rel_2d_pos_bins=64,
            max_rel_2d_pos=256, has_relative_attention_bias=True, has_spatial_attention_bias=True, visual_embed=True,
            text_embed=True, input_size=224, patch_size=16, num_channels=3, layer_norm_eps=1e-5, pad_token_id=1,
            bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# --shape large: microsoft/layoutlmv3-large's shapes (24 layers, hidden 1024, 16 heads, FFN 4096, 2D widths 171/170).
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
             coordinate_size=171, shape_size=170)
# --tiny: the same switches at fixture size, for a CPU smoke test in seconds.
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=1000,
            coordinate_size=11, shape_size=10)

# precision -> (largest rel-L2, smallest argmax agreement % or None)
GATES = {"fp32": (1e-5, None), "tf32": (1e-3, None), "fp16": (5e-3, 99.5), "bf16": (5e-3, 99.5),
         "mixed": (5e-3, 99.5)}
TEXT_TOKENS = 512
CASES = {"full512": 512, "pad137": 137}  # case -> real tokens per sequence (padded to TEXT_TOKENS)
EDGE_BOXES = np.array([[0, 0, 0, 0], [0, 0, 1000, 1000], [1000, 1000, 1000, 1000], [500, 500, 500, 500],
                       [0, 1000, 0, 1000], [1000, 0, 1000, 0], [37, 37, 37, 37], [0, 0, 1000, 0], [16, 0, 16, 32],
                       [999, 999, 1000, 1000]])


SHAPES = {"base": {}, "large": LARGE, "tiny": TINY}


def make_checkpoint(ckpt_dir, shape, seed):
    cfg = LayoutLMv3Config(**{**BASE, **SHAPES[shape]}, id2label=dict(enumerate(FUNSD_LABELS)),
                           label2id={l: i for i, l in enumerate(FUNSD_LABELS)})
    torch.manual_seed(seed)
    model = LayoutLMv3ForTokenClassification(cfg).eval()
    randomize(model, torch.Generator().manual_seed(seed))
    model.save_pretrained(ckpt_dir, safe_serialization=True)
    return cfg


def make_inputs(rng, batch, real, vocab, image_size):
    T = TEXT_TOKENS
    ids = np.full((batch, T), 1, np.int64)
    mask = np.zeros((batch, T), np.int64)
    box = np.zeros((batch, T, 4), np.int64)
    for b in range(batch):
        ids[b, :real] = rng.integers(3, vocab, real)
        ids[b, 0], ids[b, real - 1] = 0, 2
        mask[b, :real] = 1
        n = real - 2
        half = n // 2
        words = np.concatenate([random_boxes(rng, half), boundary_boxes(rng, n - half)])
        k = min(len(EDGE_BOXES), n)
        words[rng.choice(n, k, replace=False)] = EDGE_BOXES[:k]  # edges 0/1000, zero-size boxes at random places
        box[b, 1:real - 1] = words
    u8 = rng.integers(0, 256, (batch, 3, image_size, image_size))
    pixels = ((u8 / 255.0 - 0.5) / 0.5).astype(np.float32)
    return {"input_ids": ids, "bbox": box, "attention_mask": mask, "pixel_values": pixels}


def metrics(out, ref, mask):
    """rel-L2, max-abs, argmax agreement % of logits [B, T, C] over real tokens."""
    m = mask.astype(bool)
    a, r = out[m].astype(np.float64), ref[m].astype(np.float64)
    finite = bool(np.isfinite(a).all())
    diff = a - r
    rel = float(np.linalg.norm(diff) / max(np.linalg.norm(r), 1e-300)) if finite else float("inf")
    max_abs = float(np.abs(diff).max()) if finite else float("inf")
    agree = float((a.argmax(-1) == r.argmax(-1)).mean() * 100.0)
    return rel, max_abs, agree, int(m.sum()), finite


def run(cmd, log):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    log.write("$ " + " ".join(cmd) + f"  # rc {p.returncode}, {time.time() - t0:.1f}s\n{p.stdout}{p.stderr}\n")
    log.flush()
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="work directory (checkpoint, inputs, plans, outputs, parity.md)")
    ap.add_argument("--layoutrt", default="build/layoutrt", help="the layoutrt CLI")
    ap.add_argument("--precisions", default="fp32,tf32,fp16,bf16,mixed,fp16:f32-residual,bf16:f32-residual",
                    help="precisions to build; P:f32-residual builds P with --residual f32 (FP32 residual stream): "
                         "informational rows, shown but not counted in the verdict")
    ap.add_argument("--batches", default="1,3,8,32")
    ap.add_argument("--device", default="cuda", help="torch device of the reference (cuda or cpu)")
    ap.add_argument("--backend", default=None, help="layoutrt backend (default: cuda when --device cuda, else cpu)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="base",
                    help="model shapes: base (layoutlmv3-base), large (layoutlmv3-large) or tiny (fixture size)")
    ap.add_argument("--tiny", action="store_true", help="same as --shape tiny (CPU smoke test)")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--ckpt-only", action="store_true", help="only write OUT/ckpt (for scripts/gpu_check.sh bench)")
    ap.add_argument("--gate", action="append", default=[], metavar="PRECISION=REL_L2",
                    help="override a precision's rel-L2 gate, e.g. --gate bf16=1.5e-2 (repeatable)")
    ap.add_argument("--keep-plans", action="store_true", help="keep OUT/plans/*.plan (default: deleted after use)")
    args = ap.parse_args()

    for g in args.gate:
        try:
            prec, value = g.split("=")
            GATES[prec] = (float(value), GATES[prec][1])
        except (ValueError, KeyError):
            ap.error(f"--gate {g!r}: expected PRECISION=REL_L2 with PRECISION in {','.join(GATES)}")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    base_of = lambda p: p.split(":")[0]  # noqa: E731
    for p in precisions:
        if base_of(p) not in GATES or p.count(":") > 1 or (":" in p and not p.endswith(":f32-residual")):
            ap.error(f"--precisions: unknown precision {p!r} (expected {','.join(GATES)})")
    try:
        batches = [int(b) for b in args.batches.split(",")]
        assert batches and min(batches) >= 1
    except (ValueError, AssertionError):
        ap.error(f"--batches {args.batches!r}: expected comma-separated batch sizes >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device (use --device cpu for a smoke test)")
    backend = args.backend or ("cuda" if args.device.startswith("cuda") else "cpu")
    if not os.access(args.layoutrt, os.X_OK) and not args.ckpt_only:
        ap.error(f"--layoutrt {args.layoutrt}: not an executable (build it first: bash scripts/setup.sh)")

    # The reference: float32 with TF32 off, as layoutrt's fp32 promises to match.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "ckpt")
    t_start = time.time()
    shape = "tiny" if args.tiny else args.shape
    cfg = make_checkpoint(ckpt, shape, args.seed)
    print(f"checkpoint {ckpt} ({shape} shapes) in {time.time() - t_start:.1f}s", flush=True)
    if args.ckpt_only:
        return 0

    model = LayoutLMv3ForTokenClassification.from_pretrained(ckpt, dtype=torch.float32,
                                                             attn_implementation="eager").to(args.device).eval()
    # torch's own error at each reduced precision, on the same inputs and GPU: the floor any engine storing weights and
    # activations in that format starts from (layoutrt's rows are shown next to it). mixed is compared with fp16.
    import copy
    torch_models = {}
    bases = {base_of(p) for p in precisions}
    if "fp16" in bases or "mixed" in bases:
        torch_models["fp16"] = copy.deepcopy(model).half()
    if "bf16" in bases:
        torch_models["bf16"] = copy.deepcopy(model).bfloat16()
    torch_floor = {}  # (precision, case name) -> (rel, max_abs, agree)

    # The weight-rounding floor: the fp32 model (fp32 math, TF32 off) with only the encoder's linear weights rounded to
    # the format a plan of that precision multiplies them in (tf32: round to nearest, 10 mantissa bits; fp16; bf16).
    # Every engine that runs the encoder's GEMMs on such weights starts from at least this error; activations rounded
    # to the same format add about as much again.
    def round_tf32(t):
        i = t.contiguous().view(torch.int32)
        return ((i + 0x1000) & ~0x1FFF).view(torch.float32)

    floor_models = {}
    for fmt in sorted({"fp16" if b == "mixed" else b for b in bases} - {"fp32"}):
        fm = copy.deepcopy(model)
        with torch.no_grad():
            for mod in fm.layoutlmv3.encoder.modules():
                if isinstance(mod, torch.nn.Linear):
                    w = mod.weight
                    w.copy_(round_tf32(w) if fmt == "tf32" else w.to(torch.float16 if fmt == "fp16" else torch.bfloat16)
                            .float())
        floor_models[fmt] = fm
    weight_floor = {}  # (precision, case name) -> (rel, max_abs, agree)

    def torch_logits(prec, inp):
        tin = {k: torch.from_numpy(v).to(args.device) for k, v in inp.items()}
        with torch.no_grad():
            if prec == "tf32":
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
                try:
                    return model(**tin).logits.float().cpu().numpy()
                finally:
                    torch.backends.cuda.matmul.allow_tf32 = False
                    torch.backends.cudnn.allow_tf32 = False
            m = torch_models["bf16" if prec == "bf16" else "fp16"]
            dt = torch.bfloat16 if prec == "bf16" else torch.float16
            tin["pixel_values"] = tin["pixel_values"].to(dt)
            return m(**tin).logits.float().cpu().numpy()

    rng = np.random.default_rng(args.seed)
    cases = []  # (name, batch, real tokens, inputs path, reference logits, mask)
    for d in ("inputs", "ref", "outputs", "plans"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)
    for batch in batches:
        for cname, real in CASES.items():
            name = f"b{batch}_{cname}"
            inp = make_inputs(rng, batch, real, cfg.vocab_size, cfg.input_size)
            path = os.path.join(args.out, "inputs", name + ".safetensors")
            save_file({k: torch.from_numpy(v) for k, v in inp.items()}, path)
            with torch.no_grad():
                logits = model(**{k: torch.from_numpy(v).to(args.device) for k, v in inp.items()}).logits
            logits = logits.float().cpu()
            save_file({"logits": logits.contiguous(), "labels": logits.argmax(-1).to(torch.int32).contiguous()},
                      os.path.join(args.out, "ref", name + ".safetensors"))
            cases.append((name, batch, real, path, logits.numpy(), inp["attention_mask"]))
            if args.device.startswith("cuda"):
                for prec in sorted(bases):
                    if prec != "fp32":
                        rel, mx, agree, _, _ = metrics(torch_logits(prec, inp), logits.numpy(), inp["attention_mask"])
                        torch_floor[(prec, name)] = (rel, mx, agree)
                        fm = floor_models["fp16" if prec == "mixed" else prec]
                        with torch.no_grad():
                            fl = fm(**{k: torch.from_numpy(v).to(args.device) for k, v in inp.items()}).logits
                        weight_floor[(prec, name)] = metrics(fl.float().cpu().numpy(), logits.numpy(),
                                                             inp["attention_mask"])[:3]
    del model, torch_models, floor_models
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    print(f"inputs and torch references ({len(cases)} cases) in {time.time() - t_start:.1f}s", flush=True)

    rows = []
    log = open(os.path.join(args.out, "layoutrt_commands.log"), "w")
    for prec in precisions:
        base, f32_residual = base_of(prec), prec.endswith(":f32-residual")
        max_rel, min_agree = GATES[base]
        plan = os.path.join(args.out, "plans", prec.replace(":", "_") + ".plan")
        t0 = time.time()
        p = run([args.layoutrt, "build", "--checkpoint", ckpt, "--precision", base, "--max-batch", str(max(batches)),
                 "--residual", "f32" if f32_residual else "native", "--output", plan, "-q"], log)
        build_error = None if p.returncode == 0 else f"build rc {p.returncode}: {p.stderr.strip()[-300:]}"
        for name, batch, real, path, ref, mask in cases:
            row = {"precision": prec, "case": name, "batch": batch, "real_tokens": real, "text_tokens": TEXT_TOKENS,
                   "gate_rel_l2": max_rel, "gate_argmax_percent": min_agree, "informational": f32_residual}
            if build_error:
                row.update(error=build_error, passed=False)
                rows.append(row)
                continue
            out = os.path.join(args.out, "outputs", f"{prec.replace(':', '_')}_{name}.safetensors")
            p = run([args.layoutrt, "run", "--plan", plan, "--inputs", path, "--output", out, "--backend", backend], log)
            if p.returncode != 0:
                row.update(error=f"run rc {p.returncode}: {p.stderr.strip()[-300:]}", passed=False)
                rows.append(row)
                continue
            logits = load_file(out)["logits"].float().numpy()
            if logits.shape != ref.shape:
                row.update(error=f"logits shape {logits.shape}, reference {ref.shape}", passed=False)
                rows.append(row)
                continue
            rel, max_abs, agree, n_real, finite = metrics(logits, ref, mask)
            ok = finite and rel <= max_rel and (min_agree is None or agree >= min_agree)
            row.update(rel_l2=rel, max_abs=max_abs, argmax_percent=agree, real_token_count=n_real, passed=ok)
            if (base, name) in torch_floor:
                row.update(torch_rel_l2=torch_floor[(base, name)][0], torch_argmax_percent=torch_floor[(base, name)][2])
            if (base, name) in weight_floor:
                row.update(weight_floor_rel_l2=weight_floor[(base, name)][0],
                           weight_floor_argmax_percent=weight_floor[(base, name)][2])
            rows.append(row)
        if not args.keep_plans and os.path.exists(plan):
            os.remove(plan)
        done = [r for r in rows if r["precision"] == prec]
        worst = max((r.get("rel_l2", float("inf")) for r in done), default=float("nan"))
        print(f"{prec}: {sum(r['passed'] for r in done)}/{len(done)} pass, worst rel-L2 {worst:.3e} "
              f"({time.time() - t0:.1f}s)", flush=True)
    log.close()

    gated = [r for r in rows if not r["informational"]]
    passed = all(r["passed"] for r in gated)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    header = (f"Parity of layoutrt ({backend}) vs transformers {transformers.__version__} / torch {torch.__version__} "
              f"float32 (TF32 off, eager attention) on {device_name}; {'tiny' if shape == 'tiny' else 'layoutlmv3-' + shape}-shaped "
              f"random-init token classifier (seed {args.seed}); T = {TEXT_TOKENS} text tokens + image; metrics over "
              f"real tokens' logits.")
    header += (" torch rel-L2 / argmax %: torch itself at that precision (TF32 matmuls; the model in fp16 / bf16; mixed "
               "is compared with torch fp16) against the same fp32 reference. weight floor: the fp32 model in fp32 math (TF32 off) "
               "with only the encoder's linear weights rounded to the precision's GEMM format (tf32 round-to-nearest, "
               "fp16, bf16): the error any engine multiplying those weights starts from. Default plans (`--residual native`); "
               "P:f32-residual rows are built with `layoutrt build --residual f32` (FP32 residual stream) for "
               "comparison and are not counted in the verdict (result in parentheses).")
    def verdict(r):
        v = "PASS" if r["passed"] else "FAIL"
        return f"({v})" if r["informational"] else v

    md = [header, "", "| precision | batch | real tokens / T | rel-L2 | max-abs | argmax % | torch rel-L2 | torch argmax % "
          "| weight floor rel-L2 | weight floor argmax % | gate | result |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        gate = f"rel-L2 ≤ {r['gate_rel_l2']:g}" + (f", argmax ≥ {r['gate_argmax_percent']:g} %"
                                                   if r["gate_argmax_percent"] else "")
        if "error" in r:
            md.append(f"| {r['precision']} | {r['batch']} | {r['real_tokens']} / {TEXT_TOKENS} | — | — | — | — | — | — | — "
                      f"| {gate} | "
                      f"ERROR: {r['error'].splitlines()[-1] if r['error'] else ''} |")
        else:
            floor = (f"{r['torch_rel_l2']:.3e} | {r['torch_argmax_percent']:.2f}" if "torch_rel_l2" in r else "— | —")
            floor += (f" | {r['weight_floor_rel_l2']:.3e} | {r['weight_floor_argmax_percent']:.2f}"
                      if "weight_floor_rel_l2" in r else " | — | —")
            md.append(f"| {r['precision']} | {r['batch']} | {r['real_tokens']} / {TEXT_TOKENS} | {r['rel_l2']:.3e} | "
                      f"{r['max_abs']:.3e} | {r['argmax_percent']:.2f} | {floor} | "
                      f"{gate} | {verdict(r)} |")
    md.append("")
    md.append(f"**{'PASS' if passed else 'FAIL'}**: {sum(r['passed'] for r in gated)}/{len(gated)} rows within their gates "
              f"({time.time() - t_start:.0f}s).")
    text = "\n".join(md) + "\n"
    print(text)
    with open(os.path.join(args.out, "parity.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "parity.json"), "w") as f:
        json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "device": device_name, "backend": backend, "torch": torch.__version__,
                   "transformers": transformers.__version__, "model": "tiny" if shape == "tiny" else f"layoutlmv3-{shape} shapes",
                   "seed": args.seed, "text_tokens": TEXT_TOKENS, "batches": batches, "precisions": precisions,
                   "rows": rows, "pass": passed}, f, indent=1)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
