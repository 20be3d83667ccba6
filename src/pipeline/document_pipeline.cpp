// DocumentPipeline (include/layoutrt/pipeline.h): formats → tokens/boxes/pixels → engine → per-word labels, entities.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "layoutrt/pipeline.h"
#include "pipeline/bpe_tokenizer.h"
#include "pipeline/formats.h"
#include "pipeline/image.h"
#include "pipeline/layout_encoder.h"
#include "pipeline/postprocess.h"
#include "plan/plan_format.h"

namespace fs = std::filesystem;

namespace layoutrt {

using namespace pipeline;

struct DocumentPipeline::Impl {
  ModelInfo model;
  BpeTokenizer tok;
  PipelineOptions opt;
};

DocumentPipeline::DocumentPipeline(const ModelInfo& model, const std::string& tokenizer_dir,
                                   const PipelineOptions& options)
    : impl_(new Impl{model, BpeTokenizer::load(tokenizer_dir), options}) {
  if (options.max_length < 3 || (model.max_text_tokens > 0 && options.max_length > model.max_text_tokens))
    throw_error(ErrorCode::kInvalidArgument, "--max-length ", options.max_length, ": must be in 3..",
                model.max_text_tokens, " (the plan's max_text_tokens)");
  if (!options.truncate && (options.stride < 0 || options.stride >= options.max_length - 2))
    throw_error(ErrorCode::kInvalidArgument, "--stride ", options.stride, ": must be in 0..", options.max_length - 3,
                " (tokens shared by windows of ", options.max_length - 2, " tokens)");
}

DocumentPipeline::~DocumentPipeline() = default;
DocumentPipeline::DocumentPipeline(DocumentPipeline&&) noexcept = default;

std::string DocumentPipeline::default_tokenizer_dir(const std::string& plan_path) {
  auto has = [](const fs::path& d) { return fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt"); };
  const fs::path beside = fs::absolute(plan_path).parent_path();
  if (has(beside)) return beside.string();
  std::string ckpt;
  const PlanFile p = PlanFile::open(plan_path, /*verify_checksum=*/false);
  if (p.header().contains("build") && p.header()["build"].contains("checkpoint"))
    ckpt = p.header()["build"]["checkpoint"].get<std::string>();
  if (!ckpt.empty() && has(ckpt)) return ckpt;
  throw_error(ErrorCode::kNotFound, "no tokenizer (vocab.json + merges.txt) beside the plan (", beside.string(),
              ") nor in its checkpoint folder (", ckpt.empty() ? "not recorded" : ckpt, "): give --tokenizer DIR");
}

EncodedDocument DocumentPipeline::encode(const Document& doc) const {
  const Impl& im = *impl_;
  const std::vector<Box> boxes = normalized_boxes(doc);
  std::vector<std::string> texts;
  texts.reserve(doc.words.size());
  for (const auto& w : doc.words) texts.push_back(w.text);
  const TokenizedWords tw = tokenize_words(im.tok, texts);
  const int32_t n = static_cast<int32_t>(tw.ids.size());
  if (im.model.text_embed && im.model.vocab_size > 0)
    for (int32_t t = 0; t < n; ++t)
      if (tw.ids[t] >= im.model.vocab_size) {
        const int32_t w = tw.word_of_token[t];
        throw_error(ErrorCode::kInputOutOfRange, doc.path, ": word ", w, " \"", doc.words[w].text, "\" has token id ",
                    tw.ids[t], " but the model's vocab_size is ", im.model.vocab_size,
                    " (a tokenizer that does not belong to this plan?)");
      }
  const int32_t per_window = im.opt.max_length - 2;
  const auto windows = im.opt.truncate ? std::vector<std::pair<int32_t, int32_t>>{{0, std::min(n, per_window)}}
                                       : make_windows(n, per_window, im.opt.stride);
  EncodeOptions eo;
  eo.max_length = im.opt.max_length;
  std::vector<Encoding> encs;
  int64_t longest = 0;
  for (const auto& [b, e] : windows) {
    encs.push_back(encode_window(im.tok, tw, boxes, {}, b, e, eo));
    longest = std::max<int64_t>(longest, static_cast<int64_t>(encs.back().size()));
  }
  const int64_t B = static_cast<int64_t>(encs.size());
  EncodedDocument out;
  out.num_tokens = n;
  out.word_first_token = tw.first_token;
  out.word_token_count = tw.token_count;
  out.inputs.input_ids = Tensor(DType::kI32, {B, longest});
  out.inputs.bbox = Tensor(DType::kI32, {B, longest, 4});
  out.inputs.attention_mask = Tensor(DType::kI32, {B, longest});
  int32_t* ids = out.inputs.input_ids.mutable_data_as<int32_t>();
  int32_t* bb = out.inputs.bbox.mutable_data_as<int32_t>();
  int32_t* mask = out.inputs.attention_mask.mutable_data_as<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    const Encoding& e = encs[b];
    std::vector<int32_t> wid(longest, -1);
    for (int64_t t = 0; t < longest; ++t) {
      const bool real = t < static_cast<int64_t>(e.size());
      ids[b * longest + t] = real ? e.input_ids[t] : im.tok.pad_id();
      mask[b * longest + t] = real ? 1 : 0;
      for (int k = 0; k < 4; ++k) bb[(b * longest + t) * 4 + k] = real ? e.bbox[t][k] : 0;  // pad box [0,0,0,0]
      if (real) wid[t] = e.word_ids[t];
    }
    out.word_ids.push_back(std::move(wid));
    out.windows.push_back({e.token_begin, e.token_end});
  }
  if (im.opt.use_image && im.model.visual_embed && !doc.image_path.empty()) {
    ImagePreprocess pp;
    if (im.model.image_size > 0) pp.size = im.model.image_size;
    const std::vector<float> px = pixel_values(load_image(doc.image_path), pp);
    out.inputs.pixel_values = Tensor(DType::kF32, {B, 3, pp.size, pp.size});
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(out.inputs.pixel_values.mutable_data_as<float>() + b * px.size(), px.data(), px.size() * sizeof(float));
  }
  return out;
}

DocumentResult DocumentPipeline::decode(const Document& doc, const EncodedDocument& enc, const Outputs& out) const {
  const Impl& im = *impl_;
  const Tensor logits = out.at("logits").to(DType::kF32);
  if (logits.rank() != 3 || logits.dim(0) != static_cast<int64_t>(enc.windows.size()) ||
      logits.dim(1) != enc.inputs.input_ids.dim(1))
    throw_error(ErrorCode::kShapeMismatch, "decode: logits ", shape_str(logits.shape()), " do not match ",
                enc.windows.size(), " windows of ", enc.inputs.input_ids.dim(1), " tokens");
  const int64_t T = logits.dim(1), C = logits.dim(2);
  DocumentResult r;
  r.id = doc.id;
  r.num_tokens = enc.num_tokens;
  r.windows = static_cast<int>(enc.windows.size());
  const std::vector<Box> boxes = normalized_boxes(doc);
  r.words.resize(doc.words.size());
  // Per word: the window and position of its first sub-token. A word inside several overlapping windows is read from
  // the one where its first sub-token lies farthest from that window's nearer edge, i.e. has the most tokens of
  // context on its poorer side (max over windows of min(tokens before, tokens after)); ties go to the earlier window.
  std::vector<int> best_window(doc.words.size(), -1), best_pos(doc.words.size(), -1), best_ctx(doc.words.size(), -1);
  for (size_t b = 0; b < enc.windows.size(); ++b) {
    const auto& wid = enc.word_ids[b];
    const int32_t begin = enc.windows[b][0], end = enc.windows[b][1];
    for (int64_t t = 0; t < T; ++t) {
      const int32_t w = wid[t];
      if (w < 0) continue;
      const int32_t stream_pos = begin + static_cast<int32_t>(t) - 1;  // position 0 is <s>
      if (stream_pos != enc.word_first_token[w]) continue;  // read a word at its first sub-token only
      const int ctx = std::min<int>(stream_pos - begin, end - 1 - stream_pos);
      if (ctx > best_ctx[w]) {
        best_ctx[w] = ctx;
        best_window[w] = static_cast<int>(b);
        best_pos[w] = static_cast<int>(t);
      }
    }
  }
  const float* lp = logits.data_as<float>();
  std::vector<std::string> predicted(doc.words.size(), "O");
  for (size_t w = 0; w < doc.words.size(); ++w) {
    WordResult& wr = r.words[w];
    wr.text = doc.words[w].text;
    wr.box = doc.words[w].box;
    wr.normalized_box = boxes[w];
    wr.label = doc.words[w].label;
    wr.tokens = enc.word_token_count[w];
    if (best_window[w] < 0) continue;
    wr.window = best_window[w];
    const float* row = lp + (static_cast<int64_t>(best_window[w]) * T + best_pos[w]) * C;
    const int64_t arg = std::max_element(row, row + C) - row;  // first maximum, as torch.argmax
    double z = 0;
    for (int64_t c = 0; c < C; ++c) z += std::exp(static_cast<double>(row[c]) - row[arg]);
    wr.score = static_cast<float>(1.0 / z);
    wr.predicted = arg < static_cast<int64_t>(im.model.labels.size()) ? im.model.labels[arg] : "LABEL_" + std::to_string(arg);
    predicted[w] = wr.predicted;
  }
  for (const Chunk& c : get_entities(predicted)) {
    EntityResult e;
    e.label = c.type;
    e.first_word = c.begin;
    e.last_word = c.end;
    e.box = doc.words[c.begin].box;
    for (int w = c.begin; w <= c.end; ++w) {
      if (w > c.begin) e.text += ' ';
      e.text += doc.words[w].text;
      const auto& b = doc.words[w].box;
      e.box = {std::min(e.box[0], b[0]), std::min(e.box[1], b[1]), std::max(e.box[2], b[2]), std::max(e.box[3], b[3])};
    }
    r.entities.push_back(std::move(e));
  }
  return r;
}

namespace {

Tensor slice_rows(const Tensor& t, int64_t begin, int64_t end) {
  if (!t.defined()) return t;
  Shape s = t.shape();
  const size_t row = t.nbytes() / static_cast<size_t>(s[0]);
  s[0] = end - begin;
  Tensor out(t.dtype(), s);
  std::memcpy(out.mutable_data(), static_cast<const char*>(t.data()) + begin * row, (end - begin) * row);
  return out;
}

}  // namespace

DocumentResult DocumentPipeline::run(ExecutionContext& ctx, const Document& doc) const {
  const Impl& im = *impl_;
  if (im.model.head != HeadKind::kTokenClassification)
    throw_error(ErrorCode::kUnsupported, "the document pipeline needs a token-classification plan, this one is ",
                head_kind_name(im.model.head));
  const EncodedDocument enc = encode(doc);
  const int64_t B = enc.inputs.input_ids.dim(0), T = enc.inputs.input_ids.dim(1);
  const int64_t chunk = std::max(1, im.model.max_batch);
  Outputs all;
  Tensor logits;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < B; b += chunk) {
    const int64_t e = std::min(B, b + chunk);
    Inputs in;
    in.input_ids = slice_rows(enc.inputs.input_ids, b, e);
    in.bbox = slice_rows(enc.inputs.bbox, b, e);
    in.attention_mask = slice_rows(enc.inputs.attention_mask, b, e);
    in.pixel_values = slice_rows(enc.inputs.pixel_values, b, e);
    RunOptions ro;
    ro.pack = true;  // only real tokens' logits are read: padding costs nothing
    const Tensor part = ctx.run(in, ro).at("logits").to(DType::kF32);
    if (!logits.defined()) logits = Tensor(DType::kF32, {B, T, part.dim(2)});
    std::memcpy(logits.mutable_data_as<float>() + b * T * part.dim(2), part.data(), part.nbytes());
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  all.tensors["logits"] = logits;
  DocumentResult r = decode(doc, enc, all);
  r.ms = ms;
  return r;
}

}  // namespace layoutrt
