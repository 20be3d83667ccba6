// Synthetic model inputs of any batch and length, for benchmarks and build-time GEMM tuning.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "layoutrt/engine.h"

namespace layoutrt {

// A batch as LayoutLMv3Processor would give it: <s> (0) ... </s> (2) then pad (1), ids < vocab; boxes valid
// (0..1000, x0 <= x1, y0 <= y1), zero boxes on special and pad tokens; pixel values like normalized image bytes.
// real_tokens[b] (at most T) tokens of sequence b are real; text inputs only when info.text_embed, pixels only when
// info.visual_embed.
Inputs synthetic_inputs(const ModelInfo& info, int64_t B, int64_t T, const std::vector<int64_t>& real_tokens,
                        std::mt19937_64& rng);

}  // namespace layoutrt
