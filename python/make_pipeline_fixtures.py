#!/usr/bin/env python3
"""Writes tests/fixtures/pipeline/: what the pipeline's CPU tests compare against.

    python3 python/make_pipeline_fixtures.py --data /work/data/funsd --vocab DIR [--out tests/fixtures/pipeline]

  tokenizer/{vocab.json,merges.txt}.gz   roberta-base's tokenizer files, gzip -9 (raw they would take 1.35 MB of the
                                         fixture budget; gzipped 0.54 MB; the tests gunzip them with zlib)
  funsd/training_data/{annotations,images}/   three small FUNSD pages, unchanged (full resolution, PNG)
  expected/<id>.json                     transformers' LayoutLMv3Processor (apply_ocr=False, slow PIL image
                                         processor) on that page: input_ids / bbox / labels with truncation=True,
                                         max_length=512, the untruncated input_ids, and pixel_values summary stats
  expected/<id>_resized.png              the page after PIL's bilinear resize to 224x224 (uint8 RGB); transformers'
                                         pixel_values equal (v/255 - 0.5)/0.5 of it exactly (asserted here)
  tokenizer_cases.json                   tricky words (Unicode letters/numbers/symbols, contractions, spaces, empty)
                                         and texts with transformers' ids
  seqeval_cases.json                     synthetic BIO sequences with seqeval's scores (classification_report dict,
                                         accuracy, get_entities)
"""
import argparse
import gzip
import json
import os
import random
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_ref as ref  # noqa: E402

DOCS = ["0060308251", "0013255595", "0060025670"]  # the three smallest FUNSD page PNGs (training split)

WORDS = ["Hello", "world:", "DATE", "°C", "foo bar", "", " lead", "  two", "don't", "it's", "WE'LL", "'re",
         "x'd", "1,234.50", "½", "Ⅻ", "naïve", "Ελληνικά", "日本語", "☐", "☑", "\uf702", "–", "tab\tin", "end ",
         "a\u00a0b", "emoji😀", "(555)", "#12-B", "$$$", "....", "e-mail", "über-größe", "x²", "١٢٣", "\u2003sp"]
TEXTS = ["Hello world", "  leading and  double  spaces ", "line\nbreak\n\n", "I'm 12'6\" tall", "a  \tb"]


def seqeval_cases():
    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.metrics.sequence_labeling import get_entities
    rng = random.Random(20261124)
    tags = ref.LABELS + ["B-OTHER", "I-OTHER"]
    cases = []
    hand = [
        ([["B-QUESTION", "I-QUESTION", "O", "B-ANSWER"]], [["B-QUESTION", "I-QUESTION", "O", "I-ANSWER"]]),
        ([["I-HEADER", "I-HEADER", "O", "I-ANSWER", "B-ANSWER"]], [["B-HEADER", "I-QUESTION", "I-QUESTION", "O", "O"]]),
        ([["O", "O"], ["B-ANSWER"]], [["O", "O"], ["O"]]),
        ([["B-ANSWER", "I-QUESTION", "B-QUESTION", "I-QUESTION"]], [["B-ANSWER", "I-ANSWER", "I-QUESTION", "I-QUESTION"]]),
    ]
    for t, p in hand:
        cases.append((t, p))
    for _ in range(16):
        y_true, y_pred = [], []
        for _ in range(rng.randint(1, 5)):
            n = rng.randint(0, 20)
            t = [rng.choice(tags) for _ in range(n)]
            p = [x if rng.random() < 0.7 else rng.choice(tags) for x in t]
            y_true.append(t)
            y_pred.append(p)
        cases.append((y_true, y_pred))
    out = []
    for t, p in cases:
        if sum(len(s) for s in t) == 0:
            continue
        rep = classification_report(t, p, output_dict=True, zero_division=0)
        flat = [x for s in t for x in s + ["O"]]
        out.append({"y_true": t, "y_pred": p, "accuracy": accuracy_score(t, p),
                    "report": {k: {m: float(v) for m, v in d.items()} for k, d in rep.items()},
                    "true_entities": [list(e) for e in get_entities(flat)]})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "pipeline"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    for sub in ("tokenizer", "funsd/training_data/annotations", "funsd/training_data/images", "expected"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        with open(os.path.join(args.vocab, name), "rb") as f, \
                open(os.path.join(out, "tokenizer", name + ".gz"), "wb") as g:
            g.write(gzip.compress(f.read(), compresslevel=9, mtime=0))

    from PIL import Image
    tok = ref.tokenizer(args.vocab)
    proc = ref.processor(args.vocab)
    for doc in DOCS:
        ann = os.path.join(ref.split_dir(args.data, "train"), "annotations", doc + ".json")
        words, _, norm, labels, image, image_path = ref.load_funsd(ann)
        shutil.copyfile(ann, os.path.join(out, "funsd/training_data/annotations", doc + ".json"))
        shutil.copyfile(image_path, os.path.join(out, "funsd/training_data/images", doc + ".png"))
        e = proc(image, words, boxes=norm, word_labels=[ref.LABELS.index(x) for x in labels],
                 truncation=True, max_length=512, return_tensors="np")
        full = tok(words, boxes=norm, truncation=False)
        resized = np.asarray(image.resize((224, 224), resample=Image.BILINEAR))
        px = e["pixel_values"][0]
        from_u8 = ((resized.astype(np.float64) / 255).astype(np.float32) - np.float32(0.5)) / np.float32(0.5)
        assert np.array_equal(px, from_u8.transpose(2, 0, 1)), "pixel_values are not (u8/255-0.5)/0.5 of PIL's resize"
        Image.fromarray(resized).save(os.path.join(out, "expected", doc + "_resized.png"))
        with open(os.path.join(out, "expected", doc + ".json"), "w") as f:
            json.dump({"id": doc, "width": image.size[0], "height": image.size[1], "num_words": len(words),
                       "words_bio": labels, "input_ids": e["input_ids"][0].tolist(), "bbox": e["bbox"][0].tolist(),
                       "labels": e["labels"][0].tolist(), "input_ids_untruncated": full["input_ids"],
                       "pixel_values": {"shape": list(px.shape), "sum": float(px.astype(np.float64).sum()),
                                        "min": float(px.min()), "max": float(px.max()),
                                        "row0_channel0": px[0, 0, :16].tolist()}}, f)
        print(doc, len(words), "words,", len(full["input_ids"]), "tokens")

    cases = {"words": [{"word": w, "ids": tok([w], boxes=[[0, 0, 0, 0]], add_special_tokens=False)["input_ids"]}
                       for w in WORDS],
             "texts": [{"text": t, "ids": tok.backend_tokenizer.encode(t, add_special_tokens=False).ids}
                       for t in TEXTS]}
    with open(os.path.join(out, "tokenizer_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out, "seqeval_cases.json"), "w") as f:
        json.dump(seqeval_cases(), f)
    import seqeval
    import transformers
    print("transformers", transformers.__version__, "seqeval", getattr(seqeval, "__version__", "?"))


if __name__ == "__main__":
    main()
