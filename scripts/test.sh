#!/usr/bin/env bash
# Builds (if needed) and runs the CPU test suite: everything but the `gpu` label.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || bash scripts/setup.sh
ninja -C build -j"$(nproc)"
ctest --test-dir build -LE gpu --output-on-failure -j"$(nproc)"
