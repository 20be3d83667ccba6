#include "pipeline/bpe_tokenizer.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "layoutrt/error.h"

namespace layoutrt::pipeline {

namespace {

struct CodepointRange {
  char32_t first, last;
};
#include "pipeline/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodepointRange (&table)[N], char32_t c) {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), c,
                                    [](char32_t v, const CodepointRange& r) { return v < r.first; });
  return it != std::begin(table) && c <= (it - 1)->last;
}

bool is_letter(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return in_ranges(kLetterRanges, c);
}
bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(kNumberRanges, c);
}
// \s of the regex engine (Oniguruma, Unicode mode): the White_Space property.
bool is_space(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

std::vector<char32_t> decode_utf8(const std::string& s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    int n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size())
      throw_error(ErrorCode::kFormat, "tokenizer: invalid UTF-8 byte 0x", std::hex, int(b), std::dec, " at byte ", i,
                  " of \"", s, "\"");
    char32_t c = n == 1 ? b : b & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const unsigned char cb = static_cast<unsigned char>(s[i + k]);
      if ((cb >> 6) != 2)
        throw_error(ErrorCode::kFormat, "tokenizer: invalid UTF-8 continuation at byte ", i + k, " of \"", s, "\"");
      c = (c << 6) | (cb & 0x3F);
    }
    out.push_back(c);
    i += n;
  }
  return out;
}

void append_utf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// GPT-2's reversible byte → code point map: printable Latin-1 bytes stand for themselves, the other 68 bytes are
// moved to 256, 257, ... in byte order, so every byte-level token is printable text.
const std::vector<std::string>& byte_symbols() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      append_utf8(printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++), &t[b]);
    }
    return t;
  }();
  return table;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_error(ErrorCode::kNotFound, "tokenizer: cannot open ", path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

std::vector<std::string> BpeTokenizer::pre_tokenize(const std::string& text) {
  const std::vector<char32_t> cp = decode_utf8(text);
  const size_t n = cp.size();
  std::vector<std::string> pieces;
  auto emit = [&](size_t a, size_t b) {
    std::string s;
    for (size_t k = a; k < b; ++k) append_utf8(cp[k], &s);
    pieces.push_back(std::move(s));
  };
  auto other = [](char32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); };
  size_t i = 0;
  while (i < n) {
    // 's 't 're 've 'm 'll 'd (case-sensitive, as in the regex)
    if (cp[i] == U'\'' && i + 1 < n) {
      const char32_t a = cp[i + 1], b = i + 2 < n ? cp[i + 2] : 0;
      size_t len = 0;
      if (a == U's' || a == U't' || a == U'm' || a == U'd') len = 2;
      else if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) len = 3;
      if (len) { emit(i, i + len); i += len; continue; }
    }
    // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional single U+0020, then a run of one class.
    const size_t s = (cp[i] == U' ' && i + 1 < n) ? i + 1 : i;
    bool (*cls)(char32_t) = nullptr;
    if (is_letter(cp[s])) cls = is_letter;
    else if (is_number(cp[s])) cls = is_number;
    else if (other(cp[s])) cls = [](char32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); };
    if (cls) {
      size_t e = s;
      while (e < n && cls(cp[e])) ++e;
      emit(i, e);
      i = e;
      continue;
    }
    // Whitespace: "\s+(?!\S)" takes the run but leaves its last character when a non-space follows (that one then
    // prefixes the next word); a lone whitespace before a non-space falls to "\s+".
    size_t e = i;
    while (e < n && is_space(cp[e])) ++e;
    if (e < n && e - i >= 2) --e;
    emit(i, e);
    i = e;
  }
  return pieces;
}

BpeTokenizer BpeTokenizer::load(const std::string& dir) {
  return from_files(dir + "/vocab.json", dir + "/merges.txt");
}

