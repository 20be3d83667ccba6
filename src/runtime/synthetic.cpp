// Synthetic model inputs (synthetic.h).
#include "runtime/synthetic.h"

#include <algorithm>

namespace layoutrt {

Inputs synthetic_inputs(const ModelInfo& info, int64_t B, int64_t T, const std::vector<int64_t>& real_tokens,
                        std::mt19937_64& rng) {
  Inputs in;
  if (info.text_embed) {
    in.input_ids = Tensor(DType::kI64, {B, T});
    in.bbox = Tensor(DType::kI64, {B, T, 4});
    in.attention_mask = Tensor(DType::kI64, {B, T});
    int64_t* ids = in.input_ids.mutable_data_as<int64_t>();
    int64_t* box = in.bbox.mutable_data_as<int64_t>();
    int64_t* mask = in.attention_mask.mutable_data_as<int64_t>();
    const int64_t vocab = info.vocab_size;
    std::uniform_int_distribution<int64_t> word(vocab > 3 ? 3 : 0, vocab - 1), coord(0, 1000), w(0, 200), h(0, 60);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = std::min(real_tokens[b], T);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t i = b * T + t;
        const bool real = t < n;
        mask[i] = real ? 1 : 0;
        ids[i] = !real ? std::min<int64_t>(1, vocab - 1) : t == 0 ? 0 : t == n - 1 ? std::min<int64_t>(2, vocab - 1)
                                                                                  : word(rng);
        if (real && t > 0 && t < n - 1) {
          const int64_t x0 = coord(rng), y0 = coord(rng);
          box[4 * i + 0] = x0;
          box[4 * i + 1] = y0;
          box[4 * i + 2] = std::min<int64_t>(x0 + w(rng), 1000);
          box[4 * i + 3] = std::min<int64_t>(y0 + h(rng), 1000);
        }
      }
    }
  }
  if (info.visual_embed) {
    in.pixel_values = Tensor(DType::kF32, {B, info.num_channels, info.image_size, info.image_size});
    float* px = in.pixel_values.mutable_data_as<float>();
    std::uniform_int_distribution<int> byte(0, 255);
    for (int64_t i = 0, n = in.pixel_values.numel(); i < n; ++i) px[i] = (byte(rng) / 255.0f - 0.5f) / 0.5f;
  }
  return in;
}

}  // namespace layoutrt
