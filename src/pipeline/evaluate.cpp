#include "pipeline/evaluate.h"

#include <set>
#include <tuple>

#include "layoutrt/error.h"
#include "pipeline/postprocess.h"

namespace layoutrt::pipeline {

namespace {

using EntitySet = std::map<std::string, std::set<std::pair<int, int>>>;

EntitySet entity_sets(const std::vector<std::vector<std::string>>& seqs) {
  std::vector<std::string> flat;
  for (const auto& s : seqs) {
    flat.insert(flat.end(), s.begin(), s.end());
    flat.push_back("O");
  }
  EntitySet out;
  for (const Chunk& c : get_entities(flat)) out[c.type].insert({c.begin, c.end});
  return out;
}

double ratio(double a, double b) { return b == 0 ? 0.0 : a / b; }

void finish(Scores* s) {
  s->precision = ratio(static_cast<double>(s->correct), static_cast<double>(s->predicted));
  s->recall = ratio(static_cast<double>(s->correct), static_cast<double>(s->support));
  const double denom = s->precision + s->recall;
  s->f1 = denom == 0 ? 0.0 : 2 * s->precision * s->recall / denom;
}

}  // namespace

EvalReport evaluate(const std::vector<std::vector<std::string>>& y_true,
                    const std::vector<std::vector<std::string>>& y_pred) {
  if (y_true.size() != y_pred.size())
    throw_error(ErrorCode::kInvalidArgument, "evaluate: ", y_true.size(), " true sequences, ", y_pred.size(),
                " predicted");
  EvalReport r;
  r.sequences = static_cast<int64_t>(y_true.size());
  int64_t equal = 0;
  for (size_t i = 0; i < y_true.size(); ++i) {
    if (y_true[i].size() != y_pred[i].size())
      throw_error(ErrorCode::kInvalidArgument, "evaluate: sequence ", i, " has ", y_true[i].size(), " true labels and ",
                  y_pred[i].size(), " predicted");
    for (size_t k = 0; k < y_true[i].size(); ++k) equal += y_true[i][k] == y_pred[i][k];
    r.labels += static_cast<int64_t>(y_true[i].size());
  }
  r.accuracy = ratio(static_cast<double>(equal), static_cast<double>(r.labels));
  const EntitySet t = entity_sets(y_true), p = entity_sets(y_pred);
  std::set<std::string> types;
  for (const auto& kv : t) types.insert(kv.first);
  for (const auto& kv : p) types.insert(kv.first);
  for (const std::string& type : types) {
    Scores s;
    const auto ti = t.find(type), pi = p.find(type);
    s.support = ti == t.end() ? 0 : static_cast<int64_t>(ti->second.size());
    s.predicted = pi == p.end() ? 0 : static_cast<int64_t>(pi->second.size());
    if (ti != t.end() && pi != p.end())
      for (const auto& e : pi->second) s.correct += ti->second.count(e);
    finish(&s);
    r.per_type[type] = s;
    r.micro.support += s.support;
    r.micro.predicted += s.predicted;
    r.micro.correct += s.correct;
  }
  finish(&r.micro);
  // Macro: unweighted mean of the per-type scores; weighted: their mean weighted by support (numpy's average, as
  // seqeval computes them: sum, then divide).
  const double n = static_cast<double>(r.per_type.size());
  double sw = 0;
  for (const auto& [type, s] : r.per_type) {
    r.macro.precision += s.precision;
    r.macro.recall += s.recall;
    r.macro.f1 += s.f1;
    const double w = static_cast<double>(s.support);
    r.weighted.precision += s.precision * w;
    r.weighted.recall += s.recall * w;
    r.weighted.f1 += s.f1 * w;
    sw += w;
  }
  if (n > 0) r.macro.precision /= n, r.macro.recall /= n, r.macro.f1 /= n;
  if (sw > 0) r.weighted.precision /= sw, r.weighted.recall /= sw, r.weighted.f1 /= sw;
  else r.weighted = Scores{};
  r.macro.support = r.weighted.support = r.micro.support;
  r.macro.predicted = r.weighted.predicted = r.micro.predicted;
  r.macro.correct = r.weighted.correct = r.micro.correct;
  return r;
}

}  // namespace layoutrt::pipeline
