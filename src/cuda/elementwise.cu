// Small elementwise kernels: bias + activation (the GEMM epilogue cuBLASLt cannot do exactly: its GELU is the tanh
// approximation), row gather for the heads, NaN poisoning for tests. Twins: the CPU backend's linear epilogue
// (src/cpu/linear.cpp), cpu::gather_rows and CpuBackend::fill_nan.
#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/device_info.h"
#include "cuda/kernel_util.cuh"

namespace layoutrt::cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(ceil_div(n, kThreads), 1 << 20)); }

// Grid-stride, one element per thread per step: y = epilogue(y + bias[col]) in FP32, stored back in y's dtype.
template <class T>
__global__ void bias_activation_kernel(T* y, const float* __restrict__ bias, int64_t total, int64_t N, Epilogue e) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    float v = to_f32(y[i]);
    if (bias) v += bias[i % N];
    y[i] = from_f32<T>(apply_epilogue(e, v));
  }
}

// The same, 16 bytes per thread (8 F16/BF16 or 4 F32 values): N a multiple of the vector width, y 16-byte aligned,
// total / kN < 2^31 (32-bit column arithmetic). The engine's FFN activation (a [rows, 3072] pass) takes this path.
template <class T>
__global__ void bias_activation_vec_kernel(T* y, const float* __restrict__ bias, uint32_t vectors, uint32_t n_vec,
                                           Epilogue e) {
  constexpr int kN = 16 / sizeof(T);
  struct alignas(16) V { T v[kN]; };
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < vectors; i += gridDim.x * blockDim.x) {
    V x = reinterpret_cast<V*>(y)[i];
    const uint32_t col = (i % n_vec) * kN;
#pragma unroll
    for (int k = 0; k < kN; ++k) {
      float v = to_f32(x.v[k]);
      if (bias) v += bias[col + k];
      x.v[k] = from_f32<T>(apply_epilogue(e, v));
    }
    reinterpret_cast<V*>(y)[i] = x;
  }
}

template <class T>
__global__ void convert_kernel(const float* __restrict__ src, T* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = from_f32<T>(src[i]);
}

// One CTA per gathered row: out[i, :] = float(x[rows[i], :]).
template <class T>
__global__ void gather_rows_kernel(const T* __restrict__ x, const int32_t* __restrict__ rows, int64_t H,
                                   float* __restrict__ out) {
  const T* src = x + static_cast<int64_t>(rows[blockIdx.x]) * H;
  float* dst = out + static_cast<int64_t>(blockIdx.x) * H;
  for (int64_t k = threadIdx.x; k < H; k += blockDim.x) dst[k] = to_f32(src[k]);
}

// The same rows in x's own dtype, 16 bytes per thread (rows of a whole number of 16-byte vectors, both 16-byte
// aligned): one CTA per kCopyRowsPerCta rows.
constexpr int kCopyRowsPerCta = 4;
__global__ void copy_rows_kernel(const uint4* __restrict__ x, const int32_t* __restrict__ rows, int64_t n,
                                 int row_vecs, uint4* __restrict__ out) {
  const int64_t i = int64_t{blockIdx.x} * kCopyRowsPerCta + threadIdx.y;
  if (i >= n) return;
  const uint4* src = x + int64_t{rows[i]} * row_vecs;
  uint4* dst = out + i * row_vecs;
  for (int k = threadIdx.x; k < row_vecs; k += blockDim.x) dst[k] = src[k];
}

