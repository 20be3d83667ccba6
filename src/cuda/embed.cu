// Text embeddings on the GPU: the twin of cpu::text_embedding (src/cpu/embed.cpp).
//
// Grid: one CTA per text token (num_tokens CTAs), 256 threads. Each CTA gathers the token's rows of the word,
// token-type, position and 2D spatial tables (any float dtype), sums them in FP32 in the same order as transformers
// ((word + token_type) + position, then + concat(x0, y0, x1, y1, h, w)), keeps the row in shared memory, and writes
// LayerNorm(row) (two-pass FP32 statistics) to out[dst_row[i]] in the activation dtype (and unrounded to out_f32, the
// FP32 residual stream, when set).
#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/kernel_util.cuh"

namespace layoutrt::cuda {
namespace {

constexpr int kThreads = 256;

template <class TE, class TO>
__global__ void __launch_bounds__(kThreads) text_embedding_kernel(
    const int32_t* __restrict__ dst_row, const int32_t* __restrict__ token_ids, const int32_t* __restrict__ position_ids,
    const int32_t* __restrict__ token_type_ids, const int32_t* __restrict__ boxes, const TE* __restrict__ word,
    const TE* __restrict__ position, const TE* __restrict__ token_type, const TE* __restrict__ xt,
    const TE* __restrict__ yt, const TE* __restrict__ ht, const TE* __restrict__ wt, const float* __restrict__ ln_w,
    const float* __restrict__ ln_b, float eps, int H, int cw, int sw, TO* __restrict__ out, float* __restrict__ out32) {
  extern __shared__ float row[];
  __shared__ float red[32];
  const int64_t i = blockIdx.x;
  const int4 b = reinterpret_cast<const int4*>(boxes)[i];
  // transformers clips the height/width index to 0..1023 (prepare_batch keeps boxes inside the tables).
  const int hh = min(max(b.w - b.y, 0), 1023), ww = min(max(b.z - b.x, 0), 1023);
  const TE* wr = word + static_cast<int64_t>(token_ids[i]) * H;
  const TE* tr = token_type + static_cast<int64_t>(token_type_ids[i]) * H;
  const TE* pr = position + static_cast<int64_t>(position_ids[i]) * H;
  for (int k = threadIdx.x; k < H; k += blockDim.x) {
    float v = (to_f32(wr[k]) + to_f32(tr[k])) + to_f32(pr[k]);
    float sp;
    if (k < 4 * cw) {
      const int part = k / cw, o = k - part * cw;
      const int coord = part == 0 ? b.x : part == 1 ? b.y : part == 2 ? b.z : b.w;
      sp = to_f32(((part & 1) ? yt : xt)[static_cast<int64_t>(coord) * cw + o]);
    } else {
      const int k2 = k - 4 * cw, part = k2 / sw, o = k2 - part * sw;
      sp = part == 0 ? to_f32(ht[static_cast<int64_t>(hh) * sw + o]) : to_f32(wt[static_cast<int64_t>(ww) * sw + o]);
    }
    row[k] = v + sp;
  }
  __syncthreads();
  const int64_t o = static_cast<int64_t>(dst_row[i]) * H;
  layer_norm_smem_row(row, H, eps, ln_w, ln_b, red, out + o, out32 ? out32 + o : nullptr);
}

}  // namespace

void text_embedding(const TextEmbeddingArgs& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return;
  const int H = static_cast<int>(a.out.dim(1)), cw = static_cast<int>(a.x.dim(1)), sw = static_cast<int>(a.h.dim(1));
  if (4 * cw + 2 * sw != H)
    throw_error(ErrorCode::kInternal, "text_embedding: 4*coordinate_size + 2*shape_size = ", 4 * cw + 2 * sw,
                " != hidden ", H);
  const DType te = a.word.dtype;
  for (const TensorView* t : {&a.position, &a.token_type, &a.x, &a.y, &a.h, &a.w})
    if (t->dtype != te) throw_error(ErrorCode::kInternal, "text_embedding: embedding tables of mixed dtypes");
  const size_t smem = sizeof(float) * H;
  LRT_DISPATCH_FLOAT(te, TE, LRT_DISPATCH_FLOAT(a.out.dtype, TO, {
    text_embedding_kernel<TE, TO><<<static_cast<unsigned>(a.num_tokens), kThreads, smem, stream>>>(
        a.dst_row, a.token_ids, a.position_ids, a.token_type_ids, a.boxes, a.word.as<TE>(), a.position.as<TE>(),
        a.token_type.as<TE>(), a.x.as<TE>(), a.y.as<TE>(), a.h.as<TE>(), a.w.as<TE>(), a.ln_weight.as<float>(),
        a.ln_bias.as<float>(), a.eps, H, cw, sw, a.out.as<TO>(),
        a.out_f32.defined() ? a.out_f32.as<float>() : nullptr);
  }));
  LRT_CUDA_LAUNCHED("text_embedding");
}

}  // namespace layoutrt::cuda
