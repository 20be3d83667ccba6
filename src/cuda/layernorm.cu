// LayerNorm and residual + LayerNorm on the GPU: the twin of cpu::layer_norm (src/cpu/layernorm.cpp).
//
// Grid: one CTA per row, 256 threads. The CTA loads x (+ residual) into shared memory in FP32 — so `out` may alias x or
// the residual — then two-pass FP32 statistics and the affine transform (weights F32), stored in out's dtype.
#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/kernel_util.cuh"

namespace layoutrt::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads) layer_norm_kernel(const T* x, const T* residual,
                                                               const float* __restrict__ w, const float* __restrict__ b,
                                                               int n, float eps, T* out) {
  extern __shared__ float row[];
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const T* xr = x + r * n;
  const T* rr = residual ? residual + r * n : nullptr;
  for (int k = threadIdx.x; k < n; k += blockDim.x) row[k] = rr ? to_f32(xr[k]) + to_f32(rr[k]) : to_f32(xr[k]);
  __syncthreads();
  layer_norm_smem_row(row, n, eps, w, b, red, out + r * n);
}

}  // namespace

void layer_norm(const LayerNormArgs& a, cudaStream_t stream) {
  const int64_t rows = a.x.dim(0), n = a.x.dim(1);
  if (rows == 0) return;
  if (a.out.dtype != a.x.dtype || (a.residual.defined() && a.residual.dtype != a.x.dtype))
    throw_error(ErrorCode::kInternal, "layer_norm: x, residual and out must share a dtype");
  if (a.weight.dtype != DType::kF32 || a.bias.dtype != DType::kF32)
    throw_error(ErrorCode::kInternal, "layer_norm: weight and bias must be F32");
  LRT_DISPATCH_FLOAT(a.x.dtype, T, {
    layer_norm_kernel<T><<<static_cast<unsigned>(rows), kThreads, sizeof(float) * n, stream>>>(
        a.x.as<T>(), a.residual.defined() ? a.residual.as<T>() : nullptr, a.weight.as<float>(), a.bias.as<float>(),
        static_cast<int>(n), a.eps, a.out.as<T>());
  });
  LRT_CUDA_LAUNCHED("layer_norm");
}

}  // namespace layoutrt::cuda
