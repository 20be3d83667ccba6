// Words + boxes → model tokens, as transformers' LayoutLMv3Processor/Tokenizer (apply_ocr=False, words given as
// is_split_into_words) lays them out: <s> w0-tokens w1-tokens ... </s> <pad>..., every sub-token carrying its word's
// box, the special tokens [0,0,0,0] (cls/sep box) and the pads the pad box [0,0,0,0]; with word labels, the first
// sub-token of each word carries the word's label and every other position -100 (in a window that starts inside a
// word, that word's first token there is labelled, as transformers' overflowing windows do).
//
// Long documents: the token stream (without specials) is cut into overlapping windows of at most max_length − 2
// tokens, `stride` tokens shared between neighbours (the meaning of transformers' `stride` with
// return_overflowing_tokens); each window is encoded as its own sequence with its own <s> … </s>.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/bpe_tokenizer.h"

namespace layoutrt::pipeline {

using Box = std::array<int32_t, 4>;  // x0 y0 x1 y1, normalised to 0..1000

constexpr int32_t kIgnoreLabel = -100;  // transformers' pad_token_label / CrossEntropy ignore_index

// The document's words as one token stream (no special tokens).
struct TokenizedWords {
  std::vector<int32_t> ids;
  std::vector<int32_t> word_of_token;   // word index of each token
  std::vector<bool> first_of_word;      // the word's first sub-token (the one that is labelled / read back)
  std::vector<int32_t> first_token;     // per word: index of its first token in `ids`, -1 when it has none
  std::vector<int32_t> token_count;     // per word: number of tokens (0 for an empty word)
  size_t num_words() const { return first_token.size(); }
};

TokenizedWords tokenize_words(const BpeTokenizer& tok, const std::vector<std::string>& words);

// One model sequence.
struct Encoding {
  std::vector<int32_t> input_ids;
  std::vector<Box> bbox;
  std::vector<int32_t> attention_mask;
  std::vector<int32_t> word_ids;  // word index per position, -1 for <s>, </s>, <pad>
  std::vector<int32_t> labels;    // label id per position (kIgnoreLabel where not labelled); empty without labels
  int32_t token_begin = 0, token_end = 0;  // the window [begin, end) of the token stream it holds
  size_t size() const { return input_ids.size(); }
};

struct EncodeOptions {
  int max_length = 512;      // sequence length with <s> and </s>
  bool pad_to_max = false;   // pad to max_length (transformers' padding="max_length")
  Box special_box = {0, 0, 0, 0};  // LayoutLMv3 cls/sep box
  Box pad_box = {0, 0, 0, 0};
};

// The tokens [begin, end) of the stream (end - begin <= max_length - 2) as one sequence. `boxes` is per word;
// `word_labels` per word (empty: no labels).
Encoding encode_window(const BpeTokenizer& tok, const TokenizedWords& tw, const std::vector<Box>& boxes,
                       const std::vector<int32_t>& word_labels, int32_t begin, int32_t end, const EncodeOptions& opt);

// transformers' truncation=True: the first max_length - 2 tokens (a word may be cut after its first sub-tokens).
Encoding encode_truncated(const BpeTokenizer& tok, const TokenizedWords& tw, const std::vector<Box>& boxes,
                          const std::vector<int32_t>& word_labels, const EncodeOptions& opt);

// Window bounds [begin, end) over num_tokens tokens: each at most max_tokens long, consecutive windows sharing
// `stride` tokens (0 <= stride < max_tokens), the last ending at num_tokens. One window when everything fits.
std::vector<std::pair<int32_t, int32_t>> make_windows(int32_t num_tokens, int32_t max_tokens, int32_t stride);

}  // namespace layoutrt::pipeline
