// Visual embeddings on the GPU: the twins of the two halves of cpu::patch_embedding (src/cpu/embed.cpp) around the
// projection GEMM, which the backend runs through its LinearRunner (patches · Wᵀ).
#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/device_info.h"
#include "cuda/kernel_util.cuh"
#include "cuda/pdl.cuh"

namespace layoutrt::cuda {
namespace {

constexpr int kThreads = 256;

// im2col. Grid-stride over the batch*P*K output elements, one thread per element; consecutive threads write
// consecutive columns (coalesced stores; loads are p-contiguous runs of one image row).
template <class T>
__global__ void im2col_kernel(const float* __restrict__ pixels, int64_t total, int C, int S, int p, int G,
                              T* __restrict__ patches) {
  const int64_t K = int64_t{C} * p * p, P = int64_t{G} * G;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t bp = e / K, col = e - bp * K;
    const int64_t b = bp / P, pi = bp - b * P;
    const int py = static_cast<int>(pi / G), px = static_cast<int>(pi - int64_t{py} * G);
    const int c = static_cast<int>(col / (p * p)), rem = static_cast<int>(col - int64_t{c} * p * p);
    const int ky = rem / p, kx = rem - ky * p;
    patches[e] = from_f32<T>(pixels[((b * C + c) * S + py * p + ky) * int64_t{S} + px * p + kx]);
  }
}

// im2col, 16 bytes of output per thread (kN = 16 / sizeof(T) consecutive kx of one image row: one or two float4
// loads): for p a multiple of kN and S of 4, 16-byte aligned pixels and patches, fewer than 2^31 vectors. 32-bit index
// arithmetic. H200, B = 32 (6272 patches): the one-element kernel above took 41 us (64-bit divisions per element).
template <class T>
__global__ void im2col_vec_kernel(const float* __restrict__ pixels, uint32_t vectors, uint32_t row_vecs, int C, int S,
                                  int p, int G, T* __restrict__ patches) {
  constexpr int kN = 16 / sizeof(T);
  const uint32_t P = static_cast<uint32_t>(G) * G, pp = static_cast<uint32_t>(p) * p;
  for (uint32_t e = blockIdx.x * blockDim.x + threadIdx.x; e < vectors; e += gridDim.x * blockDim.x) {
    const uint32_t bp = e / row_vecs, col = (e - bp * row_vecs) * kN;
    const uint32_t b = bp / P, pi = bp - b * P, py = pi / G, px = pi - py * G;
    const uint32_t c = col / pp, rem = col - c * pp, ky = rem / p, kx = rem - ky * p;
    const float* src = pixels + ((int64_t{b} * C + c) * S + py * p + ky) * int64_t{S} + px * p + kx;
    float v[kN];
#pragma unroll
    for (int q = 0; q < kN; q += 4) {
      const float4 f = *reinterpret_cast<const float4*>(src + q);
      v[q] = f.x, v[q + 1] = f.y, v[q + 2] = f.z, v[q + 3] = f.w;
    }
    store_row_part<T, kN>(patches + int64_t{e} * kN, v);
  }
}

// Visual rows. Grid (P+1, batch), one CTA per row, 256 threads: row v of sequence b is
// (v == 0 ? cls : proj[b*P + v-1] + bias) + pos_embed[v] in FP32 (the CPU twin's order), kept in shared memory, then
// LayerNorm (`norm`, eps 1e-6), then the joint LayerNorm where jw is set, written to out[cls_row[b] + v] (and unrounded
// to out32). The general shape; the engine's rows take the warp kernel below.
template <class TP, class TO>
__global__ void __launch_bounds__(kThreads) visual_rows_kernel(
    const TP* __restrict__ proj, const float* __restrict__ bias, const float* __restrict__ cls,
    const float* __restrict__ pos, const float* __restrict__ ln_w, const float* __restrict__ ln_b,
    const float* __restrict__ jw, const float* __restrict__ jb, float jeps, const int32_t* __restrict__ cls_row, int P,
    int H, float eps, TO* __restrict__ out, float* __restrict__ out32) {
  extern __shared__ float row[];
  __shared__ float red[32];
  pdl_wait();  // launched with PDL as the warp kernel below is
  pdl_trigger();
  const int v = blockIdx.x, b = blockIdx.y;
  const TP* src = proj + (static_cast<int64_t>(b) * P + (v > 0 ? v - 1 : 0)) * H;
  for (int k = threadIdx.x; k < H; k += blockDim.x)
    row[k] = (v == 0 ? cls[k] : to_f32(src[k]) + bias[k]) + pos[static_cast<int64_t>(v) * H + k];
  __syncthreads();
  const int64_t o = (static_cast<int64_t>(cls_row[b]) + v) * H;
  layer_norm_smem_row_joint(row, H, eps, ln_w, ln_b, jw, jb, jeps, red, out + o, out32 ? out32 + o : nullptr);
}

// Visual rows, warp per row (kWarpRows rows per CTA, rows of sequence b at blockIdx.y): the same sums and `norm`,
// the row in registers (ITERS vectors of kN = 16 / sizeof(TO) values per lane: H = 768 in F16 is 3); with kJoint the
// joint LayerNorm follows in registers (JointNorm: the `norm` result rounded to TO first unless out32 is set).
// Launched with PDL (device_info.h launch_kernel): the parameters are read before the wait for the projection GEMM; in
// one-lane forwards the launch is resident while that GEMM runs (backend_cuda.cu early_filter).
constexpr int kWarpRows = 4;
template <class TP, class TO, int ITERS, bool kJoint>
__global__ void __launch_bounds__(32 * kWarpRows) visual_rows_warp_kernel(
    const TP* __restrict__ proj, const float* __restrict__ bias, const float* __restrict__ cls,
    const float* __restrict__ pos, const float* __restrict__ ln_w, const float* __restrict__ ln_b, float eps,
    const float* __restrict__ jw, const float* __restrict__ jb, float jeps, const int32_t* __restrict__ cls_row, int P,
    TO* __restrict__ out, float* __restrict__ out32) {
  constexpr int kN = Vec<TO>::kN, H = 32 * kN * ITERS;
  const int lane = threadIdx.x & 31, v = blockIdx.x * kWarpRows + (threadIdx.x >> 5), b = blockIdx.y;
  // The parameters (bias, CLS token, position embedding) are read before the programmatic wait: no kernel writes them.
  float x[ITERS][kN], pv[ITERS][kN];
  const bool in = v <= P;
  if (in) {
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
      const int col = (it * 32 + lane) * kN;
      load_row_part<float, kN>(pos + static_cast<int64_t>(v) * H + col, pv[it]);
      load_row_part<float, kN>(v == 0 ? cls + col : bias + col, x[it]);
    }
  }
  pdl_wait();  // the projection (the GEMM before) and the rows' other readers / writers
  pdl_trigger();
  if (!in) return;
  const TP* src = proj + (static_cast<int64_t>(b) * P + (v > 0 ? v - 1 : 0)) * H;
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int col = (it * 32 + lane) * kN;
    if (v > 0) {
      float pr[kN];
      load_row_part<TP, kN>(src + col, pr);
#pragma unroll
      for (int e = 0; e < kN; ++e) x[it][e] = pr[e] + x[it][e];
    }
#pragma unroll
    for (int e = 0; e < kN; ++e) x[it][e] += pv[it][e];
  }
  warp_row_norm_joint<kJoint, TO>(x, lane, ln_w, ln_b, eps, jw, jb, jeps, out32 != nullptr);
  const int64_t o = (static_cast<int64_t>(cls_row[b]) + v) * H;
  warp_row_store(x, lane, out + o, out32 ? out32 + o : nullptr);
}

