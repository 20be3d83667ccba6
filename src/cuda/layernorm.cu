// LayerNorm and (x + x_bias) + residual -> LayerNorm on the GPU: the twin of cpu::layer_norm (src/cpu/layernorm.cpp).
//
// Two kernels, one arithmetic (sum in FP32 as (x + x_bias) + residual, two-pass FP32 statistics, affine with F32
// weights, one rounding to out's dtype):
//  - warp-per-row (the engine's shapes): a warp owns a row and holds it in registers, 16-byte vector loads/stores,
//    statistics by warp shuffles only — no shared memory, no __syncthreads. Used when the row is a whole number of
//    32 lanes × 16-byte vectors, at most kMaxIters vectors per lane (H = 768 in F16: 3; in F32: 6; H = 1024 F16: 4),
//    and every pointer is 16-byte aligned. 4 rows per 128-thread CTA. Launches of up to kEarlyAffineRows rows load
//    the affine's weight and bias with the row (latency-bound: about one wave of rows), larger ones after the
//    statistics (fewer registers, more rows in flight); see launch_warp.
//  - CTA-per-row (anything else): 256 threads stage the row in shared memory, block reductions.
//  - the last LayerNorm with the head's first linear (layer_norm_head, Backend::layer_norm_gather_linear): the warp
//    kernel's row arithmetic, then gather_linear's dot products on the row rounded to the dtype — the same bits as
//    the two kernels, one launch fewer at the forward's end (H200, B = 1: −2 us, 2026-12-04-h200-ln-head.md).
// `out` and `out_f32` may alias x or the residual in both: every element is read before its own position is written,
// by the same thread.
// FP32 residual stream (LayerNormArgs::out_f32): x and out in the activation dtype, the residual read and the result
// also written in FP32, so the stream that carries every layer's output is rounded to FP16/BF16 only where a GEMM
// reads it; the embeddings' joint LayerNorm reads FP32 x. Same arithmetic, one more store.
// x_bias is the bias of the linear that produced x (forward.cpp folds the out-projection and FFN-output biases here):
// added in FP32, so FP16/BF16 plans round the linear's output once less.
// L2 hint (LayerNormArgs::l2_prefetch): in the CTA-per-row kernel and in the warp kernel's launches with early affine
// loads, the first thread of each CTA issues cp.async.bulk.prefetch.L2 over a share of each named range (the weights
// of the GEMMs after this pass) before the PDL wait: the pass is launched while the GEMM before it runs (graphs.cu),
// so the next GEMMs' first weight tiles come from L2 rather than HBM (forward.cpp l2_hints_for: B = 1 −4 – 9 us).
// Why a pass of its own after the linear (H200, fp16, B = 1; bench/results/): folded into the producing GEMM with
// whole rows per CTA cluster (2026-12-01-h200-fused-linear-layernorm.md), with the column tiles meeting at a
// global-memory barrier to combine row statistics (2026-12-03-h200-fused-ln-barrier.md: the barrier ~4 us per
// layer, B = 1 0.71 vs 0.63 ms), or into the consuming FFN GEMM (2026-12-02-h200-layernorm-fold.md,
// 2026-12-03-h200-ln-fold.md), each cost more than this launch.
#include "cuda/async_copy.cuh"
#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/device_info.h"
#include "cuda/kernel_util.cuh"

namespace layoutrt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpRowsPerCta = 4;
constexpr int kMaxIters = 8;

// LayerNormArgs::l2_prefetch as the kernels' hint: device ranges only, each from a 16-byte boundary, cut to a multiple
// of 16 bytes (what cp.async.bulk.prefetch takes).
L2Hint l2_hint(const LayerNormArgs& a) {
  auto range = [](const TensorView& t, const char*& p, unsigned long long& n) {
    if (!t.defined() || t.device != Device::kCUDA || !aligned16(t.data)) return;
    p = static_cast<const char*>(t.data);
    n = t.nbytes() & ~size_t{15};
  };
  L2Hint h;
  static_assert(L2Hint::kRanges == sizeof(a.l2_prefetch) / sizeof(a.l2_prefetch[0]), "one range per tensor");
  for (int i = 0; i < L2Hint::kRanges; ++i) range(a.l2_prefetch[i], h.p[i], h.n[i]);
  return h;
}

