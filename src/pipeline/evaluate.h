// Entity-level precision / recall / F1 exactly as seqeval's classification_report / f1_score in their default mode
// (prefix BIO tags, conlleval chunking of postprocess.h), and seqeval's accuracy_score over the labels.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace layoutrt::pipeline {

struct Scores {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;       // true entities
  int64_t predicted = 0;     // predicted entities
  int64_t correct = 0;       // exact (type, begin, end) matches
};

struct EvalReport {
  std::map<std::string, Scores> per_type;  // sorted by type name, as seqeval's report
  Scores micro, macro, weighted;
  double accuracy = 0;                      // labels equal / labels
  int64_t labels = 0, sequences = 0;
};

// y_true and y_pred: one label sequence per document, of equal lengths. Like seqeval, sequences are joined with an
// "O" between them, entities are sets of (type, begin, end), and a 0/0 ratio counts as 0.
EvalReport evaluate(const std::vector<std::vector<std::string>>& y_true,
                    const std::vector<std::vector<std::string>>& y_pred);

}  // namespace layoutrt::pipeline
