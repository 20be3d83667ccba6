// layoutrt encode --tokenizer DIR --document A.json [--document B.json ...] [--full] [--pixel-values DIR]
// The pipeline's model inputs for documents, one JSON object per line (input_ids, bbox, labels, word_ids per window):
// what python/check_pipeline_parity.py compares with transformers' LayoutLMv3Processor.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "io/npy.h"
#include "layoutrt/pipeline.h"
#include "pipeline/formats.h"
#include "pipeline/image.h"
#include "pipeline/layout_encoder.h"

namespace layoutrt::cli {

void register_encode(CLI::App& app) {
  struct Opts {
    std::string tokenizer, pixels_dir;
    std::vector<std::string> documents;
    int max_length = 512, stride = 128;
    bool full = false, windows = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("encode", "Print the model inputs the document pipeline makes (JSON lines)");
  cmd->add_option("--tokenizer", o->tokenizer, "Folder with vocab.json and merges.txt")->required();
  cmd->add_option("--document,-d", o->documents, "FUNSD annotation or OCR JSON (repeatable)")->required();
  cmd->add_option("--max-length", o->max_length, "Tokens per sequence with <s> and </s>")->capture_default_str();
  cmd->add_flag("--full", o->full, "One sequence with every token (no truncation)");
  cmd->add_flag("--windows", o->windows, "Overlapping windows (--stride) instead of truncation");
  cmd->add_option("--stride", o->stride, "Tokens shared by neighbouring windows")->capture_default_str();
  cmd->add_option("--pixel-values", o->pixels_dir, "Also write <id>.npy pixel_values [3,224,224] float32 here");
  cmd->callback([o] {
    using namespace pipeline;
    const BpeTokenizer tok = BpeTokenizer::load(o->tokenizer);
    const auto& names = funsd_labels();
    for (const std::string& path : o->documents) {
      const Document doc = load_document(path);
      const std::vector<Box> boxes = normalized_boxes(doc);
      std::vector<std::string> texts;
      std::vector<int32_t> labels;
      for (const auto& w : doc.words) {
        texts.push_back(w.text);
        const auto it = std::find(names.begin(), names.end(), w.label);
        labels.push_back(it == names.end() ? -1 : static_cast<int32_t>(it - names.begin()));
      }
      if (!doc.has_labels()) labels.clear();
      const TokenizedWords tw = tokenize_words(tok, texts);
      const int32_t n = static_cast<int32_t>(tw.ids.size());
      EncodeOptions eo;
      eo.max_length = o->full ? n + 2 : o->max_length;
      std::vector<std::pair<int32_t, int32_t>> windows =
          o->windows ? make_windows(n, eo.max_length - 2, o->stride)
                     : std::vector<std::pair<int32_t, int32_t>>{{0, std::min(n, eo.max_length - 2)}};
      nlohmann::json j;
      j["id"] = doc.id;
      j["num_words"] = doc.words.size();
      j["num_tokens"] = n;
      for (const auto& [b, e] : windows) {
        const Encoding enc = encode_window(tok, tw, boxes, labels, b, e, eo);
        j["input_ids"].push_back(enc.input_ids);
        j["bbox"].push_back(enc.bbox);
        j["word_ids"].push_back(enc.word_ids);
        if (!labels.empty()) j["labels"].push_back(enc.labels);
      }
      std::cout << j.dump() << "\n";
      if (!o->pixels_dir.empty()) {
        if (doc.image_path.empty()) throw_error(ErrorCode::kNotFound, path, ": no page image for --pixel-values");
        const std::vector<float> px = pixel_values(load_image(doc.image_path));
        Tensor t(DType::kF32, {3, 224, 224});
        std::copy(px.begin(), px.end(), t.mutable_data_as<float>());
        write_npy(o->pixels_dir + "/" + doc.id + ".npy", t);
      }
    }
  });
}

}  // namespace layoutrt::cli
