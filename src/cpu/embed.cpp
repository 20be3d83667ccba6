// Text and visual embeddings on the CPU.
#include <algorithm>
#include <vector>

#include "cpu/cpu_ops.h"

namespace layoutrt::cpu {
namespace {

// The joint LayerNorm of JointNorm (ops/backend.h) over a row already written: in place (the CPU stores FP32 only,
// so there is no rounding in between).
void joint_norm_row(const JointNorm& j, int64_t H, float* row) {
  if (j.defined()) layer_norm_row(row, nullptr, j.weight.as<float>(), j.bias.as<float>(), j.eps, H, row);
}

}  // namespace

void text_embedding(const TextEmbeddingArgs& a) {
  const int64_t H = a.out.dim(1);
  const int64_t cw = a.x.dim(1), sw = a.h.dim(1);  // coordinate_size, shape_size
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < a.num_tokens; ++i) {
    float row[8192];
    const int32_t* b = a.boxes + 4 * i;
    const float* word = a.word.as<float>() + static_cast<int64_t>(a.token_ids[i]) * H;
    const float* type = a.token_type.as<float>() + static_cast<int64_t>(a.token_type_ids[i]) * H;
    const float* pos = a.position.as<float>() + static_cast<int64_t>(a.position_ids[i]) * H;
    // transformers: (word + token_type) + position, then + concat(x0, y0, x1, y1, h, w) (same float order).
    for (int64_t k = 0; k < H; ++k) row[k] = (word[k] + type[k]) + pos[k];
    // transformers clips the height/width index to 0..1023; prepare_batch keeps boxes inside the table.
    auto clip = [](int64_t v) { return v < 0 ? 0 : (v > 1023 ? 1023 : v); };
    const float* parts[6] = {
        a.x.as<float>() + b[0] * cw, a.y.as<float>() + b[1] * cw, a.x.as<float>() + b[2] * cw,
        a.y.as<float>() + b[3] * cw, a.h.as<float>() + clip(b[3] - b[1]) * sw, a.w.as<float>() + clip(b[2] - b[0]) * sw};
    const int64_t widths[6] = {cw, cw, cw, cw, sw, sw};
    int64_t off = 0;
    for (int p = 0; p < 6; ++p)
      for (int64_t k = 0; k < widths[p]; ++k) row[off++] += parts[p][k];
    float* out = a.out.as<float>() + static_cast<int64_t>(a.dst_row[i]) * H;
    layer_norm_row(row, nullptr, a.ln_weight.as<float>(), a.ln_bias.as<float>(), a.eps, H, out);
    joint_norm_row(a.joint, H, out);
    // The CPU stores FP32 only: the FP32 stream is a copy of out.
    if (a.out_f32.defined())
      std::copy(out, out + H, a.out_f32.as<float>() + static_cast<int64_t>(a.dst_row[i]) * H);
  }
}

void patch_embedding(const PatchEmbeddingArgs& a) {
  const int p = a.patch_size, S = a.image_size, C = a.channels, n = S / p;
  const int64_t P = int64_t{n} * n, K = int64_t{C} * p * p, H = a.out.dim(1);
  float* patches = a.patches.as<float>();
  // im2col: patch (r, c) -> one row ordered (channel, ky, kx) like the conv weight [H, C, p, p].
#pragma omp parallel for schedule(static)
  for (int64_t bp = 0; bp < a.batch * P; ++bp) {
    const int64_t b = bp / P, r = (bp % P) / n, c = bp % n;
    float* dst = patches + bp * K;
    for (int ch = 0; ch < C; ++ch)
      for (int ky = 0; ky < p; ++ky) {
        const float* src = a.pixels + ((b * C + ch) * S + r * p + ky) * S + c * p;
        for (int kx = 0; kx < p; ++kx) *dst++ = src[kx];
      }
  }
  float* proj = a.proj.as<float>();
  sgemm_nt(a.batch * P, H, K, patches, K, a.weight.as<float>(), K, proj, H);
  const float* bias = a.bias.as<float>();
  const float* cls = a.cls_token.as<float>();
  const float* pos = a.pos_embed.as<float>();
  float* out = a.out.as<float>();
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t v = 0; v <= P; ++v) {
      float row[8192];
      // conv output (with its bias), CLS prepended, + pos_embed, then `norm` (eps 1e-6).
      for (int64_t k = 0; k < H; ++k)
        row[k] = (v == 0 ? cls[k] : proj[(b * P + v - 1) * H + k] + bias[k]) + pos[v * H + k];
      float* dst = out + (static_cast<int64_t>(a.cls_row[b]) + v) * H;
      layer_norm_row(row, nullptr, a.ln_weight.as<float>(), a.ln_bias.as<float>(), a.eps, H, dst);
      joint_norm_row(a.joint, H, dst);
      if (a.out_f32.defined()) std::copy(dst, dst + H, a.out_f32.as<float>() + (dst - out));
    }
  }
}

}  // namespace layoutrt::cpu
