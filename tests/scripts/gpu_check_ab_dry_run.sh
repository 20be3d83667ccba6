#!/usr/bin/env bash
# CPU smoke test of scripts/gpu_check.sh's ab step, the A/B tool of the GPU machine, on the CPU backend with a fixture
# model: a source A/B (GPU_CHECK_AB_ALT: a copy of src/runtime/synthetic.cpp with a comment added) must build the
# alternative binary, time both variants, write ab.md with a numeric row per variant, and leave the source tree as it
# was. Usage: gpu_check_ab_dry_run.sh <cmake build dir, Ninja>. Exit 77 (skipped) for a build dir without Ninja.
set -euo pipefail
# Run from gpu_check's own ctest step too: none of the caller's GPU_CHECK_* settings may leak in.
for v in $(compgen -e | grep '^GPU_CHECK_' || true); do unset "$v"; done
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$build/build.ninja" ] || { echo "not a Ninja build dir: $build (the ab step rebuilds with ninja)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/work/parity" "$tmp/alt/src/runtime"
cp -r "$root/tests/fixtures/models/token_cls" "$tmp/work/parity/ckpt"  # ensure_ckpt then writes none (no torch)
file=src/runtime/synthetic.cpp
cp "$root/$file" "$tmp/alt/$file"
echo "// the alternative of the gpu_check ab dry run" >> "$tmp/alt/$file"
before=$(cksum < "$root/$file")
rc=0
OUT=$tmp/out GPU_CHECK_WORK=$tmp/work GPU_CHECK_BUILD_DIR=$build GPU_CHECK_BACKEND=cpu GPU_CHECK_TINY=1 \
  GPU_CHECK_QUICK=1 GPU_CHECK_MAX_SECONDS=1 GPU_CHECK_STEPS=ab GPU_CHECK_AB="; @alt" GPU_CHECK_AB_ALT=$tmp/alt \
  GPU_CHECK_AB_BATCHES=1 bash "$root/scripts/gpu_check.sh" > "$tmp/log" 2>&1 || rc=$?
fail() {
  echo "FAIL: $*"
  cat "$tmp/log" "$tmp/out/ab.log" 2>/dev/null | tail -60
  exit 1
}
[ "$(cksum < "$root/$file")" = "$before" ] || fail "$file was not restored"
[ "$rc" = 0 ] || fail "gpu_check.sh exited $rc"
[ -x "$tmp/work/layoutrt_alt" ] || fail "no alternative binary"
grep -q "build_alt: $file from" "$tmp/out/ab.log" || fail "the ab log does not name the swapped file"
grep -Eq '^\| `\(defaults\)` \| [0-9]+\.[0-9]+ ' "$tmp/out/ab.md" || fail "ab.md has no timed (defaults) row"
grep -Eq '^\| `@alt` \| [0-9]+\.[0-9]+ ' "$tmp/out/ab.md" || fail "ab.md has no timed @alt row"
grep -q "layoutrt_alt bench" "$tmp/out/ab.log" || fail "the @alt variant did not run the alternative binary"
echo "ok: $(grep -E '^\| `' "$tmp/out/ab.md" | tr '\n' ' ')"
