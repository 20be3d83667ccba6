#include "pipeline/layout_encoder.h"

#include <algorithm>

#include "layoutrt/error.h"

namespace layoutrt::pipeline {

TokenizedWords tokenize_words(const BpeTokenizer& tok, const std::vector<std::string>& words) {
  TokenizedWords tw;
  tw.first_token.assign(words.size(), -1);
  tw.token_count.assign(words.size(), 0);
  for (size_t w = 0; w < words.size(); ++w) {
    const std::vector<int32_t> ids = tok.encode_word(words[w]);
    if (ids.empty()) continue;
    tw.first_token[w] = static_cast<int32_t>(tw.ids.size());
    tw.token_count[w] = static_cast<int32_t>(ids.size());
    for (size_t k = 0; k < ids.size(); ++k) {
      tw.ids.push_back(ids[k]);
      tw.word_of_token.push_back(static_cast<int32_t>(w));
      tw.first_of_word.push_back(k == 0);
    }
  }
  return tw;
}

Encoding encode_window(const BpeTokenizer& tok, const TokenizedWords& tw, const std::vector<Box>& boxes,
                       const std::vector<int32_t>& word_labels, int32_t begin, int32_t end, const EncodeOptions& opt) {
  if (boxes.size() != tw.num_words())
    throw_error(ErrorCode::kInvalidArgument, "encode: ", boxes.size(), " boxes for ", tw.num_words(), " words");
  if (!word_labels.empty() && word_labels.size() != tw.num_words())
    throw_error(ErrorCode::kInvalidArgument, "encode: ", word_labels.size(), " labels for ", tw.num_words(), " words");
  if (opt.max_length < 3) throw_error(ErrorCode::kInvalidArgument, "encode: max_length ", opt.max_length, " < 3");
  if (begin < 0 || end < begin || end > static_cast<int32_t>(tw.ids.size()) || end - begin > opt.max_length - 2)
    throw_error(ErrorCode::kInternal, "encode: window [", begin, ", ", end, ") of ", tw.ids.size(),
                " tokens does not fit max_length ", opt.max_length);
  Encoding e;
  e.token_begin = begin;
  e.token_end = end;
  const bool labelled = !word_labels.empty();
  auto push = [&](int32_t id, const Box& b, int32_t mask, int32_t word, int32_t label) {
    e.input_ids.push_back(id);
    e.bbox.push_back(b);
    e.attention_mask.push_back(mask);
    e.word_ids.push_back(word);
    if (labelled) e.labels.push_back(label);
  };
  push(tok.bos_id(), opt.special_box, 1, -1, kIgnoreLabel);
  for (int32_t t = begin; t < end; ++t) {
    const int32_t w = tw.word_of_token[t];
    // transformers labels the first position of each word *in the sequence* (word id differs from the previous
    // position's): the word's first sub-token, or the first token of a window that starts inside a word.
    const bool first_here = t == begin || tw.word_of_token[t - 1] != w;
    push(tw.ids[t], boxes[w], 1, w, labelled && first_here ? word_labels[w] : kIgnoreLabel);
  }
  push(tok.eos_id(), opt.special_box, 1, -1, kIgnoreLabel);
  if (opt.pad_to_max)
    while (static_cast<int>(e.size()) < opt.max_length) push(tok.pad_id(), opt.pad_box, 0, -1, kIgnoreLabel);
  return e;
}

Encoding encode_truncated(const BpeTokenizer& tok, const TokenizedWords& tw, const std::vector<Box>& boxes,
                          const std::vector<int32_t>& word_labels, const EncodeOptions& opt) {
  const int32_t n = static_cast<int32_t>(tw.ids.size());
  return encode_window(tok, tw, boxes, word_labels, 0, std::min(n, opt.max_length - 2), opt);
}

std::vector<std::pair<int32_t, int32_t>> make_windows(int32_t num_tokens, int32_t max_tokens, int32_t stride) {
  if (max_tokens < 1) throw_error(ErrorCode::kInvalidArgument, "windows: max tokens ", max_tokens, " < 1");
  if (stride < 0 || stride >= max_tokens)
    throw_error(ErrorCode::kInvalidArgument, "--stride ", stride, ": must be in 0..", max_tokens - 1,
                " (tokens shared by neighbouring windows of ", max_tokens, " tokens)");
  std::vector<std::pair<int32_t, int32_t>> w;
  int32_t begin = 0;
  while (true) {
    const int32_t end = std::min(num_tokens, begin + max_tokens);
    w.emplace_back(begin, end);
    if (end >= num_tokens) break;
    begin = end - stride;
  }
  return w;
}

}  // namespace layoutrt::pipeline
