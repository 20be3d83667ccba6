// LayerNorm and (x + x_bias) + residual -> LayerNorm on the GPU: the twin of cpu::layer_norm (src/cpu/layernorm.cpp).
//
// Two kernels, one arithmetic (sum in FP32 as (x + x_bias) + residual, two-pass FP32 statistics, affine with F32
// weights, one rounding to out's dtype):
//  - warp-per-row (the engine's shapes): a warp owns a row and holds it in registers, 16-byte vector loads/stores,
//    statistics by warp shuffles only — no shared memory, no __syncthreads. Used when the row is a whole number of
//    32 lanes × 16-byte vectors, at most kMaxIters vectors per lane (H = 768 in F16: 3; in F32: 6; H = 1024 F16: 4),
//    and every pointer is 16-byte aligned. 4 rows per 128-thread CTA.
//  - CTA-per-row (anything else): 256 threads stage the row in shared memory, block reductions.
// `out` may alias x or the residual in both: every element is read before its own position is written, by the same
// thread.
// x_bias is the bias of the linear that produced x (forward.cpp folds the out-projection and FFN-output biases here):
// added in FP32, so FP16/BF16 plans round the linear's output once less.
#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/device_info.h"
#include "cuda/kernel_util.cuh"

namespace layoutrt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpRowsPerCta = 4;
constexpr int kMaxIters = 8;

template <class T>
__global__ void __launch_bounds__(kThreads) layer_norm_kernel(const T* x, const T* residual,
                                                               const float* __restrict__ x_bias,
                                                               const float* __restrict__ w, const float* __restrict__ b,
                                                               int n, float eps, T* out) {
  extern __shared__ float row[];
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const T* xr = x + r * n;
  const T* rr = residual ? residual + r * n : nullptr;
  for (int k = threadIdx.x; k < n; k += blockDim.x) {
    float v = to_f32(xr[k]);
    if (x_bias) v += x_bias[k];
    if (rr) v += to_f32(rr[k]);
    row[k] = v;
  }
  __syncthreads();
  layer_norm_smem_row(row, n, eps, w, b, red, out + r * n);
}

// 16 bytes of T: the unit of the warp kernel's loads and stores.
template <class T>
struct alignas(16) Vec {
  static constexpr int kN = 16 / sizeof(T);
  T v[kN];
};

template <class T, int ITERS>
__global__ void __launch_bounds__(32 * kWarpRowsPerCta) layer_norm_warp_kernel(
    const T* x, const T* residual, const float* __restrict__ x_bias, const float* __restrict__ w,
    const float* __restrict__ b, int64_t rows, float eps, T* out) {
  using V = Vec<T>;
  constexpr int kN = V::kN;
  constexpr int n = 32 * kN * ITERS;
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpRowsPerCta + (threadIdx.x >> 5);
  if (r >= rows) return;
  float v[ITERS][kN];
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int col = (it * 32 + lane) * kN;
    const V xv = *reinterpret_cast<const V*>(x + r * n + col);
#pragma unroll
    for (int e = 0; e < kN; ++e) v[it][e] = to_f32(xv.v[e]);
    if (x_bias) {
#pragma unroll
      for (int e = 0; e < kN; e += 4) {
        const float4 bb = *reinterpret_cast<const float4*>(x_bias + col + e);
        v[it][e] += bb.x, v[it][e + 1] += bb.y, v[it][e + 2] += bb.z, v[it][e + 3] += bb.w;
      }
    }
    if (residual) {
      const V rv = *reinterpret_cast<const V*>(residual + r * n + col);
#pragma unroll
      for (int e = 0; e < kN; ++e) v[it][e] += to_f32(rv.v[e]);
    }
  }
  float s = 0.f;
#pragma unroll
  for (int it = 0; it < ITERS; ++it)
#pragma unroll
    for (int e = 0; e < kN; ++e) s += v[it][e];
  const float mean = warp_sum(s) / static_cast<float>(n);
  float q = 0.f;
#pragma unroll
  for (int it = 0; it < ITERS; ++it)
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      const float d = v[it][e] - mean;
      q += d * d;
    }
  const float inv = rsqrtf(warp_sum(q) / static_cast<float>(n) + eps);
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int col = (it * 32 + lane) * kN;
    V o;
