#!/usr/bin/env bash
# The one script for the GPU machine: build with CUDA, run the tests, dump torch's CUDA bucket tables, check parity
# against transformers for every precision, benchmark layoutrt against PyTorch, and summarize in $OUT/results.md.
#
#   OUT=/some/dir bash scripts/gpu_check.sh          # full run, about 9 minutes on an H100
#   GPU_CHECK_QUICK=1 bash scripts/gpu_check.sh      # short: batches 1,8; 20 iterations; no torch.compile
#   GPU_CHECK_STEPS=parity,bench bash scripts/gpu_check.sh   # some steps (build outputs from an earlier call reused)
#
# Steps (GPU_CHECK_STEPS, comma separated; default all but profile and ab), in this order: build, buckets, ctest (the
# gpu-labelled tests), parity, bench, baseline, cputest (the CPU tests on this host);
# profile (per-kernel ncu table, bias-lookup cost), ab (run-time switches timed side by side: GPU_CHECK_AB, see
# step_ab) and trace (the attention kernel's phase trace: a second build with -DLAYOUTRT_ATTENTION_TRACE=ON in
# GPU_CHECK_TRACE_DIR, default build-trace; its test, then bench --attention-trace at GPU_CHECK_TRACE_BATCHES, default
# 1,2, summarised by scripts/attention_trace.py into $OUT/attention_trace.md) and timeline (every kernel's start and
# end in one fp16 forward through CUPTI, bench --kernel-trace at GPU_CHECK_TIMELINE_BATCHES, default 1,8:
# $OUT/timeline.md and $OUT/timeline_b1.svg) run only when named. Each logs to
# $OUT/<step>.log under a time limit; a failing step does not stop the others; results.md and the summary (exit codes,
# seconds) are always written. GPU_CHECK_BUDGET_S (default 720) caps the whole run: a step gets at most what is left
# (less a reserve for the summary) and is skipped when too little is left. Large files (checkpoint, plans, inputs) go
# to GPU_CHECK_WORK (default build/gpu_check), never to $OUT. When $OUT would hold more than 8 files the step logs are
# packed into $OUT/logs.tar.gz (GPU_CHECK_PACK_LOGS=0|1 forces). Exit status: 0 when every step that ran passed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export ROOT
export OUT=${OUT:-$ROOT/gpu_check_out}
export WORK=${GPU_CHECK_WORK:-$ROOT/build/gpu_check}
export BUILD_DIR=${GPU_CHECK_BUILD_DIR:-$ROOT/build}
export L=$BUILD_DIR/layoutrt
STEPS=${GPU_CHECK_STEPS:-build,buckets,ctest,parity,bench,baseline,cputest}
BUDGET=${GPU_CHECK_BUDGET_S:-720}
RESERVE=25
export QUICK=${GPU_CHECK_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  export BATCHES=1,8 PARITY_BATCHES=1,8 ITERS=20 WARMUP=3 TORCH_MODES=eager-fp32,eager-fp16
else
  export BATCHES=1,2,4,8,16,32 PARITY_BATCHES=1,3,8,32 ITERS=30 WARMUP=5 TORCH_MODES=eager-fp32,eager-fp16,compile-fp16
fi
# Overrides for a narrower or different comparison (e.g. torch.compile max-autotune at B = 32 beside the bench:
# GPU_CHECK_STEPS=build,bench,baseline GPU_CHECK_BATCHES=32 GPU_CHECK_TORCH_MODES=compile-fp16
# GPU_CHECK_COMPILE_MODE=max-autotune GPU_CHECK_COMPILE_BUDGET_S=400 GPU_CHECK_PLANS=fp16): the batches of bench and
# baseline, torch's modes, its torch.compile mode (default reduce-overhead) and compile-time budget (default 110 s;
# the baseline step's time limit grows with it), the bench step's plans (default fp32 fp16 fp16-f32res bf16).
export BATCHES=${GPU_CHECK_BATCHES:-$BATCHES} TORCH_MODES=${GPU_CHECK_TORCH_MODES:-$TORCH_MODES}
export PLANS=${GPU_CHECK_PLANS:-fp32 fp16 fp16-f32res bf16}
export COMPILE_MODE=${GPU_CHECK_COMPILE_MODE:-reduce-overhead} COMPILE_BUDGET_S=${GPU_CHECK_COMPILE_BUDGET_S:-110}
# Dry runs off the GPU machine: GPU_CHECK_BACKEND=cpu (layoutrt --backend cpu, torch on the CPU) and GPU_CHECK_TINY=1
# (fixture-sized model instead of the base shapes).
export BACKEND=${GPU_CHECK_BACKEND:-cuda}
if [ "$BACKEND" = cuda ]; then export TORCH_DEVICE=cuda; else export TORCH_DEVICE=cpu; fi
if [ "${GPU_CHECK_TINY:-0}" = 1 ]; then export TINY=--tiny; else export TINY=; fi
# Per (precision or mode, batch): stop timing after this many seconds (B=32 fp32 is slow).
export MAX_SECONDS=${GPU_CHECK_MAX_SECONDS:-6}
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
mkdir -p "$OUT" "$WORK"
: > "$WORK/commands.txt"
T0=$(date +%s)

# Logs a command to commands.txt (for results.md) and runs it.
x() {
  echo "$*" >> "$WORK/commands.txt"
  echo "+ $*"
  "$@"
}
export -f x

step_system() {
  date -u
  nvidia-smi || echo "nvidia-smi failed"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader > "$WORK/gpu.csv" 2>/dev/null
  nvcc --version | tail -2
  cmake --version | head -1
  ninja --version
  python3 -c "import torch, transformers, safetensors, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'| transformers', transformers.__version__, '| safetensors', safetensors.__version__, '| numpy', numpy.__version__)"
  nproc
  git -C "$ROOT" log --oneline -1 2>/dev/null || true
  # What actually ran: a runner may copy the working tree beside an older .git (the device tool does), so the line
  # above can name an earlier commit. This digest of the files the build and the checks read is the same on any
  # checkout with the same sources (run these lines there to compare).
  echo "sources sha256: $(cd "$ROOT" && find CMakeLists.txt src include tests python scripts bench -type f \
    -not -path "bench/results/*" -not -path "*/__pycache__/*" 2>/dev/null | LC_ALL=C sort | xargs sha256sum |
    sha256sum | cut -c1-16)"
}

# The random-weight checkpoint the bench / profile / ab steps time (the parity step's, written here when it did not run).
ensure_ckpt() {
  [ -f "$WORK/parity/ckpt/config.json" ] || x python3 python/parity_hf.py --out "$WORK/parity" --ckpt-only $TINY
}

step_build() {
  # -Xptxas=-v: registers / stack / spills of every kernel; the full log stays in $WORK, build.log keeps a digest.
  x cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DLAYOUTRT_CUDA=ON "-DCMAKE_CUDA_FLAGS=-Xptxas=-v" || return $?
  x ninja -C "$BUILD_DIR" -j"$(nproc)" > "$WORK/build_full.log" 2>&1
  local rc=$?
  echo "--- ninja (rc $rc): everything but ptxas info lines"
  grep -v -E "^ptxas info|bytes stack frame|^\[[0-9]+/[0-9]+\]" "$WORK/build_full.log" | head -200
  echo "--- ptxas resource usage per kernel (sm_90): registers | stack/spills"
  awk '/Compiling entry function/ { match($0, /function .[^'"'"']*/); fn = substr($0, RSTART + 10, RLENGTH - 10) }
       /bytes stack frame/ { spill = $0; gsub(/^ +/, "", spill) }
       /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); print fn " | " substr($0, RSTART, RLENGTH) " | " spill }' \
    "$WORK/build_full.log" | (command -v c++filt >/dev/null && c++filt || cat) | sort -u | cut -c1-300 \
    > "$WORK/ptxas.txt"
  head -400 "$WORK/ptxas.txt"
  echo "--- kernels that spill (or use a stack frame)"
  grep -v -E "\| 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads$" "$WORK/ptxas.txt" || echo "(none)"
  return $rc
}

