#!/usr/bin/env bash
# Where the flash attention kernel's warps wait (GPU machine, after scripts/gpu_check.sh's build step): ncu's warp
# stall sampling of one attention launch (layer 4 of a forward, graphs off) at B = 1, B = 32 and the packed FUNSD batch,
# totals per stall reason and per SASS instruction. Writes $OUT/stalls.tgz (stall_<run>.txt: totals; sass_<run>.csv:
# ncu's source page, per instruction) and $OUT/stalls.md (the hottest instructions, python/profile_tools.py stalls) and
# prints both. ATTENTION_STALLS_SASS=0 skips the per-instruction pass. Another kernel: STALLS_KERNEL=<ncu name regex>
# (default flash_wgmma; its 16th launch is sampled), STALLS_RUNS=<names> (default "b1 b32 funsd_packed"), and
# STALLS_ENV="VAR=value ..." set for the plan build and the runs.
#   OUT=/some/dir bash scripts/attention_stalls.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
W=${GPU_CHECK_WORK:-build/gpu_check}
L=${GPU_CHECK_BUILD_DIR:-build}/layoutrt
mkdir -p "$OUT" "$W"
[ -f "$W/parity/ckpt/config.json" ] || python3 python/parity_hf.py --out "$W/parity" --ckpt-only > /dev/null
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
# shellcheck disable=SC2086  # the assignments, split on spaces
env ${STALLS_ENV:-} "$L" build --checkpoint "$W/parity/ckpt" --precision fp16 --max-batch 32 --output "$W/stalls.plan" -q || exit 1
reasons="barrier long_scoreboard wait short_scoreboard math_pipe_throttle mio_throttle lg_throttle membar dispatch_stall"
reasons+=" selected not_selected no_instructions sleeping wait_gmma branch_resolving drain imc_miss tex_throttle"
metrics=gpu__time_duration.sum,smsp__pcsamp_sample_count
for r in $reasons; do metrics+=,smsp__pcsamp_warps_issue_stalled_$r; done
runs=("b1:--batch 1 --text-tokens 512" "b32:--batch 32 --text-tokens 512"
      "funsd_packed:--batch 32 --lengths bench/funsd_test_token_counts.txt --pack")
files=()
wanted=" ${STALLS_RUNS:-b1 b32 funsd_packed} "
# One forward of bench arguments $args (graphs off) under ncu with $2.. , the sampled launch as configured; limit $1 s.
profile_run() {
  local limit=$1
  shift
  # shellcheck disable=SC2086  # STALLS_ENV: the assignments, split on spaces
  env ${STALLS_ENV:-} LAYOUTRT_CUDA_GRAPHS=0 timeout "$limit" "$NCU" --clock-control none --cache-control none \
    -k "regex:${STALLS_KERNEL:-flash_wgmma}" --launch-skip 15 --launch-count 1 "$@" \
    "$L" bench --plan "$W/stalls.plan" "${args[@]}" --warmup 1 --iters 1 -q > /dev/null 2>&1
}
for run in "${runs[@]}"; do
  name=${run%%:*}
  [[ "$wanted" == *" $name "* ]] || continue
  # shellcheck disable=SC2206  # the bench arguments, split on spaces
  args=(${run#*:})
  profile_run 120 --metrics "$metrics" --log-file "$W/stall_$name.txt"
  files+=("stall_$name.txt")
  if [ "${ATTENTION_STALLS_SASS:-1}" != 0 ]; then
    profile_run 150 --set full --import-source yes --page source --print-source sass --csv --log-file "$W/sass_$name.csv"
    files+=("sass_$name.csv")
  fi
  echo "== $name"
  grep -E "duration|pcsamp" "$W/stall_$name.txt" | sed 's/  */ /g'
done
tar czf "$OUT/stalls.tgz" -C "$W" "${files[@]}"
if [ "${ATTENTION_STALLS_SASS:-1}" != 0 ]; then
  pages=()
  for run in "${runs[@]}"; do
    [ -f "$W/sass_${run%%:*}.csv" ] && pages+=("${run%%:*}=$W/sass_${run%%:*}.csv")
  done
  python3 python/profile_tools.py stalls "$OUT/stalls.md" "${pages[@]}"
fi
rm -f "$W/stalls.plan"
