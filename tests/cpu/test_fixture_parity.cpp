// The CPU backend against transformers: every (model, input case) pair of tests/fixtures/manifest.json, built into an
// FP32 plan and run; outputs within rel-L2 1e-5 and max-abs 1e-4 of transformers' float32 outputs.
// (Both sides are FP32; the budget covers summation-order differences — measured ~1e-7 — with margin, and is far
// below what any indexing or formula error produces.)
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "io/model_io.h"
#include "layoutrt/engine.h"
#include "model/safetensors.h"
#include "test_util.h"

namespace layoutrt {
namespace {

struct ParityRun {
  std::string model, case_name, expected;
  std::vector<std::string> inputs;
};

void PrintTo(const ParityRun& r, std::ostream* os) { *os << r.model << " on " << r.expected; }

std::vector<ParityRun> manifest_runs() {
  std::ifstream f(test::fixtures("manifest.json"));
  std::vector<ParityRun> runs;
  if (!f) return runs;
  const auto j = nlohmann::json::parse(f);
  for (const auto& [model, m] : j.at("models").items())
    for (const auto& r : m.at("runs"))
      runs.push_back({model, r.at("case").get<std::string>(),
                      r.contains("expected") ? r.at("expected").get<std::string>() : r.at("case").get<std::string>(),
                      r.at("inputs").get<std::vector<std::string>>()});
  return runs;
}

class FixtureParity : public ::testing::TestWithParam<ParityRun> {
 protected:
  static std::shared_ptr<Engine> engine_for(const std::string& model) {
    static test::ScratchDir dir("parity");
    static std::map<std::string, std::shared_ptr<Engine>> engines;
    auto& e = engines[model];
    if (!e) {
      BuildOptions o;
      o.checkpoint_dir = test::fixtures("models/" + model);
      o.max_batch = 4;
      const std::string plan = dir.file(model + ".plan");
      build_plan(o, plan);
      EngineOptions eo;
      eo.backend = BackendKind::kCPU;
      e = Engine::load(plan, eo);
    }
    return e;
  }
};

TEST_P(FixtureParity, MatchesTransformers) {
  const ParityRun& r = GetParam();
  auto engine = engine_for(r.model);
  Inputs all = load_inputs(test::fixtures("inputs/" + r.case_name));
  Inputs in;
  for (const auto& name : r.inputs) {
    if (name == "input_ids") in.input_ids = all.input_ids;
    if (name == "bbox") in.bbox = all.bbox;
    if (name == "attention_mask") in.attention_mask = all.attention_mask;
    if (name == "token_type_ids") in.token_type_ids = all.token_type_ids;
    if (name == "pixel_values") in.pixel_values = all.pixel_values;
  }
  const Outputs out = engine->create_context()->run(in);
  SafetensorsFile ref = SafetensorsFile::open(test::fixtures("expected/" + r.model + "/" + r.expected + ".safetensors"));
  for (const auto& e : ref.entries()) {
    const Tensor want = ref.tensor(e.name);
    ASSERT_TRUE(out.tensors.count(e.name)) << "engine produced no " << e.name;
    const Tensor& got = out.at(e.name);
    ASSERT_EQ(got.shape(), want.shape()) << e.name;
    if (e.name == "labels") {
      // Argmax must agree wherever the reference's top two logits are not a near-tie.
      const Tensor logits = ref.tensor("logits").to(DType::kF32);
      const int64_t n = logits.dim(-1);
      int64_t differ = 0;
      for (int64_t i = 0; i < want.numel(); ++i) {
        const int a = got.data_as<int32_t>()[i], b = want.data_as<int32_t>()[i];
        if (a == b) continue;
        const float* row = logits.data_as<float>() + i * n;
        if (std::abs(row[a] - row[b]) > 1e-4f) ++differ;
      }
      EXPECT_EQ(differ, 0) << "argmax labels differ";
      continue;
    }
    const test::Diff d = test::compare(got, want);
    EXPECT_EQ(d.nonfinite, 0) << e.name;
    EXPECT_LE(d.rel_l2, 1e-5) << e.name << " rel-L2";
    EXPECT_LE(d.max_abs, 1e-4) << e.name << " max-abs";
    RecordProperty(e.name + "_rel_l2", std::to_string(d.rel_l2));
    std::printf("  %-22s %-28s %-18s rel-L2 %.2e  max-abs %.2e\n", r.model.c_str(), r.expected.c_str(),
                e.name.c_str(), d.rel_l2, d.max_abs);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureParity, ::testing::ValuesIn(manifest_runs()),
                         [](const ::testing::TestParamInfo<ParityRun>& info) {
                           return info.param.model + "__" + info.param.expected;
                         });

TEST(FixtureManifest, IsPresent) { EXPECT_GE(manifest_runs().size(), 20u) << test::fixtures("manifest.json"); }

}  // namespace
}  // namespace layoutrt