step_buckets() {
  # torch's CUDA bucket tables (tests/fixtures/rel_pos/buckets_torch_cuda.safetensors, to commit); copied into this
  # tree so that ctest's RelPos.MatchesTorchCudaForEveryDistance runs against them.
  x python3 python/make_fixtures.py --out "$WORK/fixtures" --buckets-only || return $?
  local f="$WORK/fixtures/rel_pos/buckets_torch_cuda.safetensors"
  [ -f "$f" ] || { echo "no $f (torch sees no CUDA device?)"; return 1; }
  cp "$f" "$OUT/" && cp "$f" "$ROOT/tests/fixtures/rel_pos/"
  python3 - "$WORK/fixtures/rel_pos" <<'PY'
import sys
from safetensors.torch import load_file
d = sys.argv[1]
cpu, cuda = load_file(d + "/buckets_torch_cpu.safetensors"), load_file(d + "/buckets_torch_cuda.safetensors")
for k in ("buckets_1d", "buckets_2d"):
    diff = (cpu[k] != cuda[k]).nonzero().flatten()
    print(f"{k}: torch CPU and CUDA differ at {len(diff)} distances" +
          (": rel " + ", ".join(str(int(cpu['rel'][i])) for i in diff[:20]) if len(diff) else ""))
PY
}

step_ctest() {
  # --no-tests=error: a build without the CUDA backend has no gpu tests, and that must not pass as green. Four at a
  # time: each test is its own process (CUDA context start-up dominates) and none asserts a timing.
  x ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure --timeout 120 --no-tests=error -j4
}
step_cputest() {
  # The CPU tests (CI runs them too) on this host's CPU, after the speed steps so a tight budget cuts them first. Less
  # the dry run of this script's own ab step (CI runs it on the CPU machine; here it would rebuild the binary that the
  # later steps time). One OpenBLAS thread per test: nproc tests each starting nproc spinning BLAS threads
  # oversubscribed the host until a test hit the timeout (LastLayer.HeadRowsOnlyMatchEveryRow, 120 s, 2026-12-02).
  x env OPENBLAS_NUM_THREADS=1 ctest --test-dir "$BUILD_DIR" -LE gpu -E '^GpuCheck\.' --output-on-failure \
    -j"$(nproc)" --timeout 120
}

