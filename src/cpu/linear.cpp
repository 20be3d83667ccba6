// Dense layers on the CPU: y = epilogue(x · Wᵀ + b).
#include <cmath>

#include "cpu/cpu_ops.h"
#include "layoutrt/error.h"

#ifdef LAYOUTRT_WITH_BLAS
#include <cblas.h>
#endif

namespace layoutrt::cpu {

void sgemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc) {
  if (M == 0 || N == 0) return;
#ifdef LAYOUTRT_WITH_BLAS
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
              1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb), 0.0f, C, static_cast<int>(ldc));
#else
  // Fallback without BLAS: both operands are contiguous along K, so each output is one vectorisable dot product.
  // Blocked over N so that a block of B rows stays in cache while the rows of A stream past.
  constexpr int64_t kBlockN = 64;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j0 = 0; j0 < N; j0 += kBlockN) {
      const int64_t j1 = j0 + kBlockN < N ? j0 + kBlockN : N;
      for (int64_t j = j0; j < j1; ++j) {
        const float* a = A + i * lda;
        const float* b = B + j * ldb;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < K; ++k) s += a[k] * b[k];
        C[i * ldc + j] = s;
      }
    }
  }
#endif
}

void apply_epilogue(float* y, int64_t rows, int64_t cols, const float* bias, Epilogue e) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      float v = bias ? row[c] + bias[c] : row[c];
      switch (e) {
        case Epilogue::kNone: break;
        // transformers' GELUActivation: x * 0.5 * (1 + erf(x / sqrt(2))), exact erf.
        case Epilogue::kGeluErf: v = 0.5f * v * (1.0f + std::erf(v * static_cast<float>(M_SQRT1_2))); break;
        case Epilogue::kGeluTanh: {
          const float k = 0.7978845608028654f;  // sqrt(2/pi)
          v = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
          break;
        }
        case Epilogue::kRelu: v = v > 0.0f ? v : 0.0f; break;
        case Epilogue::kSilu: v = v / (1.0f + std::exp(-v)); break;
        case Epilogue::kTanh: v = std::tanh(v); break;
      }
      row[c] = v;
    }
  }
}

void linear(const LinearArgs& a) {
  const int64_t M = a.x.dim(0), K = a.x.dim(1), N = a.weight.dim(0);
  if (a.weight.dim(1) != K || a.y.dim(0) != M || a.y.dim(1) != N)
    throw_error(ErrorCode::kInternal, "cpu linear: shapes x[", M, ",", K, "] W[", N, ",", a.weight.dim(1), "] y[",
                a.y.dim(0), ",", a.y.dim(1), "] disagree");
  sgemm_nt(M, N, K, a.x.as<float>(), K, a.weight.as<float>(), K, a.y.as<float>(), N);
  apply_epilogue(a.y.as<float>(), M, N, a.bias.defined() ? a.bias.as<float>() : nullptr, a.epilogue);
}

}  // namespace layoutrt::cpu