#pragma unroll
    for (int e = 0; e < kN; e += 4) {
      const float4 ww = *reinterpret_cast<const float4*>(w + col + e);
      const float4 bb = *reinterpret_cast<const float4*>(b + col + e);
      o.v[e + 0] = from_f32<T>((v[it][e + 0] - mean) * inv * ww.x + bb.x);
      o.v[e + 1] = from_f32<T>((v[it][e + 1] - mean) * inv * ww.y + bb.y);
      o.v[e + 2] = from_f32<T>((v[it][e + 2] - mean) * inv * ww.z + bb.z);
      o.v[e + 3] = from_f32<T>((v[it][e + 3] - mean) * inv * ww.w + bb.w);
    }
    *reinterpret_cast<V*>(out + r * n + col) = o;
  }
}

template <class T, int ITERS>
void launch_warp(const LayerNormArgs& a, const float* xb, int64_t rows, cudaStream_t stream) {
  layer_norm_warp_kernel<T, ITERS><<<ceil_div(rows, kWarpRowsPerCta), 32 * kWarpRowsPerCta, 0, stream>>>(
      a.x.as<T>(), a.residual.defined() ? a.residual.as<T>() : nullptr, xb, a.weight.as<float>(), a.bias.as<float>(),
      rows, a.eps, a.out.as<T>());
}

// The warp kernel's instantiation for n = 32 · (16 / sizeof(T)) · iters; false where none applies.
template <class T>
bool try_warp(const LayerNormArgs& a, const float* xb, int64_t rows, int64_t n, cudaStream_t stream) {
  constexpr int64_t unit = 32 * Vec<T>::kN;
  if (n % unit != 0 || n / unit > kMaxIters) return false;
  for (const void* p : {a.x.data, a.out.data, a.weight.data, a.bias.data})
    if (!aligned16(p)) return false;
  if ((a.residual.defined() && !aligned16(a.residual.data)) || (xb && !aligned16(xb))) return false;
  switch (n / unit) {
    case 1: launch_warp<T, 1>(a, xb, rows, stream); return true;
    case 2: launch_warp<T, 2>(a, xb, rows, stream); return true;
    case 3: launch_warp<T, 3>(a, xb, rows, stream); return true;
    case 4: launch_warp<T, 4>(a, xb, rows, stream); return true;
    case 5: launch_warp<T, 5>(a, xb, rows, stream); return true;
    case 6: launch_warp<T, 6>(a, xb, rows, stream); return true;
    case 7: launch_warp<T, 7>(a, xb, rows, stream); return true;
    case 8: launch_warp<T, 8>(a, xb, rows, stream); return true;
  }
  return false;
}

}  // namespace

void layer_norm(const LayerNormArgs& a, cudaStream_t stream) {
  const int64_t rows = a.x.dim(0), n = a.x.dim(1);
  if (rows == 0) return;
  if (a.out.dtype != a.x.dtype || (a.residual.defined() && a.residual.dtype != a.x.dtype))
    throw_error(ErrorCode::kInternal, "layer_norm: x, residual and out must share a dtype");
  if (a.weight.dtype != DType::kF32 || a.bias.dtype != DType::kF32 ||
      (a.x_bias.defined() && a.x_bias.dtype != DType::kF32))
    throw_error(ErrorCode::kInternal, "layer_norm: weight, bias and x_bias must be F32");
  const float* xb = a.x_bias.defined() ? a.x_bias.as<float>() : nullptr;
  LRT_DISPATCH_FLOAT(a.x.dtype, T, {
    if (!try_warp<T>(a, xb, rows, n, stream))
      layer_norm_kernel<T><<<static_cast<unsigned>(rows), kThreads, sizeof(float) * n, stream>>>(
          a.x.as<T>(), a.residual.defined() ? a.residual.as<T>() : nullptr, xb, a.weight.as<float>(),
          a.bias.as<float>(), static_cast<int>(n), a.eps, a.out.as<T>());
  });
  LRT_CUDA_LAUNCHED("layer_norm");
}

}  // namespace layoutrt::cuda