step_parity() {
  x python3 python/parity_hf.py --out "$WORK/parity" --layoutrt "$L" --batches "$PARITY_BATCHES" \
    --precisions fp32,tf32,fp16,bf16,mixed,fp16:f32-residual,bf16:f32-residual --device "$TORCH_DEVICE" --backend "$BACKEND" $TINY
  local rc=$?
  cat "$WORK/parity/layoutrt_commands.log" 2>/dev/null | grep -E "rc [1-9]" -A3 | head -40
  return $rc
}

# The 32 FUNSD-length documents (the test split's token counts) at B = 32 on plan $1, padded to 512 then packed, each
# run's JSON to $2.json / $2_packed.json; further arguments go to both bench commands, BENCH_ENV (VAR=value ...) to
# their environment.
bench_funsd() {
  local plan=$1 json=$2 mode rc=0 pre=()
  shift 2
  # shellcheck disable=SC2206  # the assignments, split on spaces
  [ -n "${BENCH_ENV:-}" ] && pre=(env $BENCH_ENV)
  for mode in "" --pack; do
    # shellcheck disable=SC2086  # $mode: empty or --pack
    x "${pre[@]}" "${BENCH_BIN:-$L}" bench --plan "$plan" --backend "$BACKEND" --batch 32 --text-tokens 512 --warmup "$WARMUP" --iters "$ITERS" \
      --max-seconds "$MAX_SECONDS" --lengths bench/funsd_test_token_counts.txt $mode \
      --json "$json${mode:+_packed}.json" "$@" || rc=1
  done
  return $rc
}
export -f bench_funsd

step_bench() {
  local ckpt="$WORK/parity/ckpt" rc=0
  ensure_ckpt || return $?
  rm -f "$WORK/speed_layoutrt.md"
  # fp16-f32res: fp16 with the FP32 residual stream (--residual f32), what it costs.
  for p in $PLANS; do
    local prec=${p%-f32res} residual=native
    [ "$p" != "$prec" ] && residual=f32
    x "$L" build --checkpoint "$ckpt" --precision $prec --residual $residual --max-batch 32 --output "$WORK/bench_$p.plan" \
      -q || { rc=1; continue; }
    x "$L" bench --plan "$WORK/bench_$p.plan" --backend "$BACKEND" --batch "$BATCHES" --text-tokens 512 --warmup "$WARMUP" \
      --iters "$ITERS" --max-seconds "$MAX_SECONDS" --json "$WORK/bench_$p.json" --markdown "$WORK/speed_layoutrt.md" \
      --stages || rc=1
    if [ $p = fp16 ]; then  # padded to 512 vs packed
      bench_funsd "$WORK/bench_$p.plan" "$WORK/bench_funsd" --markdown "$WORK/speed_funsd.md" --stages || rc=1
    fi
    rm -f "$WORK/bench_$p.plan"
  done
  return $rc
}