// Gather + small linear (GatherLinearArgs): out[i, j] = epilogue(Σ_k x[rows[i], k] · W[j, k] + b[j]) in FP32. A warp
// takes kRows rows at a time (in registers: ITERS vectors of kN = 16 / sizeof(T) values per lane and row; the warps
// loop over the grid), W [N, H] F32 staged in shared memory once per CTA in lane order (the float4 a lane reads for
// column vector (it, q) of label j at ((j · ITERS + it) · kN / 4 + q) · 32 + lane: conflict-free), each W load used
// for the kRows rows; every label's dot products reduced by warp shuffles, lane j storing label j. For heads of up to
// kGatherLinearMaxN labels (the token classifier: 7 on FUNSD). H200, B = 32 padded to 512 (16384 rows): the F32
// gather 34 us + cuBLASLt's SIMT GEMM 32 us before; one row per warp with W in column order 32 us (shared-memory
// bound: all of W read per row, two-way bank conflicts).
constexpr int kGatherLinearWarps = 8;
constexpr int kGatherLinearMaxN = 16;
constexpr int kGatherLinearRows = 4;  // rows per warp of the staged kernel
// kStaged: W staged in shared memory once per CTA, kGatherLinearRows rows per warp (large n). Otherwise (grids of
// fewer CTAs than SMs: B = 1's 512 text rows) every warp takes one row and reads W straight from global memory
// (L1-cached, in row order: a lane's float4s of label j are consecutive): the staging loop and its barrier were most
// of the kernel there (H200, B = 1, from the kernel timeline: 6.1 us on 64 CTAs vs 7.8 us staged on 16).
template <class T, int ITERS, bool kStaged>
__global__ void __launch_bounds__(32 * kGatherLinearWarps) gather_linear_kernel(
    const T* __restrict__ x, const int32_t* __restrict__ rows, int64_t n, const float* __restrict__ W,
    const float* __restrict__ bias, int N, Epilogue epi, float* __restrict__ out) {
  constexpr int kN = Vec<T>::kN, H = 32 * kN * ITERS, kRows = kStaged ? kGatherLinearRows : 1;
  extern __shared__ float4 w4[];
  const int lane = threadIdx.x & 31;
  const float4* Wg = reinterpret_cast<const float4*>(W);
  if constexpr (kStaged) {
    for (int k = threadIdx.x; k < N * H / 4; k += blockDim.x) w4[lane_order_slot<ITERS, kN>(k)] = Wg[k];
    __syncthreads();
  }
  // The float4 q of column vector `it` of label j for this lane.
  auto wvec = [&](int j, int it, int q) {
    if constexpr (kStaged)
      return w4[lane_order_index<ITERS, kN>(j, it, q, lane)];
    else
      return __ldg(Wg + (j * H + (it * 32 + lane) * kN) / 4 + q);
  };
  const int64_t step = int64_t{gridDim.x} * kGatherLinearWarps * kRows;
  for (int64_t i0 = (int64_t{blockIdx.x} * kGatherLinearWarps + (threadIdx.x >> 5)) * kRows; i0 < n; i0 += step) {
    float v[kRows][ITERS][kN];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const T* src = x + int64_t{rows[min(i0 + r, n - 1)]} * H;  // past n: a repeat of the last row, not stored
#pragma unroll
      for (int it = 0; it < ITERS; ++it) load_row_part<T, kN>(src + (it * 32 + lane) * kN, v[r][it]);
    }
    float mine[kRows];
    warp_rows_label_dots(v, N, lane, wvec, mine);
    if (lane < N) {
      const float b = bias ? bias[lane] : 0.f;
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (i0 + r < n) out[(i0 + r) * N + lane] = apply_epilogue(epi, mine[r] + b);
    }
  }
}

template <class T, int ITERS>
void launch_gather_linear(const GatherLinearArgs& a, int N, cudaStream_t stream) {
  constexpr int H = 32 * Vec<T>::kN * ITERS;
  const int sms = std::max(1, device_attribute<cudaDevAttrMultiProcessorCount>());
  const int64_t staged_ctas = ceil_div(a.n, int64_t{kGatherLinearWarps} * kGatherLinearRows);
  const T* x = a.x.as<T>();
  const float* W = a.weight.as<float>();
  const float* b = a.bias.defined() ? a.bias.as<float>() : nullptr;
  if (staged_ctas < sms) {
    const auto grid = static_cast<unsigned>(ceil_div(a.n, int64_t{kGatherLinearWarps}));
    gather_linear_kernel<T, ITERS, false><<<grid, 32 * kGatherLinearWarps, 0, stream>>>(
        x, a.rows, a.n, W, b, N, a.epilogue, a.out.as<float>());
    return;
  }
  const auto grid = static_cast<unsigned>(std::min<int64_t>(staged_ctas, 4 * sms));
  gather_linear_kernel<T, ITERS, true><<<grid, 32 * kGatherLinearWarps, sizeof(float) * N * H, stream>>>(
      x, a.rows, a.n, W, b, N, a.epilogue, a.out.as<float>());
}

template <class T>
__global__ void fill_nan_kernel(T* p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    p[i] = from_f32<T>(__int_as_float(0x7fc00000));
}

}  // namespace

