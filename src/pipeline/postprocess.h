// Labels → entities, with seqeval's chunking rules (default mode, prefix tags, the conlleval conventions): an entity
// starts at B-X, or at I-X after O or after a tag of another type; it ends before B, O or a tag of another type.
// E- and S- tags (IOBES) are honoured too, as seqeval does.
#pragma once

#include <string>
#include <vector>

namespace layoutrt::pipeline {

struct Chunk {
  std::string type;  // "QUESTION" for B-QUESTION / I-QUESTION
  int begin = 0;     // first position
  int end = 0;       // last position (inclusive, as seqeval)
};

// seqeval.metrics.sequence_labeling.get_entities(seq) for one flat sequence.
std::vector<Chunk> get_entities(const std::vector<std::string>& labels);

}  // namespace layoutrt::pipeline
