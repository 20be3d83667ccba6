#include "model/config.h"

#include <fstream>
#include <map>

#include "layoutrt/error.h"

namespace layoutrt {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kGeluErf: return "gelu";
    case Activation::kGeluTanh: return "gelu_tanh";
    case Activation::kRelu: return "relu";
    case Activation::kSilu: return "silu";
  }
  return "?";
}

Activation LayoutLMv3Config::activation() const {
  // transformers' ACT2FN names that map onto what the kernels implement.
  static const std::map<std::string, Activation> kNames = {
      {"gelu", Activation::kGeluErf},          {"gelu_python", Activation::kGeluErf},
      {"gelu_new", Activation::kGeluTanh},     {"gelu_pytorch_tanh", Activation::kGeluTanh},
      {"gelu_fast", Activation::kGeluTanh},    {"relu", Activation::kRelu},
      {"silu", Activation::kSilu},             {"swish", Activation::kSilu},
  };
  auto it = kNames.find(hidden_act);
  if (it == kNames.end())
    throw_error(ErrorCode::kUnsupported, "config: hidden_act \"", hidden_act,
                "\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu)");
  return it->second;
}

namespace {

template <class T>
void read_field(const nlohmann::json& j, const char* key, T& out, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;  // keep transformers' default
  try {
    if constexpr (std::is_same_v<T, int>) {
      if (it->is_number_float()) {
        const double v = it->get<double>();
        if (v != static_cast<double>(static_cast<int>(v))) throw std::runtime_error("not an integer");
        out = static_cast<int>(v);
      } else {
        out = it->get<int>();
      }
    } else {
      out = it->get<T>();
    }
  } catch (const std::exception&) {
    throw_error(ErrorCode::kFormat, path, ": field \"", key, "\" has an unexpected value ", it->dump());
  }
}

}  // namespace

LayoutLMv3Config LayoutLMv3Config::from_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) throw_error(ErrorCode::kFormat, path, ": expected a JSON object");
  if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string() && mt->get<std::string>() != "layoutlmv3")
    throw_error(ErrorCode::kUnsupported, path, ": model_type is \"", mt->get<std::string>(),
                "\", layoutrt runs \"layoutlmv3\" checkpoints");
  LayoutLMv3Config c;
  read_field(j, "vocab_size", c.vocab_size, path);
  read_field(j, "hidden_size", c.hidden_size, path);
  read_field(j, "num_hidden_layers", c.num_hidden_layers, path);
  read_field(j, "num_attention_heads", c.num_attention_heads, path);
  read_field(j, "intermediate_size", c.intermediate_size, path);
  read_field(j, "hidden_act", c.hidden_act, path);
  read_field(j, "max_position_embeddings", c.max_position_embeddings, path);
  read_field(j, "type_vocab_size", c.type_vocab_size, path);
  read_field(j, "layer_norm_eps", c.layer_norm_eps, path);
  read_field(j, "pad_token_id", c.pad_token_id, path);
  read_field(j, "max_2d_position_embeddings", c.max_2d_position_embeddings, path);
  read_field(j, "coordinate_size", c.coordinate_size, path);
  read_field(j, "shape_size", c.shape_size, path);
  read_field(j, "has_relative_attention_bias", c.has_relative_attention_bias, path);
  read_field(j, "rel_pos_bins", c.rel_pos_bins, path);
  read_field(j, "max_rel_pos", c.max_rel_pos, path);
  read_field(j, "has_spatial_attention_bias", c.has_spatial_attention_bias, path);
  read_field(j, "rel_2d_pos_bins", c.rel_2d_pos_bins, path);
  read_field(j, "max_rel_2d_pos", c.max_rel_2d_pos, path);
  read_field(j, "text_embed", c.text_embed, path);
  read_field(j, "visual_embed", c.visual_embed, path);
  read_field(j, "input_size", c.input_size, path);
  read_field(j, "num_channels", c.num_channels, path);
  read_field(j, "problem_type", c.problem_type, path);
  if (auto it = j.find("patch_size"); it != j.end() && !it->is_null()) {
    if (it->is_array()) {
      if (it->size() != 2 || !(*it)[0].is_number_integer() || (*it)[0] != (*it)[1])
        throw_error(ErrorCode::kUnsupported, path, ": patch_size ", it->dump(), " must be square");
      c.patch_size = (*it)[0].get<int>();
    } else {
      read_field(j, "patch_size", c.patch_size, path);
    }
  }
  if (auto it = j.find("input_size"); it != j.end() && it->is_array())
    throw_error(ErrorCode::kUnsupported, path, ": non-square input_size ", it->dump(), " is not supported");
  if (auto it = j.find("architectures"); it != j.end() && it->is_array())
    for (const auto& a : *it) if (a.is_string()) c.architectures.push_back(a.get<std::string>());

  // Labels: transformers sets num_labels = len(id2label); id2label keys are strings of ints.
  int num_labels = -1;
  read_field(j, "num_labels", num_labels, path);
  if (auto it = j.find("id2label"); it != j.end() && it->is_object() && !it->empty()) {
    std::map<int, std::string> m;
    for (auto& [k, v] : it->items()) {
      int id = -1;
      try { size_t pos = 0; id = std::stoi(k, &pos); if (pos != k.size()) id = -1; } catch (...) {}
      if (id < 0 || !v.is_string()) throw_error(ErrorCode::kFormat, path, ": id2label entry \"", k, "\" is malformed");
      m[id] = v.get<std::string>();
    }
    const int n = static_cast<int>(m.size());
    for (int i = 0; i < n; ++i) {
      auto f = m.find(i);
      if (f == m.end()) throw_error(ErrorCode::kFormat, path, ": id2label has no entry for label id ", i);
      c.id2label.push_back(f->second);
    }
  } else {
    if (num_labels < 0) num_labels = 2;  // PreTrainedConfig default
    for (int i = 0; i < num_labels; ++i) c.id2label.push_back("LABEL_" + std::to_string(i));
  }
  c.validate(path);
  return c;
}

