// GELU(x) = x · Φ(x) (transformers' exact "gelu", 0.5 · x · (1 + erf(x / √2))) in FP32 with a polynomial and one
// exp2 instead of erff: about 18 FP32 operations against erff's ~28 (two polynomials selected per element, a branch
// and an exp2). Used by the Hopper fused FFN GEMM's epilogue (src/cuda_sm90/bias_gelu_gemm.cuh), where the GELU of
// every output element is not overlapped with the main loop.
//
// h = Φ(−|x|) = erfc(t) / 2, t = |x| / √2 clamped to 4 (h = 7.7e−9 there); log2 h is a degree-10 polynomial in
// u = t / 2 − 1 ∈ [−1, 1] (Chebyshev interpolant of log2(erfc(t)) − 1 on [0, 4], monomial form; python/fit_gelu.py
// regenerates the coefficients and the errors); Φ(x) = 1 − h for x ≥ 0, h below. Errors against float64 GELU (FP32
// evaluation, |x| ≤ 12): |err| ≤ 2.1e−7 · max(|GELU(x)|, 1) (the erff form: 1.6e−7) and, unlike the erff form whose
// 1 + erf cancels for negative x, ≤ 3.7e−6 relative wherever |GELU(x)| > 1e−6 (erff form: 6.7e−2). Far below an F16 /
// BF16 output's rounding. tests/cpu/test_gelu_poly.cpp checks these bounds with the host build of the same code.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define LAYOUTRT_HD __host__ __device__ __forceinline__
#else
#define LAYOUTRT_HD inline
#endif

namespace layoutrt {

LAYOUTRT_HD float gelu_poly(float x) {
  const float t = fminf(fabsf(x) * 0.70710678118654752f, 4.0f);
  const float u = t * 0.5f - 1.0f;
  float p = -4.932045122e-04f;
  p = fmaf(p, u, 7.019610493e-04f);
  p = fmaf(p, u, 9.688821738e-04f);
  p = fmaf(p, u, -4.372943658e-03f);
  p = fmaf(p, u, 1.237431541e-02f);
  p = fmaf(p, u, -3.358141333e-02f);
  p = fmaf(p, u, 8.245003223e-02f);
  p = fmaf(p, u, -1.900720000e-01f);
  p = fmaf(p, u, -5.330765247e+00f);
  p = fmaf(p, u, -1.274811554e+01f);
  p = fmaf(p, u, -8.739974022e+00f);
#if defined(__CUDA_ARCH__)
  float h;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(h) : "f"(p));  // ~2 ulp; the argument is in [−26.5, −1]
#else
  const float h = std::exp2(p);
#endif
  return x * (x >= 0.0f ? 1.0f - h : h);
}

}  // namespace layoutrt

#undef LAYOUTRT_HD
