// Self-attention with LayoutLMv3's relative-position biases on the CPU (FP32).
//
// For each sequence and head, K and V are packed contiguous in the scratch buffer; then each query row computes its
// scores, adds the bias, takes a max-subtracted softmax (the PB-relax softmax of transformers is mathematically that,
// and in FP32 it is exactly that: the /32 and *32 are exact power-of-two scalings) and accumulates the context.
// Masked keys are skipped: transformers adds finfo(float32).min, whose exp underflows to exactly 0 (trap 8).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_ops.h"
#include "layoutrt/error.h"

namespace layoutrt::cpu {

size_t attention_scratch_bytes(int64_t max_seq_len, int head_dim) {
  const int64_t threads = omp_get_max_threads();
  return sizeof(float) * static_cast<size_t>(3 * max_seq_len * head_dim + threads * max_seq_len);
}

void attention(const AttentionArgs& a) {
  const int H = a.num_heads * a.head_dim, d = a.head_dim;
  const int64_t ld = 3 * int64_t{H};
  const float* qkv = a.qkv.as<float>();
  float* out = a.out.as<float>();
  float* scratch = a.scratch.as<float>();
  if (a.scratch.nbytes() < attention_scratch_bytes(a.max_seq_len, d))
    throw_error(ErrorCode::kInternal, "cpu attention: scratch too small");
  float* kpack = scratch;
  float* vpack = kpack + a.max_seq_len * d;
  float* qpack = vpack + a.max_seq_len * d;
  float* scores_all = qpack + a.max_seq_len * d;
  const float sqrt_d = std::sqrt(static_cast<float>(d));
  const bool has1d = a.bias1d.defined(), has2d = a.bias_x.defined();
  const int64_t n1 = 2 * int64_t{a.max_dist_1d} + 1, n2 = 2 * int64_t{a.max_dist_2d} + 1;

  const int32_t* seq_begin = a.seq_begin + a.first_seq;
  for (int64_t s = 0; s < a.num_seqs; ++s) {
    const int64_t begin = seq_begin[s], L = seq_begin[s + 1] - begin;
    for (int h = 0; h < a.num_heads; ++h) {
      // transformers scales q before the product: (q / sqrt(d)) · kᵀ.
      for (int64_t j = 0; j < L; ++j) {
        const float* row = qkv + (begin + j) * ld + h * d;
        for (int k = 0; k < d; ++k) {
          qpack[j * d + k] = row[k] / sqrt_d;
          kpack[j * d + k] = row[H + k];
          vpack[j * d + k] = row[2 * H + k];
        }
      }
      const float* b1 = has1d ? a.bias1d.as<float>() + h * n1 + a.max_dist_1d : nullptr;
      const float* bx = has2d ? a.bias_x.as<float>() + h * n2 + a.max_dist_2d : nullptr;
      const float* by = has2d ? a.bias_y.as<float>() + h * n2 + a.max_dist_2d : nullptr;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < L; ++i) {
        float* sc = scores_all + omp_get_thread_num() * a.max_seq_len;
        const float* q = qpack + i * d;
        const int64_t ri = begin + i;
        float m = -INFINITY;
        for (int64_t j = 0; j < L; ++j) {
          const int64_t rj = begin + j;
          if (!a.key_valid[rj]) continue;
          const float* k = kpack + j * d;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int t = 0; t < d; ++t) dot += q[t] * k[t];
          if (b1) {
            const float rel1 = b1[a.pos1d[rj] - a.pos1d[ri]];  // column minus row (trap 5)
            const float bias = bx ? rel1 + (bx[a.pos_x[rj] - a.pos_x[ri]] + by[a.pos_y[rj] - a.pos_y[ri]]) : rel1;
            dot += bias / sqrt_d;  // the bias is divided by sqrt(d) too (trap 3)
          }
          sc[j] = dot;
          m = std::max(m, dot);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < L; ++j) {
          if (!a.key_valid[begin + j]) continue;
          sc[j] = std::exp(sc[j] - m);
          sum += sc[j];
        }
        float acc[1024];
        std::fill(acc, acc + d, 0.0f);
        for (int64_t j = 0; j < L; ++j) {
          if (!a.key_valid[begin + j]) continue;
          const float p = sc[j] / sum;
          const float* v = vpack + j * d;
#pragma omp simd
          for (int t = 0; t < d; ++t) acc[t] += p * v[t];
        }
        float* o = out + ri * H + h * d;
        for (int t = 0; t < d; ++t) o[t] = acc[t];
      }
    }
  }
}

}  // namespace layoutrt::cpu
