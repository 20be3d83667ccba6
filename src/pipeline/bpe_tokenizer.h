// Byte-level BPE as RoBERTa / LayoutLMv3 use it (GPT-2's scheme): UTF-8 text → pre-tokens by GPT-2's regex → bytes
// mapped to printable code points → BPE merges by rank → ids from vocab.json.
//
// LayoutLMv3's word-level encoding (transformers' LayoutLMv3Tokenizer(Fast) with is_split_into_words words): every
// word is pre-tokenized on its own with add_prefix_space=True, i.e. a space is put before the word unless it already
// starts with one, so "Date:" encodes as "ĠDate" ":" — never as a word that continues the previous one.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace layoutrt::pipeline {

class BpeTokenizer {
 public:
  // vocab.json (token → id) and merges.txt ("#version" header line, then "a b" per line, rank = line order) from a
  // checkpoint directory. Throws layoutrt::Error naming the file and line at fault.
  static BpeTokenizer load(const std::string& dir);
  static BpeTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);

  // Token ids of one word as LayoutLMv3 encodes it (prefix space unless the word starts with whitespace). An empty
  // word yields no tokens.
  std::vector<int32_t> encode_word(const std::string& word) const;
  // Token ids of raw text, pre-tokenized as is (no prefix space added).
  std::vector<int32_t> encode_text(const std::string& text) const;

  const std::string& token(int32_t id) const;  // the vocab's byte-level string
  int vocab_size() const { return static_cast<int>(id_to_token_.size()); }
  int32_t bos_id() const { return bos_id_; }  // <s>  (cls)
  int32_t eos_id() const { return eos_id_; }  // </s> (sep)
  int32_t pad_id() const { return pad_id_; }  // <pad>
  int32_t unk_id() const { return unk_id_; }  // <unk>

  // GPT-2's pre-tokenizer regex, 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+, as a
  // scanner over code points; returns the pieces as UTF-8 (exposed for tests).
  static std::vector<std::string> pre_tokenize(const std::string& text);

 private:
  void bpe(const std::string& piece, std::vector<int32_t>* out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // key: left + '\x01' + right (byte-level strings)
  int32_t bos_id_ = 0, eos_id_ = 2, pad_id_ = 1, unk_id_ = 3;
  std::string source_;
};

}  // namespace layoutrt::pipeline
