#include "pipeline/postprocess.h"

namespace layoutrt::pipeline {

namespace {

// seqeval splits a prefix tag "B-QUESTION" into tag 'B' and type "QUESTION" (first character, then what follows the
// first '-' after it; "_" when empty, so O has type "_").
void split_tag(const std::string& label, char* tag, std::string* type) {
  *tag = label.empty() ? 'O' : label[0];
  const std::string rest = label.size() > 1 ? label.substr(1) : std::string();
  const size_t dash = rest.find('-');
  *type = dash == std::string::npos ? rest : rest.substr(dash + 1);
  if (type->empty()) *type = "_";
}

bool end_of_chunk(char prev_tag, char tag, const std::string& prev_type, const std::string& type) {
  if (prev_tag == 'E' || prev_tag == 'S') return true;
  if ((prev_tag == 'B' || prev_tag == 'I') && (tag == 'B' || tag == 'S' || tag == 'O')) return true;
  return prev_tag != 'O' && prev_tag != '.' && prev_type != type;
}

bool start_of_chunk(char prev_tag, char tag, const std::string& prev_type, const std::string& type) {
  if (tag == 'B' || tag == 'S') return true;
  if ((prev_tag == 'E' || prev_tag == 'S' || prev_tag == 'O') && (tag == 'E' || tag == 'I')) return true;
  return tag != 'O' && tag != '.' && prev_type != type;
}

}  // namespace

std::vector<Chunk> get_entities(const std::vector<std::string>& labels) {
  std::vector<Chunk> chunks;
  char prev_tag = 'O';
  std::string prev_type;  // "" before the first label, as seqeval
  int begin = 0;
  const int n = static_cast<int>(labels.size());
  for (int i = 0; i <= n; ++i) {  // one trailing "O" closes the last chunk
    char tag;
    std::string type;
    split_tag(i < n ? labels[i] : std::string("O"), &tag, &type);
    if (end_of_chunk(prev_tag, tag, prev_type, type)) chunks.push_back({prev_type, begin, i - 1});
    if (start_of_chunk(prev_tag, tag, prev_type, type)) begin = i;
    prev_tag = tag;
    prev_type = type;
  }
  return chunks;
}

}  // namespace layoutrt::pipeline
