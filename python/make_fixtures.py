#!/usr/bin/env python3
"""Builds layoutrt's test fixtures from HuggingFace transformers (the reference).

Writes tiny random LayoutLMv3 checkpoints (every head and the config switches that change the math), input cases in
the layout of transformers' processor outputs (padding, pad tokens inside a sequence, boxes and positions on the
relative-position bucket boundaries), the reference outputs transformers computes for each (model, case) pair in
float32, and the relative-position bucket tables torch computes on this machine.

    python3 python/make_fixtures.py --out tests/fixtures            # CPU is enough; ~1 minute
    python3 python/make_fixtures.py --out DIR --buckets-only        # only the bucket dump (e.g. on the GPU machine)

Deterministic for a given torch/transformers version (seeded). Needs torch, transformers, safetensors, numpy.
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file

import transformers
from transformers import (LayoutLMv3Config, LayoutLMv3ForQuestionAnswering, LayoutLMv3ForSequenceClassification,
                          LayoutLMv3ForTokenClassification, LayoutLMv3Model)

FUNSD_LABELS = ["O", "B-HEADER", "I-HEADER", "B-QUESTION", "I-QUESTION", "B-ANSWER", "I-ANSWER"]
VOCAB = 1000

# name -> (class, config overrides, storage dtype, shard size or None)
MODELS = {
    # The main fixture: FUNSD-like token classification, the tiny shape, stored F32.
    "token_cls": (LayoutLMv3ForTokenClassification,
                  dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                       coordinate_size=11, shape_size=10, id2label=dict(enumerate(FUNSD_LABELS))),
                  torch.float32, None),
    # Sequence classification, stored BF16 and sharded (model.safetensors.index.json).
    "seq_cls_bf16_sharded": (LayoutLMv3ForSequenceClassification,
                             dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                  coordinate_size=11, shape_size=10, num_labels=3),
                             torch.bfloat16, "150KB"),
    # >= 10 labels: the token head becomes dense + tanh + out_proj (trap 6). Stored F16. gelu_new activation.
    "token_cls16_f16": (LayoutLMv3ForTokenClassification,
                        dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             coordinate_size=6, shape_size=4, num_labels=16, hidden_act="gelu_new"),
                        torch.float16, None),
    # Question answering (start/end over all L positions), 1D bias only, odd head count.
    "qa_1d_bias": (LayoutLMv3ForQuestionAnswering,
                   dict(hidden_size=24, num_hidden_layers=1, num_attention_heads=3, intermediate_size=48,
                        coordinate_size=4, shape_size=4, num_labels=2, has_spatial_attention_bias=False),
                   torch.float32, None),
    # Bare model; spatial bias on but 1D bias off: transformers then adds NO bias (the 2D bias only rides with 1D).
    "base_spatial_only": (LayoutLMv3Model,
                          dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                               coordinate_size=6, shape_size=4, has_relative_attention_bias=False),
                          torch.float16, None),
    # Text only (visual_embed false).
    "token_cls_text_only": (LayoutLMv3ForTokenClassification,
                            dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 coordinate_size=6, shape_size=4, visual_embed=False, num_labels=5),
                            torch.float16, None),
    # Image only (text_embed false), sequence classification on the visual CLS.
    "seq_cls_image_only": (LayoutLMv3ForSequenceClassification,
                           dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                coordinate_size=6, shape_size=4, text_embed=False, num_labels=4),
                           torch.float32, None),
}

COMMON = dict(vocab_size=VOCAB, max_position_embeddings=514, type_vocab_size=2, max_2d_position_embeddings=1024,
              rel_pos_bins=32, max_rel_pos=128, rel_2d_pos_bins=64, max_rel_2d_pos=256, input_size=224, patch_size=16,
              num_channels=3, layer_norm_eps=1e-5, pad_token_id=1, hidden_dropout_prob=0.0,
              attention_probs_dropout_prob=0.0)


def randomize(model, gen):
    """Replaces every parameter with random values large enough that every term of the forward matters (zero biases
    and unit LayerNorms would hide indexing bugs; large relative-position biases make a wrong bucket visible)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if "patch_embed" in name or name.endswith("cls_token") or name.endswith("pos_embed"):
                # Visual embeddings before `norm` kept small (variance ~1e-5) so that norm's eps (1e-6, not the
                # config's 1e-5: trap 4) changes the output far beyond the test tolerance.
                v = 0.004 * torch.randn(shape, generator=gen)
            elif name.endswith("LayerNorm.weight") or name.endswith("norm.weight"):
                v = 1.0 + 0.2 * torch.randn(shape, generator=gen)
            elif "rel_pos" in name:
                v = 2.0 * torch.randn(shape, generator=gen)
            elif name.endswith(".bias"):
                v = 0.2 * torch.randn(shape, generator=gen)
            elif "embeddings" in name or name in ("layoutlmv3.cls_token", "layoutlmv3.pos_embed", "cls_token",
                                                  "pos_embed"):
                v = 0.5 * torch.randn(shape, generator=gen)
            else:  # linear / conv weights
                fan_in = int(np.prod(shape[1:]))
                v = torch.randn(shape, generator=gen) / np.sqrt(fan_in)
            p.copy_(v.to(p.dtype))


