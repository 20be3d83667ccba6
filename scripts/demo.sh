#!/usr/bin/env bash
# The demo: build a plan from the embedded FUNSD-style token-classification checkpoint (a tiny random-weight
# LayoutLMv3 made by python/make_fixtures.py) and run it on a committed sample batch, printing the predicted labels.
# Runs on the GPU when there is one, else on the CPU backend.
set -euo pipefail
cd "$(dirname "$0")/.."
L=build/layoutrt
[ -x "$L" ] || bash scripts/setup.sh
mkdir -p build/demo
$L build --checkpoint tests/fixtures/models/token_cls --precision fp32 --max-batch 4 --output build/demo/token_cls.plan -q
$L inspect build/demo/token_cls.plan
echo
$L run --plan build/demo/token_cls.plan --inputs tests/fixtures/inputs/b3_pad137 \
       --output build/demo/outputs.safetensors --json > build/demo/summary.json
python3 - build/demo/summary.json <<'PY' 2>/dev/null || cat build/demo/summary.json
import json, sys, collections
s = json.load(open(sys.argv[1]))
print(f"ran on {s['device']} ({s['backend']}, {s['precision']}) in {s['latency_ms']:.1f} ms, mode {s['mode']}")
for b, seq in enumerate(s["predictions"]):
    counts = collections.Counter(seq)
    print(f"sequence {b}: {len(seq)} tokens: " + " ".join(seq[:12]) + (" ..." if len(seq) > 12 else ""))
    print("            label counts: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
PY
echo "outputs (logits, labels): build/demo/outputs.safetensors"
