#!/usr/bin/env python3
"""Writes the tiny reference files in tests/fixtures/io/ with the official `safetensors` and `numpy` writers.

tests/cpu/test_safetensors.cpp and tests/cpu/test_npy.cpp read them back and compare against the values below,
so a change here must be mirrored there. Every value is exactly representable in its dtype.
Run: python3 python/make_io_fixtures.py
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")


def main():
    os.makedirs(OUT, exist_ok=True)

    # safetensors: F32/F16/BF16/I64 (BF16 needs torch; numpy has no bfloat16) plus metadata.
    tensors = {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 0.5,   # -0.5 -0.25 0 .25 .5 .75
        "f16": torch.tensor([1.5, -2.0, 65504.0, 2.0**-24], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -3.5], [2.0**100, -(2.0**-100)]], dtype=torch.bfloat16),
        "i64": torch.tensor([-(2**40), 0, 7, 2**62], dtype=torch.int64),
        "scalar": torch.tensor(3.0, dtype=torch.float32),   # 0-d
    }
    save_file(tensors, os.path.join(OUT, "mixed.safetensors"), metadata={"format": "pt", "note": "layoutrt fixture"})

    npy = os.path.join
    np.save(npy(OUT, "f32.npy"), (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 4)
    np.save(npy(OUT, "f16.npy"), np.array([0.5, -1.0, 65504.0, 2.0**-24], dtype=np.float16))
    np.save(npy(OUT, "f64.npy"), np.array([1.0 / 3.0, -1e300], dtype=np.float64))
    np.save(npy(OUT, "i64.npy"), np.array([[-(2**62), 1], [2, 2**62]], dtype=np.int64))
    np.save(npy(OUT, "i32.npy"), np.array([-(2**31), 2**31 - 1, 5], dtype=np.int32))
    np.save(npy(OUT, "i16.npy"), np.array([-32768, 32767], dtype=np.int16))
    np.save(npy(OUT, "i8.npy"), np.array([-128, 127, 0], dtype=np.int8))
    np.save(npy(OUT, "u8.npy"), np.array([0, 200, 255], dtype=np.uint8))
    np.save(npy(OUT, "bool.npy"), np.array([True, False, True], dtype=np.bool_))
    np.save(npy(OUT, "f32_big_endian.npy"), np.array([1.5, -2.25, 1e-3], dtype=">f4"))
    np.save(npy(OUT, "i64_big_endian.npy"), np.array([1, -2, 2**40 + 3], dtype=">i8"))
    np.save(npy(OUT, "fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    np.save(npy(OUT, "scalar.npy"), np.array(2.5, dtype=np.float32))
    np.save(npy(OUT, "empty.npy"), np.zeros((0, 3), dtype=np.float32))
    for version in ((2, 0), (3, 0)):
        with open(npy(OUT, "v%d.npy" % version[0]), "wb") as f:
            np.lib.format.write_array(f, np.array([[1, 2, 3]], dtype=np.int32), version=version)


if __name__ == "__main__":
    main()
