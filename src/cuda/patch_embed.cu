// Visual embeddings on the GPU: the twins of the two halves of cpu::patch_embedding (src/cpu/embed.cpp) around the
// projection GEMM, which the backend runs through its LinearRunner (patches · Wᵀ).
#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/kernel_util.cuh"

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

// Visual rows. Grid (P+1, batch), one CTA per row, 256 threads: row v of sequence b is
// (v == 0 ? cls : proj[b*P + v-1] + bias) + pos_embed[v] in FP32 (the CPU twin's order), kept in shared memory, then
// LayerNorm (`norm`, eps 1e-6) written to out[cls_row[b] + v].
template <class TP, class TO>
__global__ void __launch_bounds__(kThreads) visual_rows_kernel(
    const TP* __restrict__ proj, const float* __restrict__ bias, const float* __restrict__ cls,
    const float* __restrict__ pos, const float* __restrict__ ln_w, const float* __restrict__ ln_b,
    const int32_t* __restrict__ cls_row, int P, int H, float eps, TO* __restrict__ out) {
  extern __shared__ float row[];
  __shared__ float red[32];
  const int v = blockIdx.x, b = blockIdx.y;
  const TP* src = proj + (static_cast<int64_t>(b) * P + (v > 0 ? v - 1 : 0)) * H;
  for (int k = threadIdx.x; k < H; k += blockDim.x)
    row[k] = (v == 0 ? cls[k] : to_f32(src[k]) + bias[k]) + pos[static_cast<int64_t>(v) * H + k];
  __syncthreads();
  layer_norm_smem_row(row, H, eps, ln_w, ln_b, red, out + (static_cast<int64_t>(cls_row[b]) + v) * H);
}

}  // namespace

void im2col_patches(const PatchEmbeddingArgs& a, cudaStream_t stream) {
  const int G = a.image_size / a.patch_size;
  const int64_t total = a.batch * G * G * int64_t{a.channels} * a.patch_size * a.patch_size;
  if (total == 0) return;
  if (a.patches.numel() < total)
    throw_error(ErrorCode::kInternal, "im2col_patches: scratch holds ", a.patches.numel(), " < ", total, " elements");
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(ceil_div(total, kThreads), 65535L * 16));
  LRT_DISPATCH_FLOAT(a.patches.dtype, T, {
    im2col_kernel<T><<<blocks, kThreads, 0, stream>>>(a.pixels, total, a.channels, a.image_size, a.patch_size, G,
                                                      a.patches.as<T>());
  });
  LRT_CUDA_LAUNCHED("im2col_patches");
}

void visual_rows(const PatchEmbeddingArgs& a, cudaStream_t stream) {
  if (a.batch == 0) return;
  const int G = a.image_size / a.patch_size, P = G * G, H = static_cast<int>(a.out.dim(1));
  const dim3 grid(static_cast<unsigned>(P + 1), static_cast<unsigned>(a.batch));
  LRT_DISPATCH_FLOAT(a.proj.dtype, TP, LRT_DISPATCH_FLOAT(a.out.dtype, TO, {
    visual_rows_kernel<TP, TO><<<grid, kThreads, sizeof(float) * H, stream>>>(
        a.proj.as<TP>(), a.bias.as<float>(), a.cls_token.as<float>(), a.pos_embed.as<float>(), a.ln_weight.as<float>(),
        a.ln_bias.as<float>(), a.cls_row, P, H, a.eps, a.out.as<TO>());
  }));
  LRT_CUDA_LAUNCHED("visual_rows");
}

}  // namespace layoutrt::cuda