void bias_activation(const TensorView& y, const TensorView& bias, Epilogue epilogue, cudaStream_t stream) {
  const int64_t total = y.numel(), N = y.dim(-1);
  if (total == 0 || (!bias.defined() && epilogue == Epilogue::kNone)) return;
  if (bias.defined() && (bias.dtype != DType::kF32 || bias.numel() != N))
    throw_error(ErrorCode::kInternal, "bias_activation: bias must be F32 [", N, "], got ", dtype_name(bias.dtype), " of ",
                bias.numel());
  const float* b = bias.defined() ? bias.as<float>() : nullptr;
  LRT_DISPATCH_FLOAT(y.dtype, T, {
    constexpr int64_t kN = 16 / sizeof(T);
    if (N % kN == 0 && total / kN < (int64_t{1} << 31) && (reinterpret_cast<uintptr_t>(y.data) & 15u) == 0) {
      const int64_t vectors = total / kN;
      bias_activation_vec_kernel<T><<<grid_for(vectors), kThreads, 0, stream>>>(
          y.as<T>(), b, static_cast<uint32_t>(vectors), static_cast<uint32_t>(N / kN), epilogue);
    } else {
      bias_activation_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(y.as<T>(), b, total, N, epilogue);
    }
  });
  LRT_CUDA_LAUNCHED("bias_activation");
}

void convert_from_f32(const float* src, const TensorView& dst, cudaStream_t stream) {
  if (dst.numel() == 0) return;
  LRT_DISPATCH_FLOAT(dst.dtype, T, {
    convert_kernel<T><<<grid_for(dst.numel()), kThreads, 0, stream>>>(src, dst.as<T>(), dst.numel());
  });
  LRT_CUDA_LAUNCHED("convert_from_f32");
}

void gather_rows(const GatherRowsArgs& a, cudaStream_t stream) {
  if (a.n == 0) return;
  if (a.out.dtype == a.x.dtype && a.out.dtype != DType::kF32) {
    const int64_t row_bytes = a.x.dim(1) * static_cast<int64_t>(dtype_size(a.x.dtype));
    if (row_bytes % 16 != 0 || (reinterpret_cast<uintptr_t>(a.x.data) & 15u) ||
        (reinterpret_cast<uintptr_t>(a.out.data) & 15u))
      throw_error(ErrorCode::kInternal, "gather_rows: rows of ", row_bytes, " bytes are not whole aligned 16-byte vectors");
    const int row_vecs = static_cast<int>(row_bytes / 16);
    copy_rows_kernel<<<static_cast<unsigned>(ceil_div(a.n, int64_t{kCopyRowsPerCta})), dim3(32, kCopyRowsPerCta), 0,
                       stream>>>(static_cast<const uint4*>(a.x.data), a.rows, a.n, row_vecs,
                                 static_cast<uint4*>(a.out.data));
    LRT_CUDA_LAUNCHED("gather_rows");
    return;
  }
  if (a.out.dtype != DType::kF32) throw_error(ErrorCode::kInternal, "gather_rows: output must be F32 or x's dtype");
  LRT_DISPATCH_FLOAT(a.x.dtype, T, {
    gather_rows_kernel<T><<<static_cast<unsigned>(a.n), kThreads, 0, stream>>>(a.x.as<T>(), a.rows, a.x.dim(1),
                                                                                 a.out.as<float>());
  });
  LRT_CUDA_LAUNCHED("gather_rows");
}

bool gather_linear(const GatherLinearArgs& a, cudaStream_t stream) {
  const int64_t H = a.x.dim(1), N = a.weight.dim(0);  // n > 0: the backend returns before calling at n = 0
  if (N > kGatherLinearMaxN || N * H * 4 > 48 * 1024 || a.weight.dtype != DType::kF32 || !aligned16(a.x.data) ||
      !aligned16(a.weight.data))
    return false;  // W beyond the default 48 KB of shared memory per CTA: the caller gathers and runs the GEMM
  bool done = false;
  LRT_DISPATCH_FLOAT(a.x.dtype, T, {
    constexpr int64_t unit = 32 * Vec<T>::kN;
    done = H % unit == 0 && dispatch_count<1, 2, 3, 4, 6>(H / unit, [&](auto iters) {
             launch_gather_linear<T, decltype(iters)::value>(a, static_cast<int>(N), stream);
           });
  });
  if (done) LRT_CUDA_LAUNCHED("gather_linear");
  return done;
}

void fill_nan(const TensorView& t, cudaStream_t stream) {
  if (t.numel() == 0) return;
  if (dtype_is_float(t.dtype) && t.dtype != DType::kF64 && t.dtype != DType::kF8E4M3) {
    LRT_DISPATCH_FLOAT(t.dtype, T, {
      fill_nan_kernel<T><<<grid_for(t.numel()), kThreads, 0, stream>>>(t.as<T>(), t.numel());
    });
    LRT_CUDA_LAUNCHED("fill_nan");
  } else {
    LRT_CUDA(cudaMemsetAsync(t.data, 0xFF, t.nbytes(), stream));
  }
}

}  // namespace layoutrt::cuda
