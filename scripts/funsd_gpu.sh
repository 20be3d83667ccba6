#!/usr/bin/env bash
# FUNSD on the GPU machine: fine-tune a (random-init) LayoutLMv3 with transformers, then evaluate the same checkpoint
# with transformers and with `layoutrt eval` (fp32 and fp16 plans), and write one markdown table.
#   bash scripts/funsd_gpu.sh FUNSD_TAR_OR_DIR OUT_MD [EPOCHS]
# FUNSD_TAR_OR_DIR: .deps/funsd.tar from scripts/pack_funsd.sh (carried to the device), or an unpacked folder with
# training_data/, testing_data/ and roberta/ (vocab.json + merges.txt). Needs build/layoutrt (CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?FUNSD tar or folder}; out_md=${2:?output markdown}; epochs=${3:-40}
work=${FUNSD_WORK:-/tmp/layoutrt_funsd}
rm -rf "$work" && mkdir -p "$work"
if [ -f "$src" ]; then mkdir -p "$work/data" && tar -xf "$src" -C "$work/data" && data=$work/data; else data=$src; fi
t0=$(date +%s)
python3 python/train_funsd.py --data "$data" --vocab "$data/roberta" --out "$work/ckpt" --epochs "$epochs"
t1=$(date +%s)
for p in fp32 fp16; do
  build/layoutrt build --checkpoint "$work/ckpt" --precision $p --max-batch 8 --output "$work/$p.plan" -q
  build/layoutrt eval --plan "$work/$p.plan" --data "$data" --truncate --json "$work/eval_$p.json" --quiet
done
t2=$(date +%s)
python3 - "$work" "$out_md" "$epochs" $((t1 - t0)) $((t2 - t1)) <<'PY'
import json, sys, datetime, subprocess
work, out, epochs, train_s, eval_s = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ref = json.load(open(f"{work}/ckpt/eval_transformers.json"))
gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                     text=True).stdout.strip() or "?"
def f1(j):  # layoutrt eval JSON or transformers' report
    for k in ("micro", "overall"):
        if k in j and isinstance(j[k], dict) and "f1" in j[k]:
            return j[k]["f1"], j[k].get("precision"), j[k].get("recall")
    return j.get("f1"), j.get("precision"), j.get("recall")
rows = [("transformers fp32 (reference)", ref)] + [(f"layoutrt {p}", json.load(open(f"{work}/eval_{p}.json")))
                                                   for p in ("fp32", "fp16")]
ref_f1 = f1(ref)[0]
lines = [f"# FUNSD: transformers vs layoutrt on one fine-tuned checkpoint ({datetime.date.today()}, {gpu})", "",
         f"LayoutLMv3 base shapes, RANDOM init (no pretrained weights can be downloaded here), fine-tuned {epochs} "
         f"epochs on FUNSD's 149 training pages with python/train_funsd.py ({train_s} s incl. preprocessing); evaluated "
         f"on the 50 test pages, words within the first 512 tokens (transformers' truncation; `layoutrt eval "
         f"--truncate`), entity-level seqeval micro scores. layoutrt eval of both plans took {eval_s} s in all.", "",
         "| engine | precision | recall | F1 | ΔF1 vs transformers (points) |", "| --- | ---: | ---: | ---: | ---: |"]
for name, j in rows:
    f, p, r = f1(j)
    lines.append(f"| {name} | {p:.6f} | {r:.6f} | {f:.6f} | {100 * (f - ref_f1):+.3f} |")
lines += ["", "Command: `bash scripts/funsd_gpu.sh .deps/funsd.tar OUT.md " + epochs + "` (after a CUDA build; "
          "`scripts/pack_funsd.sh` makes the tar).", ""]
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
PY
