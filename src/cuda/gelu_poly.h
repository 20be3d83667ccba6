// GELU(x) = x · Φ(x) (transformers' exact "gelu", 0.5 · x · (1 + erf(x / √2))) in FP32 with a polynomial and one
// exp2 instead of erff: 14 FP32 operations and one MUFU exp2 (erff: ~28, two polynomials selected per element, a
// branch and an exp2). Used by the Hopper fused FFN GEMM's epilogue (src/cuda_sm90/gemm_sm90.cuh), where every
// operation counts: there the GELU is not hidden behind the main loop (bench/results/2026-12-01-h200-pingpong-gelu.md:
// 6.4 % of the forward at B = 32 before this form saved 3 of its 17 FP32 operations).
//
// h = Φ(−|x|) = erfc(t) / 2, t = |x| / √2 clamped to 4 (h = 7.7e−9 there); log2 h is a degree-10 polynomial in
// u = t / 2 − 1 ∈ [−1, 1] (Chebyshev interpolant of log2(erfc(t)) − 1 on [0, 4], monomial form; python/fit_gelu.py
// regenerates the coefficients and the errors); GELU = x − |x|·h for x ≥ 0, −|x|·h below, one FMA on max(x, 0).
// Errors against float64 GELU (FP32 evaluation, |x| ≤ 12): |err| ≤ 1.6e−7 · max(|GELU(x)|, 1) (the erff form: 1.6e−7)
// and, unlike the erff form whose 1 + erf cancels for negative x, ≤ 3.0e−6 relative wherever |GELU(x)| > 1e−6 (erff
// form: 6.7e−2). Far below an F16 / BF16 output's rounding. Below x = −4√2 the result is −4.4e−8 (|GELU| < 4.4e−8);
// +inf stays +inf, NaN stays NaN. tests/cpu/test_gelu_poly.cpp checks these bounds with the host build of the same
// code.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define LAYOUTRT_HD __host__ __device__ __forceinline__
#else
#define LAYOUTRT_HD inline
#endif

namespace layoutrt {

// max(x, 0) that keeps a NaN x (fmaxf would return 0): the NaN then reaches the result through the last FMA.
LAYOUTRT_HD float max_zero_keep_nan(float x) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("max.NaN.f32 %0, %1, 0f00000000;" : "=f"(r) : "f"(x));  // sm_80+
  return r;
#else
  return x != x ? x : std::fmax(x, 0.0f);
#endif
}

LAYOUTRT_HD float gelu_poly(float x) {
  // a = |x| clamped at t = a / √2 = 4; u = t / 2 − 1 in one FMA.
  const float a = fminf(fabsf(x), 5.656854249492380195f);
  const float u = fmaf(a, 0.3535533905932737622f, -1.0f);
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
  // x ≥ 0: x − a·h = x · (1 − h); x < 0: −a·h = x · h (a = |x| where it matters: beyond the clamp a·h ≤ 4.4e−8, and
  // x − 4.4e−8 rounds to x). One FMA and a max instead of a subtraction, a compare, a select and a product.
  return fmaf(-a, h, max_zero_keep_nan(x));
}

}  // namespace layoutrt

#undef LAYOUTRT_HD
