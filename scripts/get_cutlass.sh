#!/usr/bin/env bash
# Puts the CUTLASS headers (from PyPI's nvidia-cutlass wheel, pinned) into .deps/cutlass/{include,tools/util/include},
# where CMake finds them (LAYOUTRT_CUTLASS_DIR) to build the Hopper fused GEMMs (src/cuda_sm90/). Nothing of CUTLASS is
# committed. Without them layoutrt builds and runs as before (cuBLASLt + separate bias/GELU pass).
#   bash scripts/get_cutlass.sh        # idempotent; exit 1 when the wheel cannot be fetched
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${LAYOUTRT_CUTLASS_VERSION:-4.2.0.0}
dest=.deps/cutlass
if [ -f "$dest/include/cutlass/cutlass.h" ] && [ -f "$dest/tools/util/include/cutlass/util/packed_stride.hpp" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --only-binary=:all: -q -d "$tmp" "nvidia-cutlass==$VERSION"
whl=$(ls "$tmp"/nvidia_cutlass-*.whl)
rm -rf "$dest"
python3 - "$whl" "$dest" <<'PY'
import os, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
prefix = "cutlass_library/source/"
keep = ("include/", "tools/util/include/", "LICENSE.txt")
n = 0
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        if not rel.startswith(keep):
            continue
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(name) as src, open(out, "wb") as dst:
            dst.write(src.read())
        n += 1
print(f"get_cutlass: {n} files from {os.path.basename(whl)} into {dest}")
PY
