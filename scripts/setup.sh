#!/usr/bin/env bash
# Installs what layoutrt needs on Debian/Ubuntu and builds it into build/ (CLI: build/layoutrt).
#   bash scripts/setup.sh            # deps + Release build (CUDA backend when nvcc is found)
#   LAYOUTRT_CUDA=OFF bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(cmake ninja-build g++ make libopenblas-dev libgtest-dev pkg-config zlib1g-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# nvcc lives outside PATH on many CUDA installs.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi

# CUTLASS headers for the Hopper fused GEMMs (optional: without them the build simply leaves those out).
if command -v nvcc >/dev/null && [ "${LAYOUTRT_CUTLASS:-ON}" != OFF ]; then
  bash scripts/get_cutlass.sh || echo "setup: CUTLASS headers unavailable; building without the Hopper fused GEMMs"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLAYOUTRT_CUDA="${LAYOUTRT_CUDA:-AUTO}" >/dev/null
ninja -C build -j"$(nproc)"
echo "setup: built $(pwd)/build/layoutrt"