// CTA-per-row: x, residual and out may each have their own float dtype (FP32 residual stream, see LayerNormArgs);
// out32, when set, receives the same row unrounded.
template <class TX, class TR, class TO>
__global__ void __launch_bounds__(kThreads) layer_norm_kernel(const TX* x, const TR* residual,
                                                               const float* __restrict__ x_bias,
                                                               const float* __restrict__ w, const float* __restrict__ b,
                                                               int n, float eps, TO* out, float* out32,
                                                               L2Hint hint) {
  extern __shared__ float row[];
  __shared__ float red[32];
  l2_prefetch_share(hint);
  pdl_wait();
  pdl_trigger();
  const int64_t r = blockIdx.x;
  const TX* xr = x + r * n;
  const TR* rr = residual ? residual + r * n : nullptr;
  for (int k = threadIdx.x; k < n; k += blockDim.x) {
    float v = to_f32(xr[k]);
    if (x_bias) v += x_bias[k];
    if (rr) v += to_f32(rr[k]);
    row[k] = v;
  }
  __syncthreads();
  layer_norm_smem_row(row, n, eps, w, b, red, out + r * n, out32 ? out32 + r * n : nullptr);
}

// Column vector `it` of the affine's weight and bias for this lane, in the warp kernels' layout.
template <int ITERS, int kN>
__device__ __forceinline__ void load_affine_part(const float* __restrict__ w, const float* __restrict__ b, int lane,
                                                 int it, float (&wv)[ITERS][kN], float (&bv)[ITERS][kN]) {
  const int col = (it * 32 + lane) * kN;
#pragma unroll
  for (int e = 0; e < kN; e += 4) {
    const float4 ww = *reinterpret_cast<const float4*>(w + col + e);
    const float4 bb = *reinterpret_cast<const float4*>(b + col + e);
    wv[it][e] = ww.x, wv[it][e + 1] = ww.y, wv[it][e + 2] = ww.z, wv[it][e + 3] = ww.w;
    bv[it][e] = bb.x, bv[it][e + 1] = bb.y, bv[it][e + 2] = bb.z, bv[it][e + 3] = bb.w;
  }
}
// (x + x_bias) + residual of kN values: x[off ..], x_bias[col ..], residual[off ..] (x_bias, residual optional).
template <class TX, class TR, int kN>
__device__ __forceinline__ void load_sum_part(const TX* x, const TR* residual, const float* __restrict__ x_bias,
                                              int64_t off, int col, float (&v)[kN]) {
  load_row_part<TX, kN>(x + off, v);
  if (x_bias) {
#pragma unroll
    for (int e = 0; e < kN; e += 4) {
      const float4 bb = *reinterpret_cast<const float4*>(x_bias + col + e);
      v[e] += bb.x, v[e + 1] += bb.y, v[e + 2] += bb.z, v[e + 3] += bb.w;
    }
  }
  if (residual) {
    float rv[kN];
    load_row_part<TR, kN>(residual + off, rv);
#pragma unroll
    for (int e = 0; e < kN; ++e) v[e] += rv[e];
  }
}

// Warp-per-row. A lane handles ITERS vectors of 16 bytes of the OUTPUT dtype (kN = 16 / sizeof(TO) values each);
// x and the residual (TO or wider, e.g. an FP32 residual stream) are loaded as the same kN values.
template <class TX, class TR, class TO, int ITERS, bool kOut32, bool kEarly>
__global__ void __launch_bounds__(32 * kWarpRowsPerCta) layer_norm_warp_kernel(
    const TX* x, const TR* residual, const float* __restrict__ x_bias, const float* __restrict__ w,
    const float* __restrict__ b, int64_t rows, float eps, TO* out, float* out32, L2Hint hint) {
  constexpr int kN = Vec<TO>::kN;
  constexpr int n = 32 * kN * ITERS;
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpRowsPerCta + (threadIdx.x >> 5);
  // The affine's weight and bias: with kEarly loaded first, before the reductions, so their latency does not sit
  // between the statistics and the stores (for launches of about one wave of rows: latency-bound) — and before the
  // wait for the kernel before this one (programmatic dependent launch, device_info.h: weights, not its output);
  // otherwise where they are used (fewer registers, more rows in flight: the bandwidth-bound large launches). See
  // launch_warp.
  float v[ITERS][kN], wv[ITERS][kN], bv[ITERS][kN];
  auto load_affine = [&](int it) { load_affine_part(w, b, lane, it, wv, bv); };
  if constexpr (kEarly) {
    if (r < rows) {
#pragma unroll
      for (int it = 0; it < ITERS; ++it) load_affine(it);
    }
    l2_prefetch_share(hint);  // small launches only (the large ones are bandwidth-bound; and it costs them spills)
  }
  pdl_wait();
  pdl_trigger();
  if (r >= rows) return;
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int col = (it * 32 + lane) * kN;
    load_sum_part<TX, TR, kN>(x, residual, x_bias, r * n + col, col, v[it]);
  }
  float mean, inv;
  warp_row_stats(v, eps, mean, inv);
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int col = (it * 32 + lane) * kN;
    if constexpr (!kEarly) load_affine(it);