def boundary_boxes(rng, n):
    """Boxes whose left x and bottom y sit at distances on the 2D bucket boundaries (16·2^k, 0 and 1000)."""
    anchors = np.array([0, 16, 32, 64, 128, 256, 512, 1000, 31, 33, 63, 65, 127, 129, 255, 257, 999, 500])
    x0 = rng.choice(anchors, n)
    y1 = rng.choice(anchors, n)
    w = rng.integers(0, 60, n)
    h = rng.integers(0, 60, n)
    x1 = np.minimum(x0 + w, 1000)
    y0 = np.maximum(y1 - h, 0)
    return np.stack([x0, y0, x1, y1], -1)


def random_boxes(rng, n):
    x0 = rng.integers(0, 1001, n)
    y0 = rng.integers(0, 1001, n)
    x1 = np.minimum(x0 + rng.integers(0, 200, n), 1000)
    y1 = np.minimum(y0 + rng.integers(0, 80, n), 1000)
    return np.stack([x0, y0, x1, y1], -1)


def make_cases(rng):
    """Input cases as transformers' processor would give them (ids with <s>=0 ... </s>=2, pad=1)."""
    cases = {}

    def seq(length, total, boxes_fn):
        ids = np.full(total, 1, np.int64)
        ids[:length] = rng.integers(3, VOCAB, length)
        ids[0], ids[length - 1] = 0, 2
        mask = np.zeros(total, np.int64)
        mask[:length] = 1
        box = np.zeros((total, 4), np.int64)
        box[1:length - 1] = boxes_fn(rng, length - 2)
        return ids, box, mask

    def pixels(b):
        # Processor-like values: (u8 / 255 - 0.5) / 0.5, stored as float16 to keep the fixtures small.
        u8 = rng.integers(0, 256, (b, 3, 224, 224))
        return ((u8 / 255.0 - 0.5) / 0.5).astype(np.float16)

    # 1) One full page: 512 tokens, no padding; 1D distances reach 511, 2D on bucket boundaries.
    ids, box, mask = seq(512, 512, boundary_boxes)
    cases["b1_full512"] = dict(input_ids=ids[None], bbox=box[None], attention_mask=mask[None], pixel_values=pixels(1))
    # 2) Three padded sequences of 137 tokens (lengths 137, 100, 5).
    rows = [seq(n, 137, random_boxes) for n in (137, 100, 5)]
    cases["b3_pad137"] = dict(input_ids=np.stack([r[0] for r in rows]), bbox=np.stack([r[1] for r in rows]),
                              attention_mask=np.stack([r[2] for r in rows]), pixel_values=pixels(3))
    # 3) Pad ids inside the sequence (shift embedding positions, trap 1), token types, int32 inputs; no image
    #    (transformers' text-only forward).
    ids, box, mask = seq(40, 48, boundary_boxes)
    ids[[5, 6, 20]] = 1
    tt = np.zeros(48, np.int64)
    tt[10:30] = 1
    cases["b1_pad_inside"] = dict(input_ids=ids[None].astype(np.int32), bbox=box[None].astype(np.int32),
                                  attention_mask=mask[None].astype(np.int32), token_type_ids=tt[None])
    # 4) Box edge cases: all-zero, full-page, zero-width/height boxes, coordinates 0 and 1000.
    ids, box, mask = seq(64, 64, random_boxes)
    edge = np.array([[0, 0, 0, 0], [0, 0, 1000, 1000], [1000, 1000, 1000, 1000], [500, 500, 500, 500],
                     [0, 1000, 0, 1000], [1000, 0, 1000, 0], [16, 0, 16, 32], [0, 0, 256, 256]])
    box[1:1 + len(edge)] = edge
    cases["b1_box_edges"] = dict(input_ids=ids[None], bbox=box[None], attention_mask=mask[None],
                                 pixel_values=pixels(1))
    return cases


