// Text embeddings on the GPU: the twin of cpu::text_embedding (src/cpu/embed.cpp).
//
// Each text token's rows of the word, token-type, position and 2D spatial tables (any float dtype) are summed in FP32
// in the same order as transformers ((word + token_type) + position, then + concat(x0, y0, x1, y1, h, w)), then
// LayerNorm (two-pass FP32 statistics) is written to out[dst_row[i]] in the activation dtype (and unrounded to
// out_f32, the FP32 residual stream, when set); with a JointNorm the model's joint LayerNorm follows in the same pass.
// Two kernels: warp per token (the engine's shapes: the row in registers, 16-byte loads, shuffles only; H200, B = 32
// padded to 512 tokens: the CTA kernel took 80 us), and CTA per token (256 threads, the row in shared memory) for
// any other shape.
#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/device_info.h"
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
    const float* __restrict__ ln_b, float eps, const float* __restrict__ jw, const float* __restrict__ jb, float jeps,
    int H, int cw, int sw, TO* __restrict__ out, float* __restrict__ out32) {
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
  layer_norm_smem_row_joint(row, H, eps, ln_w, ln_b, jw, jb, jeps, red, out + o, out32 ? out32 + o : nullptr);
}

// Warp per token, kWarpRows tokens per CTA: lane `lane` holds ITERS vectors of kN = 16 / sizeof(TO) columns. Every
// table row is loaded in 16-byte pieces of kN values (cw and sw multiples of kN: no piece straddles two spatial parts).
constexpr int kWarpRows = 4;
template <class TE, class TO, int ITERS, bool kJoint>
__global__ void __launch_bounds__(32 * kWarpRows) text_embedding_warp_kernel(
    int64_t num_tokens, const int32_t* __restrict__ dst_row, const int32_t* __restrict__ token_ids,
    const int32_t* __restrict__ position_ids, const int32_t* __restrict__ token_type_ids,
    const int32_t* __restrict__ boxes, const TE* __restrict__ word, const TE* __restrict__ position,
    const TE* __restrict__ token_type, const TE* __restrict__ xt, const TE* __restrict__ yt, const TE* __restrict__ ht,
    const TE* __restrict__ wt, const float* __restrict__ ln_w, const float* __restrict__ ln_b, float eps,
    const float* __restrict__ jw, const float* __restrict__ jb, float jeps, int cw, int sw, TO* __restrict__ out,
    float* __restrict__ out32) {
  constexpr int kN = Vec<TO>::kN, H = 32 * kN * ITERS;
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpRows + (threadIdx.x >> 5);
  if (i >= num_tokens) return;
  const int4 b = reinterpret_cast<const int4*>(boxes)[i];
  const int hh = min(max(b.w - b.y, 0), 1023), ww = min(max(b.z - b.x, 0), 1023);  // as the CTA kernel
  const TE* wr = word + static_cast<int64_t>(token_ids[i]) * H;
  const TE* tr = token_type + static_cast<int64_t>(token_type_ids[i]) * H;
  const TE* pr = position + static_cast<int64_t>(position_ids[i]) * H;
  float v[ITERS][kN];
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int k = (it * 32 + lane) * kN;
    float a[kN], t[kN], p[kN], sp[kN];
    load_row_part<TE, kN>(wr + k, a);
    load_row_part<TE, kN>(tr + k, t);
    load_row_part<TE, kN>(pr + k, p);
    const TE* spr;
    if (k < 4 * cw) {
      const int part = k / cw, o = k - part * cw;
      const int coord = part == 0 ? b.x : part == 1 ? b.y : part == 2 ? b.z : b.w;
      spr = ((part & 1) ? yt : xt) + static_cast<int64_t>(coord) * cw + o;
    } else {
      const int k2 = k - 4 * cw, part = k2 / sw, o = k2 - part * sw;
      spr = part == 0 ? ht + static_cast<int64_t>(hh) * sw + o : wt + static_cast<int64_t>(ww) * sw + o;
    }
    load_row_part<TE, kN>(spr, sp);
#pragma unroll
    for (int e = 0; e < kN; ++e) v[it][e] = ((a[e] + t[e]) + p[e]) + sp[e];
  }
  warp_row_norm_joint<kJoint, TO>(v, lane, ln_w, ln_b, eps, jw, jb, jeps, out32 != nullptr);
  const int64_t o = static_cast<int64_t>(dst_row[i]) * H;
  warp_row_store(v, lane, out + o, out32 ? out32 + o : nullptr);
}

