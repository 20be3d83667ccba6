// layoutrt document pipeline: words + boxes + page image → model inputs → labelled words and entities.
//
//   auto engine = layoutrt::Engine::load("funsd.plan");
//   layoutrt::PipelineOptions po;                     // tokenizer: the plan's checkpoint dir unless given
//   layoutrt::DocumentPipeline pipe(engine->info(), layoutrt::DocumentPipeline::default_tokenizer_dir("funsd.plan"), po);
//   layoutrt::Document doc = layoutrt::load_document("annotations/82092117.json");
//   auto ctx = engine->create_context();
//   layoutrt::DocumentResult r = pipe.run(*ctx, doc);  // r.words[i].predicted, r.entities
//
// Tokens follow transformers' LayoutLMv3Processor (apply_ocr=False) token for token; pixel_values follow its PIL image
// processor (bilinear resize to 224, 1/255, mean/std 0.5). Documents longer than max_length tokens are cut into
// overlapping windows (stride tokens shared) and each word is read from the window where it has the most context.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "layoutrt/engine.h"

namespace layoutrt {

struct DocumentWord {
  std::string text;
  std::array<double, 4> box{};  // page pixels: x0 y0 x1 y1
  std::string label;            // gold BIO label, "" when the document has none
};

struct Document {
  std::string path;        // the JSON it came from
  std::string id;          // file stem
  std::string image_path;  // page image ("" when none)
  int width = 0, height = 0;
  std::vector<DocumentWord> words;
  bool has_labels() const;
};

// A FUNSD annotation ({"form": [...]}, page at ../images/<id>.png) or an OCR JSON
// ({"image", "width", "height", "words": [{"text", "box"}]}); `image` overrides the page image. See
// src/pipeline/formats.h for the label conventions.
Document load_document(const std::string& json_path, const std::string& image = "");

struct PipelineOptions {
  int max_length = 512;   // tokens per model sequence, <s> and </s> included (<= the plan's max_text_tokens)
  int stride = 128;       // tokens shared by neighbouring windows of a long document
  bool truncate = false;  // as transformers' truncation=True: one window, words past it get no prediction
  bool use_image = true;  // feed pixel_values when the model has visual_embed and the document has an image
};

struct WordResult {
  std::string text;
  std::array<double, 4> box{};
  std::array<int32_t, 4> normalized_box{};  // 0..1000
  std::string label;       // gold ("" when none)
  std::string predicted;   // "" when the word got no prediction (no tokens, or cut by truncation)
  float score = 0;         // softmax probability of the predicted label at the word's first sub-token
  int window = -1;         // the window it was read from
  int tokens = 0;          // its sub-token count
};

struct EntityResult {
  std::string label;       // "QUESTION"
  int first_word = 0, last_word = 0;  // inclusive
  std::string text;        // the words joined by single spaces
  std::array<double, 4> box{};        // union of the word boxes, page pixels
};

struct DocumentResult {
  std::string id;
  std::vector<WordResult> words;
  std::vector<EntityResult> entities;  // from the predicted labels (seqeval's chunking)
  int num_tokens = 0;                  // the document's tokens without special tokens
  int windows = 0;
  double ms = 0;                       // time in the engine
};

// Everything the model sees for one document: B windows as one batch (padded to the longest window).
struct EncodedDocument {
  Inputs inputs;
  std::vector<std::vector<int32_t>> word_ids;  // per window, per position: word index or -1
  std::vector<std::array<int32_t, 2>> windows; // token range [begin, end) of each window in the document's stream
  std::vector<int32_t> word_first_token;       // per word: its first token in the stream, -1 when it has none
  std::vector<int32_t> word_token_count;       // per word: its sub-token count
  int num_tokens = 0;
};

class DocumentPipeline {
 public:
  // The tokenizer is read from tokenizer_dir (vocab.json + merges.txt). labels: the model's id2label.
  DocumentPipeline(const ModelInfo& model, const std::string& tokenizer_dir, const PipelineOptions& options = {});
  ~DocumentPipeline();
  DocumentPipeline(DocumentPipeline&&) noexcept;

  // Where a plan's tokenizer lives: the plan's own folder when it holds vocab.json + merges.txt, else the checkpoint
  // folder recorded in the plan header. Throws kNotFound naming both places.
  static std::string default_tokenizer_dir(const std::string& plan_path);

  EncodedDocument encode(const Document& doc) const;
  // Per-word predictions from token_classification logits of encode(doc)'s windows (the merge rule is in the .cpp).
  DocumentResult decode(const Document& doc, const EncodedDocument& enc, const Outputs& out) const;
  // encode → run (in chunks of the plan's max_batch) → decode.
  DocumentResult run(ExecutionContext& ctx, const Document& doc) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Draws the entities' boxes, coloured by label, with a legend, over the page image (a white page when the document
// has none) and writes a PNG.
void write_visualization(const Document& doc, const DocumentResult& result, const std::string& png_path);

}  // namespace layoutrt