template <class TP, class TO, int ITERS>
void launch_visual_warp(const PatchEmbeddingArgs& a, int P, float* out32, cudaStream_t stream) {
  const dim3 grid(ceil_div(P + 1, kWarpRows), static_cast<unsigned>(a.batch));
  const bool joint = a.joint.defined();
  auto kernel = joint ? visual_rows_warp_kernel<TP, TO, ITERS, true> : visual_rows_warp_kernel<TP, TO, ITERS, false>;
  LRT_CUDA(launch_kernel(kernel, grid, dim3(32 * kWarpRows), 0, stream, a.proj.as<TP>(), a.bias.as<float>(),
                         a.cls_token.as<float>(), a.pos_embed.as<float>(), a.ln_weight.as<float>(),
                         a.ln_bias.as<float>(), a.eps, joint ? a.joint.weight.as<float>() : nullptr,
                         joint ? a.joint.bias.as<float>() : nullptr, a.joint.eps, a.cls_row, P, a.out.as<TO>(),
                         out32));
}

// The warp kernel where it applies (H = 32 · kN · ITERS for ITERS ≤ 4, whole 16-byte vectors of the projection's
// dtype, aligned pointers); false otherwise.
template <class TP, class TO>
bool try_visual_warp(const PatchEmbeddingArgs& a, int P, int H, float* out32, cudaStream_t stream) {
  constexpr int kN = Vec<TO>::kN;
  if constexpr (kN * sizeof(TP) % 16 != 0) {
    return false;
  } else {
    if (H % (32 * kN) != 0) return false;
    for (const void* p : {a.proj.data, a.bias.data, a.cls_token.data, a.pos_embed.data, a.ln_weight.data,
                          a.ln_bias.data, a.out.data})
      if (!aligned16(p)) return false;
    if ((out32 && !aligned16(out32)) ||
        (a.joint.defined() && (!aligned16(a.joint.weight.data) || !aligned16(a.joint.bias.data))))
      return false;
    return dispatch_count<1, 2, 3, 4>(H / (32 * kN), [&](auto iters) {
      launch_visual_warp<TP, TO, decltype(iters)::value>(a, P, out32, stream);
    });
  }
}

}  // namespace

