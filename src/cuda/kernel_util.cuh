// Device helpers shared by the kernels: dtype-generic loads/stores (F32 / F16 / BF16, math always in FP32), exact
// activations, warp and block reductions, launch arithmetic.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "layoutrt/precision.h"
#include "ops/backend.h"

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

inline unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

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
