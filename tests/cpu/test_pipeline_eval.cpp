// Entity chunking and metrics against python seqeval 1.2.2 (tests/fixtures/pipeline/seqeval_cases.json from
// python/make_pipeline_fixtures.py): classification_report per type and micro / macro / weighted averages,
// accuracy_score, get_entities.
#include <nlohmann/json.hpp>

#include "pipeline/evaluate.h"
#include "pipeline/postprocess.h"
#include "test_util.h"

namespace layoutrt {
namespace {

TEST(PipelineEval, MatchesSeqeval) {
  std::ifstream f(test::fixtures("pipeline/seqeval_cases.json"));
  ASSERT_TRUE(f.good());
  const auto cases = nlohmann::json::parse(f);
  ASSERT_GE(cases.size(), 10u);
  int k = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE("case " + std::to_string(k++));
    using Seqs = std::vector<std::vector<std::string>>;
    const auto t = c.at("y_true").get<Seqs>(), p = c.at("y_pred").get<Seqs>();
    const pipeline::EvalReport r = pipeline::evaluate(t, p);
    EXPECT_NEAR(r.accuracy, c.at("accuracy").get<double>(), 1e-12);
    std::vector<std::string> flat;
    for (const auto& s : t) flat.insert(flat.end(), s.begin(), s.end()), flat.push_back("O");
    std::vector<std::tuple<std::string, int, int>> ents;
    for (const auto& e : pipeline::get_entities(flat)) ents.emplace_back(e.type, e.begin, e.end);
    EXPECT_EQ(ents, (c.at("true_entities").get<std::vector<std::tuple<std::string, int, int>>>()));
    auto check = [](const pipeline::Scores& s, const nlohmann::json& e, const std::string& what) {
      EXPECT_NEAR(s.precision, e.at("precision").get<double>(), 1e-12) << what;
      EXPECT_NEAR(s.recall, e.at("recall").get<double>(), 1e-12) << what;
      EXPECT_NEAR(s.f1, e.at("f1-score").get<double>(), 1e-12) << what;
      EXPECT_EQ(s.support, e.at("support").get<double>()) << what;
    };
    const auto& rep = c.at("report");
    size_t types = 0;
    for (const auto& [name, e] : rep.items()) {
      if (name == "micro avg") check(r.micro, e, name);
      else if (name == "macro avg") check(r.macro, e, name);
      else if (name == "weighted avg") check(r.weighted, e, name);
      else {
        ++types;
        ASSERT_TRUE(r.per_type.count(name)) << name;
        check(r.per_type.at(name), e, name);
      }
    }
    EXPECT_EQ(types, r.per_type.size());
  }
}

TEST(PipelineEval, ConllevalChunking) {
  using V = std::vector<std::string>;
  const auto e = pipeline::get_entities(V{"I-ANSWER", "I-ANSWER", "O", "B-QUESTION", "I-ANSWER", "B-HEADER", "B-HEADER"});
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0].type, "ANSWER");
  EXPECT_EQ(e[0].begin, 0);
  EXPECT_EQ(e[0].end, 1);  // I- after O starts an entity
  EXPECT_EQ(e[2].type, "ANSWER");
  EXPECT_EQ(e[2].begin, 4);  // I- of another type starts a new one
  EXPECT_EQ(e[3].begin, 5);
  EXPECT_EQ(e[4].begin, 6);  // B- after B- of the same type: two entities
}

TEST(PipelineEval, MismatchedLengthsAreErrors) {
  EXPECT_THROW(pipeline::evaluate({{"O", "O"}}, {{"O"}}), Error);
  EXPECT_THROW(pipeline::evaluate({{"O"}}, {}), Error);
}

}  // namespace
}  // namespace layoutrt