LayoutLMv3Config LayoutLMv3Config::load(const std::string& config_json_path) {
  std::ifstream f(config_json_path);
  if (!f) throw_error(ErrorCode::kNotFound, config_json_path, ": cannot open the checkpoint's config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw_error(ErrorCode::kFormat, config_json_path, ": not valid JSON (", e.what(), ")");
  }
  return from_json(j, config_json_path);
}

void LayoutLMv3Config::validate(const std::string& where) const {
  auto positive = [&](const char* name, int v) {
    if (v <= 0) throw_error(ErrorCode::kFormat, where, ": ", name, " must be positive, got ", v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("type_vocab_size", type_vocab_size);
  positive("max_2d_position_embeddings", max_2d_position_embeddings);
  if (hidden_size > 8192 || intermediate_size > 65536)
    throw_error(ErrorCode::kUnsupported, where, ": hidden_size ", hidden_size, " / intermediate_size ",
                intermediate_size, " exceed layoutrt's limits (8192 / 65536)");
  if (hidden_size % num_attention_heads != 0)
    throw_error(ErrorCode::kFormat, where, ": hidden_size ", hidden_size, " is not a multiple of num_attention_heads ",
                num_attention_heads);
  if (hidden_size / num_attention_heads > 1024)
    throw_error(ErrorCode::kUnsupported, where, ": head dimension ", hidden_size / num_attention_heads,
                " exceeds layoutrt's limit of 1024");
  if (!text_embed && !visual_embed)
    throw_error(ErrorCode::kFormat, where, ": text_embed and visual_embed are both false; the model has no input");
  if (text_embed && 4 * coordinate_size + 2 * shape_size != hidden_size)
    throw_error(ErrorCode::kFormat, where, ": 4*coordinate_size + 2*shape_size = ", 4 * coordinate_size + 2 * shape_size,
                " must equal hidden_size ", hidden_size);
  if (text_embed && (pad_token_id < 0 || pad_token_id >= vocab_size))
    throw_error(ErrorCode::kFormat, where, ": pad_token_id ", pad_token_id, " outside the vocabulary of ", vocab_size);
  if (text_embed && pad_token_id + 1 >= max_position_embeddings)
    throw_error(ErrorCode::kFormat, where, ": max_position_embeddings ", max_position_embeddings,
                " leaves no position for a token (pad_token_id ", pad_token_id, ")");
  if (visual_embed) {
    positive("input_size", input_size);
    positive("patch_size", patch_size);
    positive("num_channels", num_channels);
    if (input_size % patch_size != 0)
      throw_error(ErrorCode::kUnsupported, where, ": input_size ", input_size, " is not a multiple of patch_size ",
                  patch_size);
  }
  if (has_relative_attention_bias) {
    if (rel_pos_bins < 4 || rel_pos_bins % 4 != 0 || max_rel_pos <= rel_pos_bins / 4)
      throw_error(ErrorCode::kFormat, where, ": rel_pos_bins ", rel_pos_bins, " / max_rel_pos ", max_rel_pos,
                  " do not define valid buckets");
  }
  if (has_spatial_attention_bias) {
    if (rel_2d_pos_bins < 4 || rel_2d_pos_bins % 4 != 0 || max_rel_2d_pos <= rel_2d_pos_bins / 4)
      throw_error(ErrorCode::kFormat, where, ": rel_2d_pos_bins ", rel_2d_pos_bins, " / max_rel_2d_pos ",
                  max_rel_2d_pos, " do not define valid buckets");
  }
  if (layer_norm_eps <= 0) throw_error(ErrorCode::kFormat, where, ": layer_norm_eps must be positive");
  (void)activation();  // throws for an unsupported hidden_act
}

nlohmann::json LayoutLMv3Config::to_json() const {
  nlohmann::json j;
  j["model_type"] = "layoutlmv3";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["layer_norm_eps"] = layer_norm_eps;
  j["pad_token_id"] = pad_token_id;
  j["max_2d_position_embeddings"] = max_2d_position_embeddings;
  j["coordinate_size"] = coordinate_size;
  j["shape_size"] = shape_size;
  j["has_relative_attention_bias"] = has_relative_attention_bias;
  j["rel_pos_bins"] = rel_pos_bins;
  j["max_rel_pos"] = max_rel_pos;
  j["has_spatial_attention_bias"] = has_spatial_attention_bias;
  j["rel_2d_pos_bins"] = rel_2d_pos_bins;
  j["max_rel_2d_pos"] = max_rel_2d_pos;
  j["text_embed"] = text_embed;
  j["visual_embed"] = visual_embed;
  j["input_size"] = input_size;
  j["num_channels"] = num_channels;
  j["patch_size"] = patch_size;
  j["architectures"] = architectures;
  nlohmann::json labels = nlohmann::json::object();
  for (size_t i = 0; i < id2label.size(); ++i) labels[std::to_string(i)] = id2label[i];
  j["id2label"] = labels;
  if (!problem_type.empty()) j["problem_type"] = problem_type;
  return j;
}

}  // namespace layoutrt