#pragma unroll
    for (int e = 0; e < kN; ++e) v[it][e] = (v[it][e] - mean) * inv * wv[it][e] + bv[it][e];
    store_row_part<TO, kN>(out + r * n + col, v[it]);
    if constexpr (kOut32) store_row_part<float, kN>(out32 + r * n + col, v[it]);
  }
}

// The last LayerNorm fused with the head's first linear (layer_norm_head): warp i normalises row rows[i] of x exactly
// as layer_norm_warp_kernel does (one dtype T, early affine loads), stores it, and computes label j of logits row i
// from the row rounded to T — what gather_linear reads back — with the same dot products (warp_rows_label_dots). W
// is staged in shared memory in lane order with cp.async (read label by label from L2, the labels' loads were a
// chain of round trips: gather_linear's 6.5 us at B = 1). rows: a permutation of x's rows (each row normalised once),
// uploaded before the forward (read before the wait).
constexpr int kHeadRowsPerCta = 16;
template <class T, int ITERS>
__global__ void __launch_bounds__(32 * kHeadRowsPerCta) layer_norm_head_kernel(
    const T* x, const T* residual, const float* __restrict__ x_bias, const float* __restrict__ w,
    const float* __restrict__ b, const int32_t* __restrict__ rows, int64_t n, float eps, T* out,
    const float* __restrict__ W, const float* __restrict__ head_bias, int labels, Epilogue epi,
    float* __restrict__ logits, L2Hint hint) {
  constexpr int kN = Vec<T>::kN;
  constexpr int H = 32 * kN * ITERS;
  extern __shared__ __align__(16) float4 w4[];
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kHeadRowsPerCta + (threadIdx.x >> 5);
  const bool active = i < n;  // no early return: every thread meets the barrier after W's copies
  // W's copies first, before the wait: they overlap the GEMM before this kernel. 16 rows per CTA keep their L2
  // traffic (W per CTA) low: with 4 rows per CTA (128 CTAs at B = 1, 2.7 MB) they slowed that GEMM by 3 us; issued
  // after the wait they put 8 us on the critical path (H200, kernel timeline).
  const float4* Wg = reinterpret_cast<const float4*>(W);
  for (int k = threadIdx.x; k < labels * H / 4; k += blockDim.x)
    cp_async_16(smem_u32(w4 + lane_order_slot<ITERS, kN>(k)), Wg + k, true);
  cp_async_commit();
  float v[1][ITERS][kN], wv[ITERS][kN], bv[ITERS][kN];
  const int64_t r = active ? rows[i] : 0;
#pragma unroll
  for (int it = 0; it < ITERS; ++it) load_affine_part(w, b, lane, it, wv, bv);
  l2_prefetch_share(hint);
  pdl_wait();
  pdl_trigger();
  if (active) {
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
      const int col = (it * 32 + lane) * kN;
      load_sum_part<T, T, kN>(x, residual, x_bias, r * H + col, col, v[0][it]);
    }
    float mean, inv;
    warp_row_stats(v[0], eps, mean, inv);
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
      const int col = (it * 32 + lane) * kN;
#pragma unroll
      for (int e = 0; e < kN; ++e) v[0][it][e] = (v[0][it][e] - mean) * inv * wv[it][e] + bv[it][e];
      store_row_part<T, kN>(out + r * H + col, v[0][it]);
    }
    round_row_to<T>(v[0]);
  }
  cp_async_wait_all();
  __syncthreads();  // W staged
  if (!active) return;
  float mine[1];
  auto wvec = [&](int j, int it, int q) { return w4[lane_order_index<ITERS, kN>(j, it, q, lane)]; };
  warp_rows_label_dots(v, labels, lane, wvec, mine);
  if (lane < labels) logits[i * labels + lane] = apply_epilogue(epi, mine[0] + (head_bias ? head_bias[lane] : 0.f));
}