def inputs_for(model_name, case):
    """Which inputs a model takes: text-only models no pixels, image-only models only pixels."""
    _, overrides, _, _ = MODELS[model_name]
    if overrides.get("visual_embed") is False:
        return {k: v for k, v in case.items() if k != "pixel_values"}
    if overrides.get("text_embed") is False:
        return {"pixel_values": case["pixel_values"]} if "pixel_values" in case else None
    return dict(case)


def reference_outputs(model, inputs):
    t = {k: torch.from_numpy(np.asarray(v)).long() if k != "pixel_values" else torch.from_numpy(v.astype(np.float32))
         for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**t)
    if isinstance(model, LayoutLMv3ForQuestionAnswering):
        return {"start_logits": out.start_logits, "end_logits": out.end_logits}
    if isinstance(model, LayoutLMv3Model):
        return {"last_hidden_state": out.last_hidden_state}
    return {"logits": out.logits, "labels": out.logits.argmax(-1).to(torch.int32)}


def dump_buckets(out_dir, device):
    enc = transformers.models.layoutlmv3.modeling_layoutlmv3.LayoutLMv3Encoder
    rel = torch.arange(-1100, 1101, device=device)
    tables = {
        "rel": rel.cpu().to(torch.int32),
        "buckets_1d": enc.relative_position_bucket(None, rel, num_buckets=32, max_distance=128).cpu().to(torch.int32),
        "buckets_2d": enc.relative_position_bucket(None, rel, num_buckets=64, max_distance=256).cpu().to(torch.int32),
    }
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"buckets_torch_{device}.safetensors")
    save_file({k: v.contiguous() for k, v in tables.items()}, path,
              metadata={"torch": torch.__version__, "transformers": transformers.__version__, "device": device,
                        "gpu": torch.cuda.get_device_name() if device == "cuda" else ""})
    print("wrote", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="fixtures directory (tests/fixtures)")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--buckets-only", action="store_true", help="only dump relative-position bucket tables")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    dump_buckets(os.path.join(args.out, "rel_pos"), "cpu")
    if torch.cuda.is_available():
        dump_buckets(os.path.join(args.out, "rel_pos"), "cuda")
    if args.buckets_only:
        return

    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    cases = make_cases(rng)
    for sub in ("models", "inputs", "expected"):
        shutil.rmtree(os.path.join(args.out, sub), ignore_errors=True)
    for name, case in cases.items():
        d = os.path.join(args.out, "inputs", name)
        os.makedirs(d)
        for k, v in case.items():
            np.save(os.path.join(d, k + ".npy"), v)

    manifest = {"generator": "python/make_fixtures.py", "seed": args.seed, "torch": torch.__version__,
                "transformers": transformers.__version__, "models": {}, "cases": sorted(cases)}
    for name, (cls, overrides, dtype, shard) in MODELS.items():
        cfg = LayoutLMv3Config(**{**COMMON, **overrides})
        model = cls(cfg).eval()
        randomize(model, gen)
        mdir = os.path.join(args.out, "models", name)
        model.to(dtype).save_pretrained(mdir, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
        # The reference: the saved checkpoint loaded back in float32, as a user would.
        ref = cls.from_pretrained(mdir, dtype=torch.float32).eval()
        pairs = []
        for cname, case in cases.items():
            inputs = inputs_for(name, case)
            if inputs is None:
                continue
            outs = reference_outputs(ref, inputs)
            edir = os.path.join(args.out, "expected", name)
            os.makedirs(edir, exist_ok=True)
            save_file({k: v.contiguous() for k, v in outs.items()}, os.path.join(edir, cname + ".safetensors"))
            pairs.append({"case": cname, "inputs": sorted(inputs)})
            # A visual model also runs text-only (no pixel_values): transformers' text-only forward.
            if "pixel_values" in inputs and "input_ids" in inputs and cname == "b3_pad137":
                text_only = {k: v for k, v in inputs.items() if k != "pixel_values"}
                outs = reference_outputs(ref, text_only)
                save_file({k: v.contiguous() for k, v in outs.items()},
                          os.path.join(edir, cname + "_text_only.safetensors"))
                pairs.append({"case": cname, "inputs": sorted(text_only), "expected": cname + "_text_only"})
        manifest["models"][name] = {"class": cls.__name__, "storage": str(dtype).replace("torch.", ""),
                                    "sharded": bool(shard), "runs": pairs}
        print("model", name, "done")
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
