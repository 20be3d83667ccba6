#include "model/weights.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "layoutrt/error.h"
#include "model/safetensors.h"

namespace layoutrt {

namespace {
constexpr const char* kBodyPrefix = "layoutlmv3.";

void add_linear(std::vector<WeightSpec>& s, const std::string& name, int64_t out, int64_t in) {
  s.push_back({name + ".weight", {out, in}});
  s.push_back({name + ".bias", {out}});
}
void add_layer_norm(std::vector<WeightSpec>& s, const std::string& name, int64_t h) {
  s.push_back({name + ".weight", {h}});
  s.push_back({name + ".bias", {h}});
}
bool has_prefix(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
}  // namespace

std::vector<HeadLinear> head_linears(const LayoutLMv3Config& c, HeadKind head) {
  const int64_t H = c.hidden_size, n = c.num_labels();
  switch (head) {
    case HeadKind::kBase: return {};
    case HeadKind::kTokenClassification:
      // transformers: nn.Linear below 10 labels, the dense+tanh classification head from 10 on (trap 6).
      if (n < 10) return {{"classifier", n, H}};
      return {{"classifier.dense", H, H}, {"classifier.out_proj", n, H}};
    case HeadKind::kSequenceClassification: return {{"classifier.dense", H, H}, {"classifier.out_proj", n, H}};
    case HeadKind::kQuestionAnswering: return {{"qa_outputs.dense", H, H}, {"qa_outputs.out_proj", n, H}};
  }
  return {};
}

std::vector<WeightSpec> layoutlmv3_weight_specs(const LayoutLMv3Config& c, HeadKind head) {
  std::vector<WeightSpec> s;
  const int64_t H = c.hidden_size, I = c.intermediate_size, heads = c.num_attention_heads;
  if (c.text_embed) {
    s.push_back({"embeddings.word_embeddings.weight", {c.vocab_size, H}});
    s.push_back({"embeddings.token_type_embeddings.weight", {c.type_vocab_size, H}});
    s.push_back({"embeddings.position_embeddings.weight", {c.max_position_embeddings, H}});
    s.push_back({"embeddings.x_position_embeddings.weight", {c.max_2d_position_embeddings, c.coordinate_size}});
    s.push_back({"embeddings.y_position_embeddings.weight", {c.max_2d_position_embeddings, c.coordinate_size}});
    s.push_back({"embeddings.h_position_embeddings.weight", {c.max_2d_position_embeddings, c.shape_size}});
    s.push_back({"embeddings.w_position_embeddings.weight", {c.max_2d_position_embeddings, c.shape_size}});
    add_layer_norm(s, "embeddings.LayerNorm", H);
  }
  if (c.visual_embed) {
    s.push_back({"patch_embed.proj.weight", {H, c.num_channels, c.patch_size, c.patch_size}});
    s.push_back({"patch_embed.proj.bias", {H}});
    s.push_back({"cls_token", {1, 1, H}});
    s.push_back({"pos_embed", {1, c.visual_tokens(), H}});
    add_layer_norm(s, "norm", H);
    add_layer_norm(s, "LayerNorm", H);
  }
  if (c.has_relative_attention_bias) s.push_back({"encoder.rel_pos_bias.weight", {heads, c.rel_pos_bins}});
  if (c.has_spatial_attention_bias) {
    s.push_back({"encoder.rel_pos_x_bias.weight", {heads, c.rel_2d_pos_bins}});
    s.push_back({"encoder.rel_pos_y_bias.weight", {heads, c.rel_2d_pos_bins}});
  }
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    add_linear(s, p + "attention.self.query", H, H);
    add_linear(s, p + "attention.self.key", H, H);
    add_linear(s, p + "attention.self.value", H, H);
    add_linear(s, p + "attention.output.dense", H, H);
    add_layer_norm(s, p + "attention.output.LayerNorm", H);
    add_linear(s, p + "intermediate.dense", I, H);
    add_linear(s, p + "output.dense", H, I);
    add_layer_norm(s, p + "output.LayerNorm", H);
  }
  for (const HeadLinear& l : head_linears(c, head)) add_linear(s, l.name, l.out, l.in);
  return s;
}

bool is_ignorable_checkpoint_tensor(const std::string& name) {
  return name == "embeddings.position_ids" || name == "visual_bbox";
}

HeadKind detect_head(const LayoutLMv3Config& c, const std::vector<std::string>& names, const std::string& override_name) {
  if (!override_name.empty()) {
    if (override_name == "base") return HeadKind::kBase;
    if (override_name == "token" || override_name == "token_classification") return HeadKind::kTokenClassification;
    if (override_name == "sequence" || override_name == "sequence_classification")
      return HeadKind::kSequenceClassification;
    if (override_name == "qa" || override_name == "question_answering") return HeadKind::kQuestionAnswering;
    throw_error(ErrorCode::kInvalidArgument, "--head ", override_name, ": expected base, token, sequence or qa");
  }
  for (const auto& a : c.architectures) {
    if (a == "LayoutLMv3ForTokenClassification") return HeadKind::kTokenClassification;
    if (a == "LayoutLMv3ForSequenceClassification") return HeadKind::kSequenceClassification;
    if (a == "LayoutLMv3ForQuestionAnswering") return HeadKind::kQuestionAnswering;
    if (a == "LayoutLMv3Model") return HeadKind::kBase;
  }
  const std::set<std::string> set(names.begin(), names.end());
  if (set.count("qa_outputs.dense.weight")) return HeadKind::kQuestionAnswering;
  if (set.count("classifier.weight")) return HeadKind::kTokenClassification;
  if (set.count("classifier.dense.weight")) {
    // Token classification uses classifier.dense only from 10 labels on, so below 10 it must be a sequence head.
    if (c.num_labels() < 10) return HeadKind::kSequenceClassification;
    throw_error(ErrorCode::kInvalidArgument,
                "checkpoint has classifier.dense/out_proj and ", c.num_labels(),
                " labels but config.json names no architecture: it may be token or sequence classification; "
                "pass --head token or --head sequence");
  }
  return HeadKind::kBase;
}

CheckpointWeights load_checkpoint(const std::string& dir, const std::string& head_override) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw_error(ErrorCode::kNotFound, dir, ": checkpoint directory not found");
  CheckpointWeights w;
  w.dir = dir;
  w.config = LayoutLMv3Config::load((fs::path(dir) / "config.json").string());
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);

  // Canonical names: strip the body prefix the For* heads add.
  std::map<std::string, std::string> canonical_to_stored;
  for (const auto& stored : ckpt.names()) {
    std::string canon = has_prefix(stored, kBodyPrefix) ? stored.substr(std::char_traits<char>::length(kBodyPrefix))
                                                         : stored;
    if (!canonical_to_stored.emplace(canon, stored).second)
      throw_error(ErrorCode::kFormat, dir, ": tensor ", canon, " is stored both with and without the '", kBodyPrefix,
                  "' prefix");
  }
  std::vector<std::string> canon_names;
  for (const auto& [k, v] : canonical_to_stored) canon_names.push_back(k);
  w.head = detect_head(w.config, canon_names, head_override);
  if (w.head == HeadKind::kQuestionAnswering && w.config.num_labels() != 2)
    throw_error(ErrorCode::kFormat, dir, "/config.json: a question-answering head needs num_labels 2 (start, end), got ",
                w.config.num_labels());
  if (w.head == HeadKind::kTokenClassification && !w.config.text_embed)
    throw_error(ErrorCode::kUnsupported, dir, ": token classification needs text_embed=true");

  std::set<std::string> seen;
  std::set<std::string> dtypes;
  for (const WeightSpec& spec : layoutlmv3_weight_specs(w.config, w.head)) {
    auto it = canonical_to_stored.find(spec.name);
    if (it == canonical_to_stored.end())
      throw_error(ErrorCode::kMissingTensor, dir, ": missing tensor ", spec.name, " (expected shape ",
                  shape_str(spec.shape), ") for a ", head_kind_name(w.head), " model");
    Tensor t = ckpt.tensor(it->second);
    if (t.shape() != spec.shape)
      throw_error(ErrorCode::kShapeMismatch, ckpt.file_of(it->second), ": tensor ", it->second, " has shape ",
                  shape_str(t.shape()), ", expected ", shape_str(spec.shape), " from config.json");
    if (t.dtype() != DType::kF32 && t.dtype() != DType::kF16 && t.dtype() != DType::kBF16)
      throw_error(ErrorCode::kDTypeMismatch, ckpt.file_of(it->second), ": tensor ", it->second, " has dtype ",
                  dtype_name(t.dtype()), "; weights must be F32, F16 or BF16");
    dtypes.insert(dtype_name(t.dtype()));
    w.tensors.emplace(spec.name, std::move(t));
    seen.insert(spec.name);
  }
  for (const auto& [canon, stored] : canonical_to_stored) {
    if (seen.count(canon) || is_ignorable_checkpoint_tensor(canon)) continue;
    throw_error(ErrorCode::kUnexpectedTensor, ckpt.file_of(stored), ": unexpected tensor ", stored, " (",
                shape_str(ckpt.find(stored)->shape), ") for a ", head_kind_name(w.head),
                " model with this config.json");
  }
  w.stored_dtype = dtypes.size() == 1 ? *dtypes.begin() : "mixed";
  for (const auto& n : ckpt.names()) {
    std::string f = ckpt.file_of(n);
    if (std::find(w.files.begin(), w.files.end(), f) == w.files.end()) w.files.push_back(f);
  }
  return w;
}

}  // namespace layoutrt