step_baseline() {
  rm -f "$WORK/speed_torch.md"
  x python3 python/torch_baseline.py --batches "$BATCHES" --text-tokens 512 --modes "$TORCH_MODES" --warmup "$WARMUP" \
    --iters "$ITERS" --max-seconds "$MAX_SECONDS" --compile-mode "$COMPILE_MODE" --compile-budget-s "$COMPILE_BUDGET_S" \
    --json "$WORK/torch.json" \
    --markdown "$WORK/speed_torch.md" --device "$TORCH_DEVICE" $TINY
}
step_profile() {
  # Where the time goes (opt-in: GPU_CHECK_STEPS=...,profile): per-kernel device time of one fp16 forward at B=32 and
  # B=1 (ncu, graphs and GEMM tuning off so each launch is one kernel), then the attention stage with the biases
  # precomputed once per forward (cache, the default), looked up per score in every layer (lookup), and without biases
  # (the bound on what either costs).
  local ckpt="$WORK/parity/ckpt" rc=0
  ensure_ckpt || return $?
  x "$L" build --checkpoint "$ckpt" --precision fp16 --max-batch 32 --output "$WORK/prof_fp16.plan" -q || return $?
  local NCU
  NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  if [ -n "$NCU" ]; then
    for b in 32 1; do
      LAYOUTRT_CUDA_GRAPHS=0 LAYOUTRT_GEMM_TUNE=0 x "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv \
        --log-file "$WORK/ncu_b$b.csv" "$L" bench --plan "$WORK/prof_fp16.plan" --batch $b --text-tokens 512 \
        --warmup 0 --iters 1 -q > /dev/null || rc=1
      python3 python/profile_tools.py kernels "$WORK/ncu_b$b.csv" "$OUT/kernels_b$b.md" \
        --title "fp16, B=$b, T=512+197: per-kernel device time (ncu)" || rc=1
    done
  else
    echo "ncu not found: no per-kernel table"
  fi
  x python3 python/profile_tools.py strip-bias "$ckpt" "$WORK/ckpt_nobias" || return 1
  x "$L" build --checkpoint "$WORK/ckpt_nobias" --precision fp16 --max-batch 32 --output "$WORK/prof_nobias.plan" -q \
    || return 1
  for plan in prof_fp16 prof_nobias; do
    x "$L" bench --plan "$WORK/$plan.plan" --batch 1,8,32 --text-tokens 512 --warmup 3 --iters 20 --max-seconds 3 \
      --stages --json "$WORK/$plan.json" -q || rc=1
  done
  LAYOUTRT_ATTENTION_BIAS=lookup x "$L" bench --plan "$WORK/prof_fp16.plan" --batch 1,8,32 --text-tokens 512 \
    --warmup 3 --iters 20 --max-seconds 3 --stages --json "$WORK/prof_lookup.json" -q || rc=1
  LAYOUTRT_FUSED_GELU=0 x "$L" bench --plan "$WORK/prof_fp16.plan" --batch 1,8,32 --text-tokens 512 \
    --warmup 3 --iters 20 --max-seconds 3 --stages --json "$WORK/prof_unfused_gelu.json" -q || rc=1
  LAYOUTRT_SM90_GEMM=off x "$L" bench --plan "$WORK/prof_fp16.plan" --batch 1,8,32 --text-tokens 512 \
    --warmup 3 --iters 20 --max-seconds 3 --stages --json "$WORK/prof_sm90_off.json" -q || rc=1
  for shape in 4w 2w wg; do  # the kernel shapes that read the bias cache, forced (default: wg where available)
    LAYOUTRT_FLASH_SHAPE=$shape x "$L" bench --plan "$WORK/prof_fp16.plan" --batch 1,8,16,32 --text-tokens 512 \
      --warmup 3 --iters 20 --max-seconds 3 --stages --json "$WORK/prof_shape_$shape.json" -q || rc=1
  done
  python3 - "$WORK" "$OUT" <<'PY'
import json, sys
w, out = sys.argv[1], sys.argv[2]
rows = ["fp16, T=512 + 197 visual, compute ms (CUDA events). Attention stage = 12 layers' attention (+ the cache's one "
        "precompute kernel); bias share = (attention − attention without biases) / attention.\n",
        "| batch | attention ms: lookup | attention ms: cache | attention ms: no biases | bias share lookup | "
        "bias share cache | forward ms: lookup | forward ms: cache | forward ms: no biases | bias path taken (lookup run, "
        "cache run) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
load = lambda n: {r["batch"]: r for r in json.load(open(f"{w}/{n}.json"))["results"]}
c, l, n = load("prof_fp16"), load("prof_lookup"), load("prof_nobias")
for k in sorted(c):
    al, ac, an = (d[k]["stages_ms"]["attention"] for d in (l, c, n))
    rows.append(f"| {k} | {al:.3f} | {ac:.3f} | {an:.3f} | {100 * (al - an) / al:.0f}% | {100 * (ac - an) / ac:.0f}% | "
                f"{l[k]['median_ms']:.3f} | {c[k]['median_ms']:.3f} | {n[k]['median_ms']:.3f} | "
                f"{l[k].get('kernels', {}).get('attention_bias', '?')}, "
                f"{c[k].get('kernels', {}).get('attention_bias', '?')} |")
open(f"{out}/bias_cost.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
rows = ["fp16, T=512 + 197 visual, bias cache: attention stage ms (12 layers + the cache kernel) by the flash kernel's "
        "shape (LAYOUTRT_FLASH_SHAPE), compute ms of the forward in brackets.\n",
        "| batch | 4 warps x 1 strip, 64-key tiles | 2 warps x 2 strips, 32-key tiles | wgmma warpgroup (sm_90a; "
        "the auto choice where available) |", "| ---: | ---: | ---: | ---: |"]
s4, s2, sw = load("prof_shape_4w"), load("prof_shape_2w"), load("prof_shape_wg")
for k in sorted(s4):
    rows.append(f"| {k} | {s4[k]['stages_ms']['attention']:.3f} ({s4[k]['median_ms']:.3f}) | "
                f"{s2[k]['stages_ms']['attention']:.3f} ({s2[k]['median_ms']:.3f}) | "
                f"{sw[k]['stages_ms']['attention']:.3f} ({sw[k]['median_ms']:.3f}) |")
open(f"{out}/flash_shape.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
rows = ["fp16, T=512 + 197 visual: the FFN's first linear as cuBLASLt GEMM + bias/GELU pass (LAYOUTRT_FUSED_GELU=0) vs "
        "the Hopper CUTLASS GEMMs (bias + exact GELU in the epilogue; default where built). ms: FFN stage "
        "(forward compute).\n",
        "| batch | GEMM + GELU pass (LAYOUTRT_FUSED_GELU=0) | fused, untimed default configuration by M "
        "(LAYOUTRT_SM90_GEMM=off) | default (fused, configurations timed per shape) |",
        "| ---: | ---: | ---: | ---: |"]
u, pp = load("prof_unfused_gelu"), load("prof_sm90_off")
cell = lambda d, k: f"{d[k]['stages_ms']['ffn']:.3f} ({d[k]['median_ms']:.3f})"
for k in sorted(u):
    rows.append(f"| {k} | {cell(u, k)} | {cell(pp, k)} | {cell(c, k)} |")
open(f"{out}/fused_gelu.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
  rm -f "$WORK"/prof_*.plan
  return $rc
}
# Builds a second layoutrt with the files under $1 (at their repository paths) in place of the tree's, into $2. The
# tree's files are put back afterwards, also when the step is stopped (time limit) while the alternative is in place.
build_alt() {
  local alt=$1 dest=$2 f rc=0
  local files
  mapfile -t files < <(cd "$alt" && find . -type f | sed 's|^\./||')
  ((${#files[@]})) || { echo "build_alt: no files under $alt"; return 1; }
  for f in "${files[@]}"; do
    [ -f "$ROOT/$f" ] || { echo "build_alt: $f is not in the tree"; return 1; }
  done
  ALT_FILES=("${files[@]}")
  alt_backup() { echo "$WORK/alt_orig_${1//\//_}"; }  # where the tree's version of file $1 waits meanwhile
  restore_alt() {
    local g
    for g in "${ALT_FILES[@]}"; do
      [ -f "$(alt_backup "$g")" ] || continue
      mv "$(alt_backup "$g")" "$ROOT/$g" && touch "$ROOT/$g"
    done
  }
  trap 'restore_alt; exit 143' TERM INT
  for f in "${files[@]}"; do
    cp -p "$ROOT/$f" "$(alt_backup "$f")"
    cp "$alt/$f" "$ROOT/$f"
  done
  echo "build_alt: ${files[*]} from $alt"
  x ninja -C "$BUILD_DIR" layoutrt > "$WORK/build_alt.log" 2>&1 && cp "$L" "$dest" || { rc=1; tail -30 "$WORK/build_alt.log"; }
  restore_alt
  trap - TERM INT
  ninja -C "$BUILD_DIR" layoutrt > "$WORK/build_restore.log" 2>&1 || { rc=1; tail -30 "$WORK/build_restore.log"; }
  return $rc
}
export -f build_alt
step_ab() {
  # A/B timing of run-time switches (opt-in: GPU_CHECK_STEPS=...,ab), all in this one call: GPU_CHECK_AB is a
  # ';'-separated list of variants, each a space-separated list of VAR=value assignments (an empty one = the defaults),
  # each run on a plan built under the same assignments (GPU_CHECK_AB_PRECISION, default fp16; build-time switches
  # such as LAYOUTRT_GEMM_CANDIDATES apply) at GPU_CHECK_AB_BATCHES (default 1,8,32) with --stages and
  # GPU_CHECK_AB_ARGS added to the bench command (e.g. "--lengths bench/funsd_test_token_counts.txt --pack");
  # $OUT/ab.md tabulates median ms per variant and batch with the attention and FFN stages; GPU_CHECK_AB_FUNSD=1 adds
  # the 32 FUNSD-length documents padded and packed (B = 32) and their ratio per variant (documents 1-32: the first of
  # the distinct batches the runs alternate between; the median of the mixture is an order statistic at a cluster's
  # edge, not a batch's median).
  # Source A/B in the same call: GPU_CHECK_AB_ALT=<dir> holds files at their repository paths (e.g. the base version
  # of a kernel, `git show main:src/x.cu > ab_alt/src/x.cu`); a second `layoutrt` is built with them swapped in (only
  # the changed translation units recompile, then the originals are restored and rebuilt), and a variant containing
  # the word @alt runs that binary (e.g. GPU_CHECK_AB="; @alt").
  local ckpt="$WORK/parity/ckpt" rc=0 i=0 v bin
  ensure_ckpt || return $?
  if [ -n "${GPU_CHECK_AB_ALT:-}" ]; then
    build_alt "$GPU_CHECK_AB_ALT" "$WORK/layoutrt_alt" || return 1
  fi
  local variants
  IFS=';' read -r -a variants <<< "${GPU_CHECK_AB-; LAYOUTRT_FLASH_SPLIT=1; LAYOUTRT_FUSED_GELU=0}"
  ((${#variants[@]})) || variants=("")  # GPU_CHECK_AB="": the defaults alone
  rm -f "$WORK"/ab_*.json "$WORK/ab_variants.txt"
  for v in "${variants[@]}"; do
    v=$(echo "$v" | xargs)  # trimmed
    echo "$v" >> "$WORK/ab_variants.txt"
    bin=$L
    if [[ " $v " == *" @alt "* ]]; then bin=$WORK/layoutrt_alt; v=$(echo " $v " | sed 's/ @alt / /' | xargs); fi
    # The plan is built under the variant too: build-time switches (GEMM tuning) apply.
    # shellcheck disable=SC2086  # $v: the assignments, split on spaces
    x env $v "$bin" build --checkpoint "$ckpt" --precision "${GPU_CHECK_AB_PRECISION:-fp16}" --max-batch 32 \
      --output "$WORK/ab.plan" -q || { rc=1; i=$((i + 1)); continue; }
    # shellcheck disable=SC2086
    x env $v "$bin" bench --plan "$WORK/ab.plan" --backend "$BACKEND" --batch "${GPU_CHECK_AB_BATCHES:-1,8,32}" \
      --text-tokens 512 --warmup "$WARMUP" --iters "$ITERS" --max-seconds "$MAX_SECONDS" --stages \
      ${GPU_CHECK_AB_ARGS:-} --json "$WORK/ab_$i.json" -q || rc=1
    if [ "${GPU_CHECK_AB_FUNSD:-0}" = 1 ]; then  # + the 32 FUNSD-length documents padded and packed, B = 32
      BENCH_ENV=$v BENCH_BIN=$bin bench_funsd "$WORK/ab.plan" "$WORK/ab_${i}_funsd" -q || rc=1
    fi
    i=$((i + 1))
  done
  rm -f "$WORK/ab.plan"
  python3 - "$WORK" "$OUT" <<'PY' || rc=1
import json, sys
w, out = sys.argv[1], sys.argv[2]
variants = open(f"{w}/ab_variants.txt").read().split("\n")[:-1]
res = []
for i, v in enumerate(variants):
    try:
        res.append((v or "(defaults)", {r["batch"]: r for r in json.load(open(f"{w}/ab_{i}.json"))["results"]}))
    except (OSError, ValueError, KeyError):
        res.append((v or "(defaults)", {}))
batches = sorted({b for _, rows in res for b in rows})
def funsd(i, kind):  # the median of documents 1-32 (the first distinct batch), not of the runs' mixture
    try:
        r = json.load(open(f"{w}/ab_{i}_{kind}.json"))["results"][0]
        return (r.get("per_batch") or [r])[0]["median_ms"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
has_funsd = any(funsd(i, "funsd") for i in range(len(variants)))
lines = ["A/B of run-time switches, one call, each variant on a plan built under it: compute ms (median), in brackets "
         "the attention / FFN stage ms "
         "(one run with CUDA events between stages, graphs off)" +
         ("; FUNSD: documents 1-32 of bench/funsd_test_token_counts.txt padded to 512 / packed, B = 32 (the median of "
          "that batch's runs; the runs alternate with documents 33-50, 1-14)." if has_funsd
          else "."), "",
         "| variant | " + " | ".join(f"B = {b}" for b in batches) + (" | FUNSD padded | FUNSD packed | ratio |" if has_funsd
                                                                     else " |"),
         "| --- |" + " ---: |" * (len(batches) + (3 if has_funsd else 0))]
for i, (name, rows) in enumerate(res):
    cells = []
    for b in batches:
        r = rows.get(b)
        st = (r or {}).get("stages_ms", {})
        cells.append(f"{r['median_ms']:.3f} ({st.get('attention', 0):.3f} / {st.get('ffn', 0):.3f})" if r else "—")
    if has_funsd:
        pad, pk = funsd(i, "funsd"), funsd(i, "funsd_packed")
        cells += [f"{pad:.3f}" if pad else "—", f"{pk:.3f}" if pk else "—",
                  f"{pad / pk:.3f}x" if pad and pk else "—"]
    lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
open(f"{out}/ab.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
  return $rc
}
step_trace() {
  local dir=${GPU_CHECK_TRACE_DIR:-$ROOT/build-trace} rc=0
  ensure_ckpt || return $?
  x cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DLAYOUTRT_CUDA=ON \
    -DLAYOUTRT_ATTENTION_TRACE=ON > "$WORK/trace_cmake.log" 2>&1 || { tail -20 "$WORK/trace_cmake.log"; return 1; }
  x ninja -C "$dir" -j"$(nproc)" layoutrt layoutrt_gpu_tests > "$WORK/trace_build.log" 2>&1 ||
    { tail -30 "$WORK/trace_build.log"; return 1; }
  x "$dir/layoutrt_gpu_tests" --gtest_filter='FlashAttention.TraceRecordsPhases' || rc=1
  x "$dir/layoutrt" build --checkpoint "$WORK/parity/ckpt" --precision fp16 --max-batch 32 --output "$WORK/trace.plan" \
    -q || return 1
  rm -f "$WORK"/attention_trace.b*.csv
  x "$dir/layoutrt" bench --plan "$WORK/trace.plan" --batch "${GPU_CHECK_TRACE_BATCHES:-1,2}" --text-tokens 512 \
    --warmup "$WARMUP" --iters 1 --attention-trace "$WORK/attention_trace" -q || rc=1
  x python3 scripts/attention_trace.py "$WORK"/attention_trace.b*.csv > "$OUT/attention_trace.md" || rc=1
  cat "$OUT/attention_trace.md"
  rm -f "$WORK/trace.plan"
  return $rc
}
export -f step_trace
step_timeline() {
  # The device timeline of one fp16 forward per batch size (opt-in: GPU_CHECK_STEPS=...,timeline; CUPTI through bench
  # --kernel-trace, GPU_CHECK_TIMELINE_BATCHES, default 1,8): every kernel's start and end inside the CUDA graph,
  # summarised by scripts/kernel_trace.py into $OUT/timeline.md with the B = 1 picture $OUT/timeline_b1.svg. The
  # same plan is timed without the trace first, so the tracer's cost shows beside it.
  local rc=0 batches=${GPU_CHECK_TIMELINE_BATCHES:-1,8}
  ensure_ckpt || return $?
  x "$L" build --checkpoint "$WORK/parity/ckpt" --precision fp16 --max-batch 32 --output "$WORK/timeline.plan" -q ||
    return 1
  rm -f "$WORK"/timeline.b*.csv
  x "$L" bench --plan "$WORK/timeline.plan" --batch "$batches" --text-tokens 512 --warmup "$WARMUP" --iters "$ITERS" \
    -q || rc=1
  x "$L" bench --plan "$WORK/timeline.plan" --batch "$batches" --text-tokens 512 --warmup "$WARMUP" --iters "$ITERS" \
    --kernel-trace "$WORK/timeline" -q || rc=1
  local first=${batches%%,*}
  x python3 scripts/kernel_trace.py "$WORK"/timeline.b*.csv --svg "$OUT/timeline_b$first.svg" > "$OUT/timeline.md" ||
    rc=1
  cat "$OUT/timeline.md"
  tar czf "$OUT/timeline_csv.tar.gz" -C "$WORK" $(cd "$WORK" && ls timeline.b*.csv)  # the records, for a closer look
  rm -f "$WORK/timeline.plan"
  return $rc
}
export -f step_timeline
export -f ensure_ckpt step_system step_build step_buckets step_ctest step_cputest step_parity step_bench step_baseline step_profile step_ab

declare -A LIMIT=([system]=30 [build]=300 [buckets]=60 [ctest]=300 [parity]=240 [bench]=190 [baseline]=$((90 + COMPILE_BUDGET_S)) [cputest]=200 [profile]=240 [ab]=240)
LIMIT[trace]=300  # the attention phase trace: a second build, its test, bench
LIMIT[timeline]=120  # the device timeline: a plan, two benches
SUMMARY=()
FAILED=0
run_step() {
  local name=$1
  if [ "$name" != system ] && [[ ",$STEPS," != *",$name,"* ]]; then return; fi
  local now left limit start rc
  now=$(date +%s)
  left=$((BUDGET - (now - T0) - RESERVE))
  limit=${LIMIT[$name]}
  ((limit > left)) && limit=$left
  if ((limit < 20)); then
    SUMMARY+=("$(printf '| %-8s | skipped | - | budget of %ss spent |' "$name" "$BUDGET")")
    echo "== $name: skipped (budget spent)"
    return
  fi
  echo "== $name (limit ${limit}s, $((now - T0))s since start)"
  start=$(date +%s)
  timeout -k 10 "$limit" bash -c "step_$name" > "$OUT/$name.log" 2>&1
  rc=$?
  local secs=$(($(date +%s) - start)) note=""
  ((rc == 124 || rc == 137)) && note="timed out after ${limit}s"
  ((rc != 0)) && FAILED=1
  SUMMARY+=("$(printf '| %-8s | %s | %s | %s |' "$name" "$rc" "$secs" "$note")")
  echo "== $name: rc $rc in ${secs}s ${note}"
  tail -5 "$OUT/$name.log" | sed 's/^/   /'
}

for s in system build buckets ctest parity bench baseline cputest profile ab trace timeline; do run_step "$s"; done

# ---- results.md / results.json --------------------------------------------------------------------------------------
{
  echo "| step | rc | seconds | note |"
  echo "| --- | --- | ---: | --- |"
  printf '%s\n' "${SUMMARY[@]}"
} > "$WORK/summary.md"
python3 - "$OUT" "$WORK" <<'PY'
import glob, json, os, sys, datetime
out, work = sys.argv[1], sys.argv[2]
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except Exception:
        return None
def read(p, default=""):
    try:
        with open(p) as f:
            return f.read()
    except Exception:
        return default
gpu = read(os.path.join(work, "gpu.csv")).strip() or "unknown GPU"
lines = [f"# layoutrt GPU check, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}", "",
         f"GPU (name, driver, memory, compute capability): {gpu}", "", "## Steps", "", read(os.path.join(work, "summary.md")),
         "## Commands", "", "```", read(os.path.join(work, "commands.txt")).strip(), "```", ""]
lines += ["## Parity (layoutrt vs transformers fp32, TF32 off)", "",
          read(os.path.join(work, "parity", "parity.md"), "(parity step not run or failed: see parity.log)\n")]
bench = {p: load(os.path.join(work, f"bench_{p}.json")) for p in ("fp32", "fp16", "fp16-f32res", "bf16")}
torch_ = load(os.path.join(work, "torch.json"))
cols = [(f"layoutrt {p}", {r["batch"]: r for r in b["results"]}) for p, b in bench.items() if b]
if torch_:
    modes = []
    for r in torch_["results"]:
        if r["mode"] not in modes:
            modes.append(r["mode"])
    cols += [(f"torch {m}", {r["batch"]: r for r in torch_["results"] if r["mode"] == m and "median_ms" in r})
             for m in modes]
lines += ["## Speed: sequences/s (median latency ms), T = 512 text tokens + 197 visual", ""]
if cols:
    any_bench = next((b for b in bench.values() if b), None)
    if any_bench:
        lines.append(f"layoutrt: {any_bench['device']}, {any_bench['timing']}, {any_bench['gflop_per_seq']:.1f} GFLOP/seq; "
                     f"memory: see bench.log. layoutrt's times are compute times (the forward with its inputs on the "
                     f"GPU, as torch's are timed); end to end (validation + copies in and out) in the last column")
    if torch_:
        lines.append(f"torch {torch_['torch']}, transformers {torch_['transformers']}, attention {torch_['attn_implementation']}, "
                     f"compile mode {torch_['compile_mode']} (compile {torch_['compile_total_s']:.0f} s)")
    lines.append("")
    batches = sorted({b for _, rows in cols for b in rows})
    e2e = {r["batch"]: r for r in bench["fp16"]["results"]} if bench.get("fp16") else {}
    lines.append("| batch | " + " | ".join(c for c, _ in cols) + " | layoutrt fp16 end to end |")
    lines.append("| ---: | " + " | ".join("---:" for _ in cols) + " | ---: |")
    for b in batches:
        cells = []
        for _, rows in cols:
            r = rows.get(b)
            cells.append(f"{r['seq_per_s']:.1f} ({r['median_ms']:.2f} ms)" if r else "—")
        r = e2e.get(b)
        cells.append(f"{b / r['e2e_median_ms'] * 1e3:.1f} ({r['e2e_median_ms']:.2f} ms)" if r and "e2e_median_ms" in r else "—")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("TFLOP/s (model FLOPs):")
    lines.append("")
    lines.append("| batch | " + " | ".join(c for c, _ in cols) + " |")
    lines.append("| ---: | " + " | ".join("---:" for _ in cols) + " |")
    for b in batches:
        lines.append(f"| {b} | " + " | ".join(f"{rows[b]['tflops']:.1f}" if b in rows else "—" for _, rows in cols) + " |")
    lines.append("")
    funsd = read(os.path.join(work, "speed_funsd.md"))
    if funsd:
        lines += ["32 FUNSD-length documents (bench/funsd_test_token_counts.txt), fp16, padded to 512 vs packed:", "",
                  funsd]
        # The runs alternate between distinct batches of 32 (the list's 50 documents, cycled): per batch, the
        # padded and packed medians and their ratio.
        pad, pk = (load(os.path.join(work, f"bench_{n}.json")) for n in ("funsd", "funsd_packed"))
        pad_b = ((pad or {}).get("results") or [{}])[0].get("per_batch") or []
        pk_b = ((pk or {}).get("results") or [{}])[0].get("per_batch") or []
        if pad_b and len(pad_b) == len(pk_b):
            lines += ["Per distinct batch (the runs take them in turn; the medians above are nearest-rank medians of "
                      "the mixture):", "", "| batch | real text tokens | padded ms | packed ms | packed speed-up |",
                      "| ---: | ---: | ---: | ---: | ---: |"]
            for i, (a, b) in enumerate(zip(pad_b, pk_b)):
                lines.append(f"| {i} | {b['real_tokens']} | {a['median_ms']:.3f} | {b['median_ms']:.3f} | "
                             f"{a['median_ms'] / b['median_ms']:.3f}x |")
            lines.append("")
    stages = []
    for p in ("fp32", "fp16", "fp16-f32res", "bf16", "funsd", "funsd_packed"):
        j = load(os.path.join(work, f"bench_{p}.json"))
        for r in (j or {}).get("results", []):
            if r.get("stages_ms"):
                tot = sum(r["stages_ms"].values())
                stages.append(f"| {p} | {r['batch']} | " + " | ".join(
                    f"{r['stages_ms'].get(k, 0):.3f} ({100 * r['stages_ms'].get(k, 0) / tot:.0f}%)"
                    for k in ("embeddings", "qkv", "attention", "out_proj_ln", "ffn", "head")) + f" | {tot:.3f} |")
    if stages:
        lines += ["Per-stage device time (ms, one run with CUDA events between stages, graphs off):", "",
                  "| plan | batch | embeddings | qkv | attention | out_proj+LN | FFN | head | total |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"] + stages + [""]
    for name in ("speed_layoutrt.md", "speed_torch.md"):
        t = read(os.path.join(work, name))
        if t:
            lines += [f"Detail ({name}: p90/p99, memory):", "", t]
else:
    lines.append("(bench / baseline steps not run or failed)\n")
profile = [(t, read(os.path.join(out, t))) for t in ("bias_cost.md", "flash_shape.md", "fused_gelu.md", "kernels_b32.md",
                                                   "kernels_b1.md")]
ab = read(os.path.join(out, "ab.md"))
if ab:
    lines += ["## A/B of run-time switches (step ab)", "", ab]
if any(body for _, body in profile):
    lines += ["## Profile (step profile)", ""]
    for name, body in profile:
        if body:
            lines += [f"### {name}", "", body]
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(lines))
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({"gpu": gpu, "parity": load(os.path.join(work, "parity", "parity.json")), "bench": bench, "torch": torch_},
              f, indent=1)
print(f"wrote {out}/results.md and results.json")
PY
# Some runners bring back only a few files (the device tool: 8): then the step logs travel as one archive.
if [ "${GPU_CHECK_PACK_LOGS:-auto}" = 1 ] || { [ "${GPU_CHECK_PACK_LOGS:-auto}" = auto ] && (($(ls "$OUT" | wc -l) > 8)); }; then
  (cd "$OUT" && tar -czf logs.tar.gz ./*.log && rm -f ./*.log) && echo "step logs packed into $OUT/logs.tar.gz"
fi
echo
cat "$WORK/summary.md"
echo "total $(($(date +%s) - T0))s; logs and results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $FAILED
