// Model inputs and outputs on disk: a directory of .npy files named as transformers' processor outputs, or one
// .safetensors file with those names; outputs as .safetensors (or a directory of .npy).
#pragma once

#include <string>

#include "layoutrt/engine.h"

namespace layoutrt {

// Names read: input_ids, bbox, attention_mask, token_type_ids, pixel_values. Other names are reported in `ignored`.
Inputs load_inputs(const std::string& path, std::vector<std::string>* ignored = nullptr);
void save_inputs(const std::string& path, const Inputs& in);  // .safetensors or a directory of .npy

// Writes every output tensor (.safetensors file, or a directory of .npy when path has no .safetensors suffix).
void save_outputs(const std::string& path, const Outputs& out, const std::map<std::string, std::string>& metadata = {});

}  // namespace layoutrt
