// Device helpers shared by the kernels: dtype-generic loads/stores (F32 / F16 / BF16, math always in FP32), exact
// activations, warp and block reductions, launch arithmetic.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "layoutrt/precision.h"
#include "ops/backend.h"
#include "cuda/pdl.cuh"

namespace layoutrt::cuda {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Exact activations (FP32), matching torch: gelu = x * 0.5 * (1 + erf(x / sqrt(2))); gelu_new is the tanh form.
__device__ __forceinline__ float apply_epilogue(Epilogue e, float x) {
  switch (e) {
    case Epilogue::kNone: return x;
    case Epilogue::kGeluErf: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
    case Epilogue::kGeluTanh: {
      const float k0 = 0.7978845608028654f, k1 = 0.044715f;
      return 0.5f * x * (1.0f + tanhf(k0 * (x + k1 * x * x * x)));
    }
    case Epilogue::kRelu: return x > 0.f ? x : 0.f;
    case Epilogue::kSilu: return x / (1.0f + expf(-x));
    case Epilogue::kTanh: return tanhf(x);
  }
  return x;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block; every thread gets the result. `shm` holds >= 32 floats. blockDim.x a multiple of 32.
__device__ __forceinline__ float block_sum(float v, float* shm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  float t = lane < nwarps ? shm[lane] : 0.f;
  return warp_sum(t);
}
__device__ __forceinline__ float block_max(float v, float* shm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  float t = lane < nwarps ? shm[lane] : -INFINITY;
  return warp_max(t);
}

// LayerNorm of one row held in shared memory by the whole CTA: two-pass FP32 statistics (mean, then Σ(x-mean)²), then
// out[k] = (row[k] - mean) * rsqrt(var + eps) * w[k] + b[k]. `red` is >= 32 floats of shared scratch. out32, when
// set, receives the same values unrounded (the FP32 residual stream).
template <class TO>
__device__ __forceinline__ void layer_norm_smem_row(const float* row, int n, float eps, const float* __restrict__ w,
                                                    const float* __restrict__ b, float* red, TO* out,
                                                    float* out32 = nullptr) {
  float s = 0.f;
  for (int k = threadIdx.x; k < n; k += blockDim.x) s += row[k];
  const float mean = block_sum(s, red) / static_cast<float>(n);
  float v = 0.f;
  for (int k = threadIdx.x; k < n; k += blockDim.x) {
    const float d = row[k] - mean;
    v += d * d;
  }
  const float inv = rsqrtf(block_sum(v, red) / static_cast<float>(n) + eps);
  for (int k = threadIdx.x; k < n; k += blockDim.x) {
    const float y = (row[k] - mean) * inv * w[k] + b[k];
    out[k] = from_f32<TO>(y);
    if (out32) out32[k] = y;
  }
}

// 16 bytes of T: the unit of the warp-per-row kernels' loads and stores.
template <class T>
struct alignas(16) Vec {
  static constexpr int kN = 16 / sizeof(T);
  T v[kN];
};

// N consecutive values of T at p (16-byte aligned, N · sizeof(T) a multiple of 16) as FP32, in 16-byte loads.
template <class T, int N>
__device__ __forceinline__ void load_row_part(const T* p, float* v) {
  static_assert(N * sizeof(T) % 16 == 0, "whole 16-byte vectors");
#pragma unroll
  for (int c = 0; c < N / Vec<T>::kN; ++c) {
    const Vec<T> t = reinterpret_cast<const Vec<T>*>(p)[c];
#pragma unroll
    for (int e = 0; e < Vec<T>::kN; ++e) v[c * Vec<T>::kN + e] = to_f32(t.v[e]);
  }
}
template <class T, int N>
__device__ __forceinline__ void store_row_part(T* p, const float* v) {
#pragma unroll
  for (int c = 0; c < N / Vec<T>::kN; ++c) {
    Vec<T> t;
#pragma unroll
    for (int e = 0; e < Vec<T>::kN; ++e) t.v[e] = from_f32<T>(v[c * Vec<T>::kN + e]);
    reinterpret_cast<Vec<T>*>(p)[c] = t;
  }
}

// A row held by one warp in registers: lane `lane` holds values [(it · 32 + lane) · N, + N) in v[it] (the layout of
// the warp-per-row kernels). Two-pass FP32 statistics by warp shuffles: mean, then rsqrt(Σ(v − mean)² / n + eps).
template <int ITERS, int N>
__device__ __forceinline__ void warp_row_stats(const float (&v)[ITERS][N], float eps, float& mean, float& inv) {
  constexpr int n = 32 * N * ITERS;
  float s = 0.f;
#pragma unroll
  for (int it = 0; it < ITERS; ++it)
#pragma unroll
    for (int e = 0; e < N; ++e) s += v[it][e];
  mean = warp_sum(s) / static_cast<float>(n);
  float q = 0.f;
#pragma unroll
  for (int it = 0; it < ITERS; ++it)
#pragma unroll
    for (int e = 0; e < N; ++e) {
      const float d = v[it][e] - mean;
      q += d * d;
    }
  inv = rsqrtf(warp_sum(q) / static_cast<float>(n) + eps);
}

// LayerNorm of such a row in place: v = (v − mean) · inv · w + b, w and b F32 [32 · N · ITERS] (16-byte aligned).
template <int ITERS, int N>
__device__ __forceinline__ void warp_row_norm(float (&v)[ITERS][N], int lane, const float* __restrict__ w,
                                              const float* __restrict__ b, float eps) {
  float mean, inv;
  warp_row_stats(v, eps, mean, inv);
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int col = (it * 32 + lane) * N;
#pragma unroll
    for (int e = 0; e < N; e += 4) {
      const float4 ww = *reinterpret_cast<const float4*>(w + col + e);
      const float4 bb = *reinterpret_cast<const float4*>(b + col + e);
      v[it][e] = (v[it][e] - mean) * inv * ww.x + bb.x;
      v[it][e + 1] = (v[it][e + 1] - mean) * inv * ww.y + bb.y;
      v[it][e + 2] = (v[it][e + 2] - mean) * inv * ww.z + bb.z;
      v[it][e + 3] = (v[it][e + 3] - mean) * inv * ww.w + bb.w;
    }
  }
}

// "Lane order" of W [labels, H = 32 · N · ITERS] F32, as the heads' kernels stage it in shared memory: label j's
// float4 q of column vector `it` for lane l at ((j · ITERS + it) · N / 4 + q) · 32 + l, so that a warp reading one
// float4 per lane reads 512 consecutive bytes (conflict-free). lane_order_index: where a lane reads it;
// lane_order_slot: where float4 k of W in row order goes.
template <int ITERS, int N>
__device__ __forceinline__ int lane_order_index(int j, int it, int q, int lane) {
  return ((j * ITERS + it) * (N / 4) + q) * 32 + lane;
}
template <int ITERS, int N>
__device__ __forceinline__ int lane_order_slot(int k) {
  constexpr int H = 32 * N * ITERS;
  const int j = k / (H / 4), c = (k - j * (H / 4)) * 4;  // label, first column
  const int it = c / (32 * N), l = (c / N) % 32, q = (c % N) / 4;
  return lane_order_index<ITERS, N>(j, it, q, l);
}

// A head's linear on kRows rows held by one warp each in the layout above (v[r]): for each of the N labels, every
// lane's partial dot product over its values (column vectors in order, four products at a time), then warp_sum;
// lane j keeps label j's sum in mine[r] (lanes ≥ N keep 0). wvec(j, it, q) is the float4 of label j's weights under
// this lane's values v[r][it][4q .. 4q + 3]. gather_linear's kernel and the LayerNorm + head kernel both compute
// their dot products here: the same operations in the same order, so their logits are the same bits.
template <int kRows, int ITERS, int N, class WVec>
__device__ __forceinline__ void warp_rows_label_dots(const float (&v)[kRows][ITERS][N], int labels, int lane, WVec wvec,
                                                     float (&mine)[kRows]) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) mine[r] = 0.f;
  for (int j = 0; j < labels; ++j) {
    float s[kRows] = {};
#pragma unroll
    for (int it = 0; it < ITERS; ++it)
#pragma unroll
      for (int q = 0; q < N / 4; ++q) {
        const float4 w = wvec(j, it, q);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const float* a = v[r][it] + 4 * q;
          s[r] += a[0] * w.x + a[1] * w.y + a[2] * w.z + a[3] * w.w;
        }
      }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float t = warp_sum(s[r]);
      if (lane == j) mine[r] = t;
    }
  }
}