template <class TE, class TO, int ITERS>
void launch_warp(const TextEmbeddingArgs& a, int cw, int sw, float* out32, cudaStream_t stream) {
  const bool joint = a.joint.defined();
  auto kernel =
      joint ? text_embedding_warp_kernel<TE, TO, ITERS, true> : text_embedding_warp_kernel<TE, TO, ITERS, false>;
  kernel<<<ceil_div(a.num_tokens, kWarpRows), 32 * kWarpRows, 0, stream>>>(
      a.num_tokens, a.dst_row, a.token_ids, a.position_ids, a.token_type_ids, a.boxes, a.word.as<TE>(),
      a.position.as<TE>(), a.token_type.as<TE>(), a.x.as<TE>(), a.y.as<TE>(), a.h.as<TE>(), a.w.as<TE>(),
      a.ln_weight.as<float>(), a.ln_bias.as<float>(), a.eps, joint ? a.joint.weight.as<float>() : nullptr,
      joint ? a.joint.bias.as<float>() : nullptr, a.joint.eps, cw, sw, a.out.as<TO>(), out32);
}

// The warp kernel where it applies (H = 32 · kN · ITERS for ITERS ≤ 4; cw, sw multiples of kN; whole aligned 16-byte
// pieces of the tables' dtype); false otherwise.
template <class TE, class TO>
bool try_warp(const TextEmbeddingArgs& a, int H, int cw, int sw, float* out32, cudaStream_t stream) {
  constexpr int kN = Vec<TO>::kN;
  if constexpr (kN * sizeof(TE) % 16 != 0) {
    return false;
  } else {
    if (H % (32 * kN) != 0 || cw % kN != 0 || sw % kN != 0) return false;
    for (const TensorView* t : {&a.word, &a.position, &a.token_type, &a.x, &a.y, &a.h, &a.w, &a.ln_weight, &a.ln_bias,
                                &a.out})
      if (!aligned16(t->data)) return false;
    if (!aligned16(a.boxes) || (out32 && !aligned16(out32)) ||
        (a.joint.defined() && (!aligned16(a.joint.weight.data) || !aligned16(a.joint.bias.data))))
      return false;
    return dispatch_count<1, 2, 3, 4>(H / (32 * kN), [&](auto iters) {
      launch_warp<TE, TO, decltype(iters)::value>(a, cw, sw, out32, stream);
    });
  }
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
  float* out32 = a.out_f32.defined() ? a.out_f32.as<float>() : nullptr;
  LRT_DISPATCH_FLOAT(te, TE, LRT_DISPATCH_FLOAT(a.out.dtype, TO, {
    if (!try_warp<TE, TO>(a, H, cw, sw, out32, stream)) {
      const bool joint = a.joint.defined();
      text_embedding_kernel<TE, TO><<<static_cast<unsigned>(a.num_tokens), kThreads, sizeof(float) * H, stream>>>(
          a.dst_row, a.token_ids, a.position_ids, a.token_type_ids, a.boxes, a.word.as<TE>(), a.position.as<TE>(),
          a.token_type.as<TE>(), a.x.as<TE>(), a.y.as<TE>(), a.h.as<TE>(), a.w.as<TE>(), a.ln_weight.as<float>(),
          a.ln_bias.as<float>(), a.eps, joint ? a.joint.weight.as<float>() : nullptr,
          joint ? a.joint.bias.as<float>() : nullptr, a.joint.eps, H, cw, sw, a.out.as<TO>(), out32);
    }
  }));
  LRT_CUDA_LAUNCHED("text_embedding");
}

}  // namespace layoutrt::cuda
