// Relative-position buckets of LayoutLMv3 (T5-style, bidirectional), as integer tables over every distance the model
// can see, built once at build time and only looked up afterwards (DESIGN.md "exactness where the reference is
// integer").
//
// transformers computes, in float32 (LayoutLMv3Encoder.relative_position_bucket):
//   nb = bins/2; ret = (rel > 0)·nb; n = |rel|; max_exact = nb/2
//   n < max_exact: ret += n
//   else:          ret += min(max_exact + long(log(float(n)/max_exact) / log(max_distance/max_exact) · (nb−max_exact)),
//                             nb−1)
// The log ratio is an exact integer at n = max_exact·2^k, so the truncation sits on a boundary there: one ulp of
// difference in log or in the division moves the bucket (the original TensorRT port broke exactly there). We mirror
// torch's float32 order of operations with glibc's correctly rounded logf; tests/cpu/test_rel_pos.cpp compares every
// distance against tables dumped from transformers.
#pragma once

#include <cstdint>
#include <vector>

#include "layoutrt/tensor.h"

namespace layoutrt {

int relative_position_bucket(int64_t relative_position, int num_buckets, int max_distance);

// Buckets for every distance r in [-max_abs_distance, max_abs_distance]; table[r + max_abs_distance].
std::vector<int32_t> relative_position_bucket_table(int max_abs_distance, int num_buckets, int max_distance);

// Per-head bias values by distance: out[h][r + R] = weight[h][buckets[r + R]]. weight is [heads, bins] F32 (torch's
// nn.Linear(bins, heads).weight), buckets has 2R+1 entries. Result [heads, 2R+1] F32.
Tensor gather_bias_by_distance(const Tensor& weight, const Tensor& buckets);

}  // namespace layoutrt
