// Writes safetensors files that the official library (and SafetensorsFile) reads back.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "layoutrt/tensor.h"

namespace layoutrt {

// Tensors are laid out contiguously in the given order; the header is padded with spaces to a multiple of 8 so the
// data stays 8-byte aligned. Written through path + ".tmp" and a rename. kInvalidArgument for an undefined tensor, a
// duplicate or reserved name; kIo naming the path when writing fails.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace layoutrt