// Stores such a row: out (TO) and, when set, out32 unrounded.
template <class TO, int ITERS, int N>
__device__ __forceinline__ void warp_row_store(const float (&v)[ITERS][N], int lane, TO* out, float* out32) {
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int col = (it * 32 + lane) * N;
    store_row_part<TO, N>(out + col, v[it]);
    if (out32) store_row_part<float, N>(out32 + col, v[it]);
  }
}

// Rounds such a row to T and back (what storing it in T and loading it again gives).
template <class T, int ITERS, int N>
__device__ __forceinline__ void round_row_to(float (&v)[ITERS][N]) {
  if constexpr (!std::is_same_v<T, float>) {
#pragma unroll
    for (int it = 0; it < ITERS; ++it)
#pragma unroll
      for (int e = 0; e < N; ++e) v[it][e] = to_f32(from_f32<T>(v[it][e]));
  }
}

// warp_row_norm, then with kJoint the joint LayerNorm of JointNorm (ops/backend.h) over its result, rounded to TO
// first unless `exact` (the FP32 residual stream is written): the warp twin of layer_norm_smem_row_joint.
template <bool kJoint, class TO, int ITERS, int N>
__device__ __forceinline__ void warp_row_norm_joint(float (&v)[ITERS][N], int lane, const float* __restrict__ w,
                                                    const float* __restrict__ b, float eps,
                                                    const float* __restrict__ jw, const float* __restrict__ jb,
                                                    float jeps, bool exact) {
  warp_row_norm(v, lane, w, b, eps);
  if constexpr (kJoint) {
    if (!exact) round_row_to<TO>(v);
    warp_row_norm(v, lane, jw, jb, jeps);
  }
}

