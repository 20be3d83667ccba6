#!/usr/bin/env python3
"""Parity of layoutrt's document pipeline with transformers' LayoutLMv3Processor (apply_ocr=False) on every FUNSD
document (train + test; not in CI: FUNSD is not in the repository).

    python3 python/check_pipeline_parity.py --data /work/data/funsd --vocab DIR --layoutrt build/layoutrt \\
        [--token-counts bench/funsd_test_token_counts.txt]

Checks per document:
  tokens   input_ids of the whole document (no truncation) and of the processor's truncation=True, max_length=512
  boxes    bbox of both, labels (first sub-token labelled, the rest -100) of the truncated encoding
  pixels   pixel_values [3,224,224]: max |C++ - transformers| against the slow PIL image processor and the fast
           torchvision one, for the FUNSD PNG and for the same page re-encoded as JPEG (quality 90; each side decodes
           the JPEG itself: stb_image in C++, libjpeg through PIL in python)
Exit status 1 when tokens, boxes or labels differ anywhere or PNG pixels exceed 1/255.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_ref as ref  # noqa: E402


def run_encode(cli, vocab, docs, extra, pixels_dir=None):
    out = []
    for k in range(0, len(docs), 50):
        cmd = [cli, "encode", "--tokenizer", vocab] + extra
        for d in docs[k:k + 50]:
            cmd += ["--document", d]
        if pixels_dir:
            cmd += ["--pixel-values", pixels_dir]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} ...: exit {res.returncode}\n{res.stderr}")
        out += [json.loads(line) for line in res.stdout.splitlines()]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="FUNSD folder (training_data/ and testing_data/)")
    ap.add_argument("--vocab", required=True, help="folder with roberta-base vocab.json + merges.txt")
    ap.add_argument("--layoutrt", required=True, help="the layoutrt CLI")
    ap.add_argument("--token-counts", help="write the test split's untruncated token counts (with specials) here")
    ap.add_argument("--json", help="write the numbers as JSON here")
    ap.add_argument("--limit", type=int, default=0, help="first N documents per split (0: all)")
    args = ap.parse_args()

    from PIL import Image
    tok = ref.tokenizer(args.vocab)
    proc_slow = ref.processor(args.vocab)
    slow_ip, fast_ip = ref.image_processors()
    docs = []
    for split in ("train", "test"):
        paths = ref.annotation_paths(args.data, split)
        docs += [(split, p) for p in (paths[: args.limit] if args.limit else paths)]
    paths = [p for _, p in docs]
    tmp = tempfile.mkdtemp(prefix="layoutrt_parity_")
    png_px, jpg_px = os.path.join(tmp, "png"), os.path.join(tmp, "jpg")
    os.makedirs(png_px), os.makedirs(jpg_px)
    full = run_encode(args.layoutrt, args.vocab, paths, ["--full"])
    trunc = run_encode(args.layoutrt, args.vocab, paths, ["--max-length", "512"], pixels_dir=png_px)
    # JPEG copies of the pages, as OCR JSON documents pointing at them.
    jpg_docs = []
    for _, p in docs:
        words, boxes, _, _, image, _ = ref.load_funsd(p)
        stem = os.path.splitext(os.path.basename(p))[0]
        jpg = os.path.join(tmp, stem + ".jpg")
        image.save(jpg, quality=90)
        jd = os.path.join(tmp, stem + ".json")
        with open(jd, "w") as f:
            json.dump({"image": jpg, "width": image.size[0], "height": image.size[1],
                       "words": [{"text": w, "box": b} for w, b in zip(words, boxes)]}, f)
        jpg_docs.append(jd)
    run_encode(args.layoutrt, args.vocab, jpg_docs, [], pixels_dir=jpg_px)

    n = len(docs)
    tok_full_ok = tok_trunc_ok = box_ok = label_ok = 0
    truncated_docs = 0
    worst = {"png_slow": 0.0, "png_fast": 0.0, "jpg_slow": 0.0, "jpg_fast": 0.0, "slow_vs_fast_png": 0.0}
    png_exact = 0
    failures = []
    counts = []
    for i, (split, p) in enumerate(docs):
        words, _, norm, labels, image, _ = ref.load_funsd(p)
        stem = os.path.splitext(os.path.basename(p))[0]
        f = tok(words, boxes=norm, truncation=False)
        e = proc_slow(image, words, boxes=norm, word_labels=[ref.LABELS.index(x) for x in labels],
                      truncation=True, max_length=512, return_tensors="np")
        c_full, c_tr = full[i], trunc[i]
        assert c_full["id"] == stem and c_tr["id"] == stem
        if split == "test":
            counts.append(len(f["input_ids"]))
        truncated_docs += len(f["input_ids"]) > 512
        ok_full = c_full["input_ids"][0] == f["input_ids"] and c_full["bbox"][0] == f["bbox"]
        ok_ids = c_tr["input_ids"][0] == e["input_ids"][0].tolist()
        ok_box = c_tr["bbox"][0] == e["bbox"][0].tolist() and c_full["bbox"][0] == f["bbox"]
        ok_lab = c_tr["labels"][0] == e["labels"][0].tolist()
        tok_full_ok += c_full["input_ids"][0] == f["input_ids"]
        tok_trunc_ok += ok_ids
        box_ok += ok_box
        label_ok += ok_lab
        if not (ok_full and ok_ids and ok_box and ok_lab):
            failures.append(stem)
        ref_slow = e["pixel_values"][0]
        ref_fast = np.asarray(fast_ip(image, return_tensors="np")["pixel_values"][0])
        c_png = np.load(os.path.join(png_px, stem + ".npy"))
        d = float(np.abs(c_png - ref_slow).max())
        png_exact += d == 0.0
        worst["png_slow"] = max(worst["png_slow"], d)
        worst["png_fast"] = max(worst["png_fast"], float(np.abs(c_png - ref_fast).max()))
        worst["slow_vs_fast_png"] = max(worst["slow_vs_fast_png"], float(np.abs(ref_slow - ref_fast).max()))
        jimg = Image.open(os.path.join(tmp, stem + ".jpg")).convert("RGB")
        c_jpg = np.load(os.path.join(jpg_px, stem + ".npy"))
        worst["jpg_slow"] = max(worst["jpg_slow"],
                                float(np.abs(c_jpg - slow_ip(jimg, return_tensors="np")["pixel_values"][0]).max()))
        worst["jpg_fast"] = max(worst["jpg_fast"],
                                float(np.abs(c_jpg - np.asarray(fast_ip(jimg, return_tensors="np")["pixel_values"][0])).max()))
        print(f"\r{i + 1}/{n} {stem}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    step = 2.0 / 255.0  # one uint8 level after rescale 1/255 and std 0.5
    res = {"documents": n, "tokens_exact_untruncated": tok_full_ok, "tokens_exact_truncated512": tok_trunc_ok,
           "boxes_exact": box_ok, "labels_exact": label_ok, "documents_over_512_tokens": truncated_docs,
           "pixels_png_exact_docs": png_exact,
           "pixels_max_abs": worst, "pixels_max_abs_in_uint8_levels": {k: v / step for k, v in worst.items()},
           "failures": failures}
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    if args.token_counts:
        with open(args.token_counts, "w") as f:
            f.write("".join(f"{c}\n" for c in counts))
    bad = failures or worst["png_slow"] > 1.0 / 255.0
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
