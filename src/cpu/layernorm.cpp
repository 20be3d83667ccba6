// LayerNorm (and residual + LayerNorm) on the CPU. Statistics in double: the oracle should be at least as exact as
// torch's FP32 kernel it is compared with.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_ops.h"

namespace layoutrt::cpu {

void layer_norm_row(const float* x, const float* residual, const float* weight, const float* bias, float eps,
                    int64_t n, float* out, const float* x_bias) {
  // out may alias x or residual: sum into a local row first.
  float sum_row[8192];
  std::vector<float> big;
  float* v = sum_row;
  if (n > 8192) { big.resize(n); v = big.data(); }
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float xi = x_bias ? x[i] + x_bias[i] : x[i];
    v[i] = residual ? xi + residual[i] : xi;
    mean += v[i];
  }
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = v[i] - mean;
    var += d * d;
  }
  var /= static_cast<double>(n);
  const double inv = 1.0 / std::sqrt(var + static_cast<double>(eps));
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>((v[i] - mean) * inv) * weight[i] + bias[i];
}

void layer_norm(const LayerNormArgs& a) {
  const int64_t rows = a.x.dim(0), n = a.x.dim(1);
  const float* x = a.x.as<float>();
  const float* r = a.residual.defined() ? a.residual.as<float>() : nullptr;
  float* out = a.out.as<float>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i)
    layer_norm_row(x + i * n, r ? r + i * n : nullptr, a.weight.as<float>(), a.bias.as<float>(), a.eps, n,
                   out + i * n, a.x_bias.defined() ? a.x_bias.as<float>() : nullptr);
  // The CPU computes and stores in FP32 only: the FP32 stream is out itself.
  if (a.out_f32.defined() && a.out_f32.data != a.out.data)
    std::copy(out, out + rows * n, a.out_f32.as<float>());
}

void gather_rows(const GatherRowsArgs& a) {
  const int64_t H = a.x.dim(1);
  for (int64_t i = 0; i < a.n; ++i) {
    const float* src = a.x.as<float>() + static_cast<int64_t>(a.rows[i]) * H;
    float* dst = a.out.as<float>() + i * H;
    for (int64_t k = 0; k < H; ++k) dst[k] = src[k];
  }
}

}  // namespace layoutrt::cpu
