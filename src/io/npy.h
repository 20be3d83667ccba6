// NumPy .npy files (format versions 1.0, 2.0 and 3.0) for inputs and reference outputs.
#pragma once

#include <string>

#include "layoutrt/tensor.h"

namespace layoutrt {

// Reads descr <f4 <f2 <f8 <i8 <i4 <i2 |i1 |u1 |b1 ('=' and '|' read as little-endian; big-endian '>' is byte-swapped).
// kDTypeMismatch for other dtypes, kUnsupported for fortran_order arrays of rank >= 2, kFormat for a malformed or
// truncated file. A 0-d array gives a Tensor with an empty shape.
Tensor read_npy(const std::string& path);

// Writes version 1.0 with the data at a multiple of 64 bytes, through path + ".tmp" and a rename. F16 is written as
// '<f2'; BF16 and F8_E4M3 have no NumPy dtype (kUnsupported).
void write_npy(const std::string& path, const Tensor& t);

}  // namespace layoutrt