// layer_norm_smem_row, then (when jw is set) the joint LayerNorm of JointNorm (ops/backend.h) over its result: the
// first result kept in `row` (rounded to TO unless out32 is set), the second written to out / out32.
template <class TO>
__device__ __forceinline__ void layer_norm_smem_row_joint(float* row, int n, float eps, const float* __restrict__ w,
                                                          const float* __restrict__ b, const float* __restrict__ jw,
                                                          const float* __restrict__ jb, float jeps, float* red,
                                                          TO* out, float* out32) {
  if (!jw) {
    layer_norm_smem_row(row, n, eps, w, b, red, out, out32);
    return;
  }
  layer_norm_smem_row(row, n, eps, w, b, red, row);  // in place: each element read, then written, by one thread
  if (!out32)
    for (int k = threadIdx.x; k < n; k += blockDim.x) row[k] = to_f32(from_f32<TO>(row[k]));
  __syncthreads();
  layer_norm_smem_row(row, n, jeps, jw, jb, red, out, out32);
}

inline unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

// Calls f(std::integral_constant<int, k>{}) for the k among kCases equal to n (a kernel's compile-time count, e.g. the
// 16-byte vectors per lane of a warp-per-row kernel) and returns true; false, calling nothing, when none is.
template <int... kCases, class F>
bool dispatch_count(int64_t n, F&& f) {
  return ((n == kCases && (f(std::integral_constant<int, kCases>{}), true)) || ...);
}

}  // namespace layoutrt::cuda

// Instantiates `body` with T bound to the C++ type of a float DType (F32 / F16 / BF16); other dtypes throw.
#define LRT_DISPATCH_FLOAT(dtype, T, ...)                                                        \
  switch (dtype) {                                                                               \
    case ::layoutrt::DType::kF32: { using T = float; __VA_ARGS__; break; }                       \
    case ::layoutrt::DType::kF16: { using T = __half; __VA_ARGS__; break; }                      \
    case ::layoutrt::DType::kBF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }              \
    default: ::layoutrt::throw_error(::layoutrt::ErrorCode::kInternal, "unsupported dtype ",     \
                                     ::layoutrt::dtype_name(dtype), " in ", __func__);           \
  }
