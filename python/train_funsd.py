#!/usr/bin/env python3
"""Fine-tunes LayoutLMv3ForTokenClassification on FUNSD (entity labelling: O, B/I-HEADER, B/I-QUESTION, B/I-ANSWER)
and evaluates it on the test split with transformers (seqeval entity F1), so that `layoutrt eval` can be checked
against it.

    python3 python/train_funsd.py --data FUNSD_DIR --vocab ROBERTA_DIR --out ckpt/funsd [--epochs 40]
    python3 python/train_funsd.py --data FUNSD_DIR --vocab ROBERTA_DIR --out /tmp/t --device cpu --tiny --epochs 1 --max-docs 4

NO PRETRAINED WEIGHTS: this project's machines cannot download microsoft/layoutlmv3-base, so the model is the base
architecture (12 layers, hidden 768; --tiny: 2 layers, hidden 64) with RANDOM initialisation. Its F1 is far below
the published ~90 (pretraining matters); the checkpoint serves to check layoutrt against transformers on real data.

The data is FUNSD's training_data/ and testing_data/ (annotations/*.json + images/*.png), preprocessed as the common
FUNSD script does (python/pipeline_ref.py). Inputs come from LayoutLMv3Processor with the slow PIL image processor
(the one layoutrt reproduces bit for bit), truncation=True, max_length=512 — the evaluation therefore scores only the
words inside the first 512 tokens, as `layoutrt eval --truncate` does.

Writes to --out: model.safetensors + config.json (save_pretrained), vocab.json + merges.txt (so `layoutrt build`
plans find their tokenizer), eval_transformers.json (seqeval report, fp32 inference) and train_log.json.
Training: AdamW, linear warmup/decay, batch 8, fp16 autocast with a grad scaler on CUDA (about 20 s of an H100 at
40 epochs of 149 pages; the preprocessing of 199 pages takes longer than that).
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_ref as ref  # noqa: E402


def encode_split(proc, data, split, max_docs):
    paths = ref.annotation_paths(data, split)
    if max_docs:
        paths = paths[:max_docs]
    feats = []
    for p in paths:
        words, _, norm, labels, image, _ = ref.load_funsd(p)
        e = proc(image, words, boxes=norm, word_labels=[ref.LABELS.index(x) for x in labels], truncation=True,
                 max_length=512, padding="max_length", return_tensors="pt")
        feats.append({k: v[0] for k, v in e.items()})
    batch = {k: torch.stack([f[k] for f in feats]) for k in feats[0]}
    return paths, batch


def seqeval_report(y_true, y_pred):
    try:
        from seqeval.metrics import accuracy_score, classification_report
        rep = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
        rep = {k: {m: float(v) for m, v in d.items()} for k, d in rep.items()}
        return {"metric": "seqeval", "accuracy": accuracy_score(y_true, y_pred), "report": rep,
                "f1": rep["micro avg"]["f1-score"]}
    except ImportError:
        pass
    # Fallback for machines without seqeval (it needs scikit-learn): seqeval's default chunking and micro scores,
    # the same rules src/pipeline/postprocess.cpp implements and tests against seqeval.
    def entities(seqs):
        flat = [x for s in seqs for x in s + ["O"]] + ["O"]
        out, prev_tag, prev_type, begin = set(), "O", "", 0
        for i, c in enumerate(flat):
            tag, typ = c[0], (c[1:].split("-", 1)[-1] or "_")
            end = prev_tag in "ES" or (prev_tag in "BI" and tag in "BSO") or (prev_tag not in "O." and prev_type != typ)
            if end:
                out.add((prev_type, begin, i - 1))
            if tag in "BS" or (prev_tag in "ESO" and tag in "EI") or (tag not in "O." and prev_type != typ):
                begin = i
            prev_tag, prev_type = tag, typ
        return out
    t, p = entities(y_true), entities(y_pred)
    tp = len(t & p)
    prec, rec = (tp / len(p) if p else 0.0), (tp / len(t) if t else 0.0)
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    flat_t, flat_p = [x for s in y_true for x in s], [x for s in y_pred for x in s]
    return {"metric": "builtin conlleval (seqeval not installed)", "f1": f1, "precision": prec, "recall": rec,
            "accuracy": sum(a == b for a, b in zip(flat_t, flat_p)) / len(flat_t)}


@torch.no_grad()
def evaluate(model, batch, device, bs=8):
    model.eval()
    y_true, y_pred = [], []
    for i in range(0, batch["input_ids"].shape[0], bs):
        b = {k: v[i:i + bs].to(device) for k, v in batch.items() if k != "labels"}
        logits = model(**b).logits.float().cpu()  # fp32 inference, as layoutrt's FP32 plan
        pred = logits.argmax(-1)
        lab = batch["labels"][i:i + bs]
        for p, l in zip(pred, lab):
            m = l != -100
            y_true.append([ref.LABELS[x] for x in l[m].tolist()])
            y_pred.append([ref.LABELS[x] for x in p[m].tolist()])
    return seqeval_report(y_true, y_pred)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="FUNSD folder with training_data/ and testing_data/")
    ap.add_argument("--vocab", required=True, help="folder with roberta-base vocab.json + merges.txt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="2 layers, hidden 64 (smoke test)")
    ap.add_argument("--max-docs", type=int, default=0, help="first N documents of each split (0: all)")
    ap.add_argument("--seed", type=int, default=20261124)
    args = ap.parse_args()

    from transformers import LayoutLMv3Config, LayoutLMv3ForTokenClassification
    torch.manual_seed(args.seed)
    t0 = time.time()
    proc = ref.processor(args.vocab)
    _, train = encode_split(proc, args.data, "train", args.max_docs)
    test_paths, test = encode_split(proc, args.data, "test", args.max_docs)
    t_prep = time.time() - t0
    kw = dict(num_labels=len(ref.LABELS), id2label=dict(enumerate(ref.LABELS)),
              label2id={l: i for i, l in enumerate(ref.LABELS)}, vocab_size=50265,
              max_position_embeddings=514)  # as microsoft/layoutlmv3-base (the class default, 512, is too small)
    if args.tiny:
        kw.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                  coordinate_size=11, shape_size=10)
    config = LayoutLMv3Config(**kw)
    config.architectures = ["LayoutLMv3ForTokenClassification"]
    model = LayoutLMv3ForTokenClassification(config).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    n = train["input_ids"].shape[0]
    steps = args.epochs * ((n + args.batch - 1) // args.batch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    cuda = args.device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    log = []
    t1 = time.time()
    g = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, args.batch):
            idx = perm[i:i + args.batch]
            b = {k: v[idx].to(args.device) for k, v in train.items()}
            with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                loss = model(**b).loss
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            total += loss.item() * len(idx)
        log.append({"epoch": epoch + 1, "loss": total / n})
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / n:.4f} ({time.time() - t1:.1f}s)", flush=True)
    t_train = time.time() - t1
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(args.vocab, f), os.path.join(args.out, f))
    res = evaluate(model, test, args.device)
    res.update({"documents": len(test_paths), "mode": "truncation=True, max_length=512 (= layoutrt eval --truncate)",
                "device": args.device, "tiny": args.tiny, "epochs": args.epochs, "train_docs": n,
                "prep_s": t_prep, "train_s": t_train, "pretrained": False})
    import transformers
    res["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    with open(os.path.join(args.out, "eval_transformers.json"), "w") as f:
        json.dump(res, f, indent=2)
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=2)
    print(f"test entity F1 (seqeval, micro) {res['f1']:.4f}  accuracy {res['accuracy']:.4f}  "
          f"[{len(test_paths)} documents; prep {t_prep:.0f}s, train {t_train:.0f}s] -> {args.out}")


if __name__ == "__main__":
    main()