// Early affine loads (kEarly) up to kEarlyAffineRows rows and where the row's weight and bias fit in registers beside
// it (≤ 24 values per lane: H = 768; wider rows spill). H200, fp16 forward, three alternating runs each (bench/results/
// 2026-12-01-h200-layernorm-early-affine.md): B = 1 (709 rows) 0.712 vs 0.730 ms, B = 8 (two lanes of 2836 rows)
// 2.657 vs 2.693 ms, but B = 32 (lanes of 11344 rows) 9.614 vs 9.507 ms — there the extra registers cost occupancy.
constexpr int64_t kEarlyAffineRows = 4096;
template <class TX, class TR, class TO, int ITERS>
void launch_warp(const LayerNormArgs& a, const float* xb, float* out32, int64_t rows, cudaStream_t stream) {
  constexpr bool kFits = ITERS * Vec<TO>::kN <= 24;
  const bool early = kFits && rows <= kEarlyAffineRows;
  auto kernel = out32 ? (early ? layer_norm_warp_kernel<TX, TR, TO, ITERS, true, kFits>
                               : layer_norm_warp_kernel<TX, TR, TO, ITERS, true, false>)
                      : (early ? layer_norm_warp_kernel<TX, TR, TO, ITERS, false, kFits>
                               : layer_norm_warp_kernel<TX, TR, TO, ITERS, false, false>);
  LRT_CUDA(launch_kernel(kernel, dim3(static_cast<unsigned>(ceil_div(rows, kWarpRowsPerCta))),
                         dim3(32 * kWarpRowsPerCta), 0, stream, a.x.as<TX>(),
                         a.residual.defined() ? a.residual.as<TR>() : nullptr, xb, a.weight.as<float>(),
                         a.bias.as<float>(), rows, a.eps, a.out.as<TO>(), out32, l2_hint(a)));
}

// The warp kernel's instantiation for n = 32 · (16 / sizeof(TO)) · iters; false where none applies.
template <class TX, class TR, class TO>
bool try_warp(const LayerNormArgs& a, const float* xb, float* out32, int64_t rows, int64_t n, cudaStream_t stream) {
  constexpr int64_t unit = 32 * Vec<TO>::kN;
  // A wider x or residual than the output (the FP32 stream) holds twice the registers per vector: its warp kernel
  // stops at 4 vectors per lane (H = 1024 in F16/BF16; ptxas spills at 5 and 7); wider rows take the CTA kernel.
  constexpr int64_t max_iters = sizeof(TX) > sizeof(TO) || sizeof(TR) > sizeof(TO) ? 4 : kMaxIters;
  if (n % unit != 0 || n / unit > max_iters) return false;
  for (const void* p : {a.x.data, a.out.data, a.weight.data, a.bias.data})
    if (!aligned16(p)) return false;
  if ((a.residual.defined() && !aligned16(a.residual.data)) || (xb && !aligned16(xb)) || (out32 && !aligned16(out32)))
    return false;
  auto run = [&](auto iters) { launch_warp<TX, TR, TO, decltype(iters)::value>(a, xb, out32, rows, stream); };
  if constexpr (max_iters > 4) return dispatch_count<1, 2, 3, 4, 5, 6, 7, 8>(n / unit, run);
  else return dispatch_count<1, 2, 3, 4>(n / unit, run);
}

template <class TX, class TR, class TO>
void launch(const LayerNormArgs& a, const float* xb, int64_t rows, int64_t n, cudaStream_t stream) {
  float* out32 = a.out_f32.defined() ? a.out_f32.as<float>() : nullptr;
  if (!try_warp<TX, TR, TO>(a, xb, out32, rows, n, stream))
    LRT_CUDA(launch_kernel(layer_norm_kernel<TX, TR, TO>, dim3(static_cast<unsigned>(rows)), dim3(kThreads),
                           sizeof(float) * n, stream, a.x.as<TX>(), a.residual.defined() ? a.residual.as<TR>() : nullptr,
                           xb, a.weight.as<float>(), a.bias.as<float>(), static_cast<int>(n), a.eps, a.out.as<TO>(),
                           out32, l2_hint(a)));
}

