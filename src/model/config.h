// LayoutLMv3Config: every config.json field that changes the math, with transformers' defaults
// (transformers/models/layoutlmv3/configuration_layoutlmv3.py).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace layoutrt {

enum class Activation : uint8_t { kGeluErf, kGeluTanh, kRelu, kSilu };
const char* activation_name(Activation a);

struct LayoutLMv3Config {
  int vocab_size = 50265;
  int hidden_size = 768;
  int num_hidden_layers = 12;
  int num_attention_heads = 12;
  int intermediate_size = 3072;
  std::string hidden_act = "gelu";
  int max_position_embeddings = 512;
  int type_vocab_size = 2;
  double layer_norm_eps = 1e-5;
  int pad_token_id = 1;
  int max_2d_position_embeddings = 1024;
  int coordinate_size = 128;
  int shape_size = 128;
  bool has_relative_attention_bias = true;
  int rel_pos_bins = 32;
  int max_rel_pos = 128;
  bool has_spatial_attention_bias = true;
  int rel_2d_pos_bins = 64;
  int max_rel_2d_pos = 256;
  bool text_embed = true;
  bool visual_embed = true;
  int input_size = 224;
  int num_channels = 3;
  int patch_size = 16;
  std::vector<std::string> architectures;
  std::vector<std::string> id2label;  // index = label id; transformers' default is LABEL_0, LABEL_1
  std::string problem_type;

  int num_labels() const { return static_cast<int>(id2label.size()); }
  int head_dim() const { return hidden_size / num_attention_heads; }
  int patches_per_side() const { return input_size / patch_size; }
  // Visual tokens: patches + CLS (197 for 224/16), 0 without visual_embed.
  int visual_tokens() const { return visual_embed ? patches_per_side() * patches_per_side() + 1 : 0; }
  Activation activation() const;

  // Parses config.json (path used in error messages) and checks the fields are consistent.
  static LayoutLMv3Config from_json(const nlohmann::json& j, const std::string& path);
  static LayoutLMv3Config load(const std::string& config_json_path);
  nlohmann::json to_json() const;  // all fields, for the plan header
  void validate(const std::string& where) const;
};

}  // namespace layoutrt