void im2col_patches(const PatchEmbeddingArgs& a, cudaStream_t stream) {
  const int G = a.image_size / a.patch_size;
  const int64_t K = int64_t{a.channels} * a.patch_size * a.patch_size;
  const int64_t total = a.batch * G * G * K;
  if (total == 0) return;
  if (a.patches.numel() < total)
    throw_error(ErrorCode::kInternal, "im2col_patches: scratch holds ", a.patches.numel(), " < ", total, " elements");
  LRT_DISPATCH_FLOAT(a.patches.dtype, T, {
    constexpr int kN = 16 / sizeof(T);
    if (a.patch_size % kN == 0 && a.image_size % 4 == 0 && total / kN < (int64_t{1} << 31) && aligned16(a.pixels) &&
        aligned16(a.patches.data)) {
      const int64_t vectors = total / kN;
      const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(ceil_div(vectors, kThreads), 1 << 20));
      im2col_vec_kernel<T><<<blocks, kThreads, 0, stream>>>(a.pixels, static_cast<uint32_t>(vectors),
                                                            static_cast<uint32_t>(K / kN), a.channels, a.image_size,
                                                            a.patch_size, G, a.patches.as<T>());
    } else {
      const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(ceil_div(total, kThreads), 65535L * 16));
      im2col_kernel<T><<<blocks, kThreads, 0, stream>>>(a.pixels, total, a.channels, a.image_size, a.patch_size, G,
                                                        a.patches.as<T>());
    }
  });
  LRT_CUDA_LAUNCHED("im2col_patches");
}

void visual_rows(const PatchEmbeddingArgs& a, cudaStream_t stream) {
  if (a.batch == 0) return;
  const int G = a.image_size / a.patch_size, P = G * G, H = static_cast<int>(a.out.dim(1));
  float* out32 = a.out_f32.defined() ? a.out_f32.as<float>() : nullptr;
  LRT_DISPATCH_FLOAT(a.proj.dtype, TP, LRT_DISPATCH_FLOAT(a.out.dtype, TO, {
    if (!try_visual_warp<TP, TO>(a, P, H, out32, stream)) {
      const bool joint = a.joint.defined();
      const dim3 grid(static_cast<unsigned>(P + 1), static_cast<unsigned>(a.batch));
      LRT_CUDA(launch_kernel(visual_rows_kernel<TP, TO>, grid, dim3(kThreads), sizeof(float) * H, stream,
                             a.proj.as<TP>(), a.bias.as<float>(), a.cls_token.as<float>(), a.pos_embed.as<float>(),
                             a.ln_weight.as<float>(), a.ln_bias.as<float>(),
                             joint ? a.joint.weight.as<float>() : nullptr, joint ? a.joint.bias.as<float>() : nullptr,
                             a.joint.eps, a.cls_row, P, H, a.eps, a.out.as<TO>(), out32));
    }
  }));
  LRT_CUDA_LAUNCHED("visual_rows");
}

}  // namespace layoutrt::cuda