template <class T, int ITERS>
void launch_head(const LayerNormArgs& a, const GatherLinearArgs& h, cudaStream_t stream) {
  const size_t smem = sizeof(float) * size_t(h.weight.dim(0)) * size_t(a.x.dim(1));
  LRT_CUDA(launch_kernel(layer_norm_head_kernel<T, ITERS>, dim3(ceil_div(h.n, kHeadRowsPerCta)),
                         dim3(32 * kHeadRowsPerCta), smem, stream, a.x.as<T>(),
                         a.residual.defined() ? a.residual.as<T>() : nullptr,
                         a.x_bias.defined() ? a.x_bias.as<float>() : nullptr, a.weight.as<float>(), a.bias.as<float>(),
                         h.rows, h.n, a.eps, a.out.as<T>(), h.weight.as<float>(),
                         h.bias.defined() ? h.bias.as<float>() : nullptr, static_cast<int>(h.weight.dim(0)),
                         h.epilogue, h.out.as<float>(), l2_hint(a)));
}

}  // namespace

void layer_norm(const LayerNormArgs& a, cudaStream_t stream) {
  const int64_t rows = a.x.dim(0), n = a.x.dim(1);
  if (rows == 0) return;
  // Dtype combinations: all one dtype (x, residual, out); or an FP32 residual stream (LayerNormArgs::out_f32) with x
  // and out in the activation dtype; or x FP32 without a residual (the embeddings' joint LayerNorm reading the FP32
  // stream).
  const DType act = a.out.dtype;
  const bool res32 = a.residual.defined() && a.residual.dtype == DType::kF32 && act != DType::kF32;
  const bool x32 = a.x.dtype == DType::kF32 && act != DType::kF32;
  if (x32 ? a.residual.defined() : (a.x.dtype != act || (a.residual.defined() && !res32 && a.residual.dtype != act)))
    throw_error(ErrorCode::kInternal, "layer_norm: unsupported dtypes x ", dtype_name(a.x.dtype), ", residual ",
                a.residual.defined() ? dtype_name(a.residual.dtype) : "none", ", out ", dtype_name(act));
  if (a.out_f32.defined() && a.out_f32.dtype != DType::kF32)
    throw_error(ErrorCode::kInternal, "layer_norm: out_f32 must be F32");
  if (a.weight.dtype != DType::kF32 || a.bias.dtype != DType::kF32 ||
      (a.x_bias.defined() && a.x_bias.dtype != DType::kF32))
    throw_error(ErrorCode::kInternal, "layer_norm: weight, bias and x_bias must be F32");
  const float* xb = a.x_bias.defined() ? a.x_bias.as<float>() : nullptr;
  LRT_DISPATCH_FLOAT(act, T, {
    if (x32) launch<float, T, T>(a, xb, rows, n, stream);
    else if (res32) launch<T, float, T>(a, xb, rows, n, stream);
    else launch<T, T, T>(a, xb, rows, n, stream);
  });
  LRT_CUDA_LAUNCHED("layer_norm");
}

bool layer_norm_head(const LayerNormArgs& a, const GatherLinearArgs& h, cudaStream_t stream) {
  const int64_t rows = a.x.dim(0), H = a.x.dim(1), N = h.weight.dim(0);
  const DType t = a.out.dtype;
  if (rows == 0 || h.n != rows || a.out_f32.defined() || a.x.dtype != t || h.x.dtype != t || h.x.data != a.out.data ||
      (a.residual.defined() && a.residual.dtype != t) || N > 32 || h.weight.dtype != DType::kF32 ||
      (h.bias.defined() && h.bias.dtype != DType::kF32) || N * H * 4 > 48 * 1024 || a.weight.dtype != DType::kF32 ||
      a.bias.dtype != DType::kF32 || (a.x_bias.defined() && a.x_bias.dtype != DType::kF32))
    return false;
  for (const TensorView* v : {&a.x, &a.residual, &a.weight, &a.bias, &a.x_bias, &a.out, &h.weight})
    if (v->defined() && !aligned16(v->data)) return false;
  bool done = false;
  LRT_DISPATCH_FLOAT(t, T, {
    constexpr int64_t unit = 32 * Vec<T>::kN;
    // Rows of whole vectors whose weight and bias fit in registers beside them (≤ 24 values per lane: H = 768; the
    // instantiations of 2 and 4 vectors per lane spill under the 512-thread bound, and no model here has them).
    if (H % unit == 0 && H / unit * Vec<T>::kN <= 24)
      done = dispatch_count<3, 6>(H / unit, [&](auto iters) {
        if constexpr (decltype(iters)::value * Vec<T>::kN <= 24) launch_head<T, decltype(iters)::value>(a, h, stream);
      });
  });
  if (done) LRT_CUDA_LAUNCHED("layer_norm_head");
  return done;
}

}  // namespace layoutrt::cuda
