#include "plan/plan_layout.h"

#include <algorithm>

#include "model/weights.h"

namespace layoutrt {

int plan_max_distance_1d(const LayoutLMv3Config& c, int max_text_tokens) {
  return std::max(max_text_tokens, c.visual_tokens());
}
int plan_max_distance_2d(const LayoutLMv3Config& c) { return c.max_2d_position_embeddings - 1; }

std::string layer_tensor(int layer, const char* what) {
  return "encoder.layer." + std::to_string(layer) + "." + what;
}

std::vector<PlanTensorSpec> plan_tensor_specs(const LayoutLMv3Config& c, HeadKind head, Precision p,
                                              int max_text_tokens) {
  const DType emb = embedding_dtype(p), enc = encoder_dtype(p), f32 = DType::kF32;
  const int64_t H = c.hidden_size, I = c.intermediate_size, heads = c.num_attention_heads;
  std::vector<PlanTensorSpec> s;
  auto copy = [&](const std::string& name, DType t, Shape shape) {
    s.push_back({name, t, std::move(shape), PlanTransform::kCopy, {name}});
  };
  if (c.text_embed) {
    copy("embeddings.word_embeddings.weight", emb, {c.vocab_size, H});
    copy("embeddings.token_type_embeddings.weight", emb, {c.type_vocab_size, H});
    copy("embeddings.position_embeddings.weight", emb, {c.max_position_embeddings, H});
    for (const char* t : {"x", "y"})
      copy(std::string("embeddings.") + t + "_position_embeddings.weight", emb,
           {c.max_2d_position_embeddings, c.coordinate_size});
    for (const char* t : {"h", "w"})
      copy(std::string("embeddings.") + t + "_position_embeddings.weight", emb,
           {c.max_2d_position_embeddings, c.shape_size});
    copy("embeddings.LayerNorm.weight", f32, {H});
    copy("embeddings.LayerNorm.bias", f32, {H});
  }
  if (c.visual_embed) {
    const int64_t k = static_cast<int64_t>(c.num_channels) * c.patch_size * c.patch_size;
    s.push_back({"patch_embed.proj.weight", emb, {H, k}, PlanTransform::kReshape, {"patch_embed.proj.weight"}});
    copy("patch_embed.proj.bias", f32, {H});
    s.push_back({"cls_token", f32, {H}, PlanTransform::kReshape, {"cls_token"}});
    s.push_back({"pos_embed", f32, {c.visual_tokens(), H}, PlanTransform::kReshape, {"pos_embed"}});
    for (const char* ln : {"norm", "LayerNorm"}) {
      copy(std::string(ln) + ".weight", f32, {H});
      copy(std::string(ln) + ".bias", f32, {H});
    }
  }
  if (c.has_relative_attention_bias) {
    copy("encoder.rel_pos_bias.weight", f32, {heads, c.rel_pos_bins});
    s.push_back({"rel_pos.buckets_1d", DType::kI32, {2 * int64_t{plan_max_distance_1d(c, max_text_tokens)} + 1},
                 PlanTransform::kBuckets1D, {}});
  }
  if (c.has_spatial_attention_bias) {
    copy("encoder.rel_pos_x_bias.weight", f32, {heads, c.rel_2d_pos_bins});
    copy("encoder.rel_pos_y_bias.weight", f32, {heads, c.rel_2d_pos_bins});
    s.push_back({"rel_pos.buckets_2d", DType::kI32, {2 * int64_t{plan_max_distance_2d(c)} + 1},
                 PlanTransform::kBuckets2D, {}});
  }
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    auto src = [&](const char* what) { return layer_tensor(l, what); };
    s.push_back({src("attention.qkv.weight"), enc, {3 * H, H}, PlanTransform::kConcatRows,
                 {src("attention.self.query.weight"), src("attention.self.key.weight"),
                  src("attention.self.value.weight")}});
    s.push_back({src("attention.qkv.bias"), f32, {3 * H}, PlanTransform::kConcatRows,
                 {src("attention.self.query.bias"), src("attention.self.key.bias"), src("attention.self.value.bias")}});
    copy(src("attention.output.dense.weight"), enc, {H, H});
    copy(src("attention.output.dense.bias"), f32, {H});
    copy(src("attention.output.LayerNorm.weight"), f32, {H});
    copy(src("attention.output.LayerNorm.bias"), f32, {H});
    copy(src("intermediate.dense.weight"), enc, {I, H});
    copy(src("intermediate.dense.bias"), f32, {I});
    copy(src("output.dense.weight"), enc, {H, I});
    copy(src("output.dense.bias"), f32, {H});
    copy(src("output.LayerNorm.weight"), f32, {H});
    copy(src("output.LayerNorm.bias"), f32, {H});
  }
  // Heads run in FP32: they are small, and their outputs are what users compare.
  for (const HeadLinear& l : head_linears(c, head)) {
    copy(l.name + ".weight", f32, {l.out, l.in});
    copy(l.name + ".bias", f32, {l.out});
  }
  return s;
}

}  // namespace layoutrt