BpeTokenizer BpeTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt) {
  BpeTokenizer t;
  t.source_ = vocab_json;
  nlohmann::json v;
  try {
    v = nlohmann::json::parse(read_file(vocab_json));
  } catch (const nlohmann::json::exception& e) {
    throw_error(ErrorCode::kFormat, vocab_json, ": not valid JSON (", e.what(), ")");
  }
  if (!v.is_object() || v.empty()) throw_error(ErrorCode::kFormat, vocab_json, ": expected an object token -> id");
  t.id_to_token_.resize(v.size());
  std::vector<bool> seen(v.size(), false);
  for (const auto& [tok, id] : v.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= static_cast<int64_t>(v.size()))
      throw_error(ErrorCode::kFormat, vocab_json, ": token \"", tok, "\" has id ", id.dump(), ", expected 0..",
                  v.size() - 1);
    const int32_t i = id.get<int32_t>();
    if (seen[i]) throw_error(ErrorCode::kFormat, vocab_json, ": id ", i, " is used twice (\"", tok, "\")");
    seen[i] = true;
    t.id_to_token_[i] = tok;
    t.vocab_.emplace(tok, i);
  }
  auto special = [&](const char* name) {
    auto it = t.vocab_.find(name);
    if (it == t.vocab_.end()) throw_error(ErrorCode::kFormat, vocab_json, ": special token ", name, " is missing");
    return it->second;
  };
  t.bos_id_ = special("<s>");
  t.eos_id_ = special("</s>");
  t.pad_id_ = special("<pad>");
  t.unk_id_ = special("<unk>");

  std::istringstream m(read_file(merges_txt));
  std::string line;
  int64_t line_no = 0;
  int32_t rank = 0;
  while (std::getline(m, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos)
      throw_error(ErrorCode::kFormat, merges_txt, ":", line_no, ": expected \"left right\", got \"", line, "\"");
    const std::string left = line.substr(0, sp), right = line.substr(sp + 1);
    if (!t.vocab_.count(left + right))
      throw_error(ErrorCode::kFormat, merges_txt, ":", line_no, ": merge result \"", left + right,
                  "\" is not in ", vocab_json);
    t.merge_rank_.emplace(left + '\x01' + right, rank++);  // the first occurrence of a pair keeps its rank
  }
  if (rank == 0) throw_error(ErrorCode::kFormat, merges_txt, ": no merges");
  return t;
}

const std::string& BpeTokenizer::token(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw_error(ErrorCode::kInputOutOfRange, "tokenizer: id ", id, " outside the vocabulary 0..", vocab_size() - 1);
  return id_to_token_[id];
}

void BpeTokenizer::bpe(const std::string& piece, std::vector<int32_t>* out) const {
  const auto& bytes = byte_symbols();
  std::vector<std::string> sym;
  sym.reserve(piece.size());
  for (unsigned char b : piece) sym.push_back(bytes[b]);
  // Merge the adjacent pair of lowest rank, all its (non-overlapping, left to right) occurrences at once, until no
  // adjacent pair is a merge: the classic GPT-2 loop (equal to HF tokenizers' priority-queue order).
  while (sym.size() > 1) {
    int32_t best = INT32_MAX;
    for (size_t k = 0; k + 1 < sym.size(); ++k) {
      auto it = merge_rank_.find(sym[k] + '\x01' + sym[k + 1]);
      if (it != merge_rank_.end() && it->second < best) best = it->second;
    }
    if (best == INT32_MAX) break;
    std::vector<std::string> next;
    next.reserve(sym.size());
    for (size_t k = 0; k < sym.size();) {
      if (k + 1 < sym.size()) {
        auto it = merge_rank_.find(sym[k] + '\x01' + sym[k + 1]);
        if (it != merge_rank_.end() && it->second == best) {
          next.push_back(sym[k] + sym[k + 1]);
          k += 2;
          continue;
        }
      }
      next.push_back(sym[k]);
      ++k;
    }
    sym.swap(next);
  }
  for (const std::string& s : sym) {
    auto it = vocab_.find(s);
    out->push_back(it == vocab_.end() ? unk_id_ : it->second);
  }
}

std::vector<int32_t> BpeTokenizer::encode_text(const std::string& text) const {
  std::vector<int32_t> ids;
  for (const std::string& piece : pre_tokenize(text)) bpe(piece, &ids);
  return ids;
}

std::vector<int32_t> BpeTokenizer::encode_word(const std::string& word) const {
  if (word.empty()) return {};
  // add_prefix_space as HF tokenizers' ByteLevel pre-tokenizer does it: prepend U+0020 unless the word starts with one.
  const bool starts_with_space = word[0] == ' ';
  return encode_text(starts_with_space ? word : " " + word);
}

}  // namespace layoutrt::pipeline
