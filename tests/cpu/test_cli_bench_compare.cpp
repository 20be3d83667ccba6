// `layoutrt bench` and `layoutrt compare` through the CLI binary (LAYOUTRT_CLI) on the CPU backend: bench writes its
// JSON / markdown with every field, compare passes against the fixture's own expected outputs and fails (exit 1)
// against a perturbed copy, and bad arguments give one clear line and the usage / file exit codes. No timing is
// asserted (benchmarks are tools, not tests).
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "io/safetensors_writer.h"
#include "layoutrt/engine.h"
#include "model/safetensors.h"
#include "test_util.h"

namespace layoutrt::test {
namespace {


class CliBenchCompare : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("cli_bench_compare");
    BuildOptions opt;
    opt.checkpoint_dir = fixtures("models/token_cls");
    opt.max_batch = 3;  // b3_pad137 has 3 sequences
    build_plan(opt, plan());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string plan() { return dir_->file("token_cls.plan"); }
  static std::string file(const std::string& name) { return dir_->file(name); }
  static ScratchDir* dir_;
};
ScratchDir* CliBenchCompare::dir_ = nullptr;

TEST_F(CliBenchCompare, BenchWritesJsonAndMarkdown) {
  const std::string json = file("bench.json"), md = file("bench.md");
  const CliResult r = cli("bench --plan '" + plan() + "' --backend cpu --batch 1,2 --iters 2 --warmup 1 --text-tokens 64 "
                          "--json '" + json + "' --markdown '" + md + "'");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "median_ms")) << r.output;
  EXPECT_TRUE(contains(r.output, "bench batch 2")) << "progress on stderr expected:\n" << r.output;

  const nlohmann::json j = nlohmann::json::parse(read_bytes(json));
  for (const char* key : {"date", "device", "backend", "precision", "command", "gflop_per_seq", "text_tokens",
                          "visual_tokens", "seq_len", "timing", "warmup", "iters", "memory", "results"})
    EXPECT_TRUE(j.contains(key)) << "bench JSON lacks " << key;
  EXPECT_EQ(j.at("backend"), "cpu");
  EXPECT_EQ(j.at("precision"), "fp32");
  EXPECT_EQ(j.at("timing"), "steady_clock");
  EXPECT_EQ(j.at("text_tokens"), 64);
  EXPECT_EQ(j.at("seq_len"), 64 + 197);
  EXPECT_EQ(j.at("pixel_values_memory"), "Engine::host_tensor (page-locked on CUDA)");
  EXPECT_GT(j.at("memory").at("host_peak_rss_bytes").get<int64_t>(), 0);
  // The tiny fixture (H 64, 2 layers, I 128, 7 labels) at T = 64, L = 261, by the formula in cmd_bench.cpp:
  // 2 · (2·L·H·3H + 4·L²·H + 2·L·H·H + 4·L·H·I) + 2·196·768·H + 2·T·H·7.
  const double L = 261, H = 64, I = 128, T = 64;
  const double want = 2 * (2 * L * H * 3 * H + 4 * L * L * H + 2 * L * H * H + 4 * L * H * I) + 2 * 196 * 768 * H +
                      2 * T * H * 7;
  EXPECT_NEAR(j.at("gflop_per_seq").get<double>(), want / 1e9, 1e-9);
  ASSERT_EQ(j.at("results").size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& row = j.at("results")[i];
    EXPECT_EQ(row.at("batch"), static_cast<int>(i + 1));
    EXPECT_EQ(row.at("iters"), 2);
    for (const char* key : {"median_ms", "p90_ms", "p99_ms", "seq_per_s", "tflops"})
      EXPECT_GT(row.at(key).get<double>(), 0) << key;
    EXPECT_LE(row.at("median_ms").get<double>(), row.at("p90_ms").get<double>());
    EXPECT_LE(row.at("p90_ms").get<double>(), row.at("p99_ms").get<double>());
  }
  const std::string table = read_bytes(md);
  EXPECT_TRUE(contains(table, "| engine | precision | batch |")) << table;
  EXPECT_TRUE(contains(table, "| layoutrt cpu | fp32 | 2 | 64 |")) << table;
}

TEST_F(CliBenchCompare, BenchWithRealLengths) {
  const std::string lengths = file("lengths.txt"), json = file("lengths.json");
  write_bytes(lengths, "# real token counts per document\n17 40\n300\n5\n");
  const CliResult r = cli("bench --plan '" + plan() + "' --backend cpu --batch 2 --iters 2 --warmup 0 --text-tokens 48 "
                          "--lengths '" + lengths + "' --json '" + json + "' -q --pageable-inputs");
  ASSERT_EQ(r.rc, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(read_bytes(json));
  EXPECT_EQ(j.at("pixel_values_memory"), "pageable");
  const auto& row = j.at("results")[0];
  EXPECT_EQ(row.at("distinct_batches"), 2);
  // (17 + 40 + min(300, 48) + 5) / 4
  EXPECT_DOUBLE_EQ(row.at("mean_real_tokens").get<double>(), (17 + 40 + 48 + 5) / 4.0);
}

TEST_F(CliBenchCompare, BenchBadArguments) {
  CliResult r = cli("bench --plan '" + plan() + "' --backend cpu --batch 1,4 --iters 1");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "max_batch 3")) << r.output;
  EXPECT_TRUE(contains(r.output, "--max-batch 4")) << r.output;

  r = cli("bench --plan '" + plan() + "' --backend cpu --batch 0 --iters 1");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--batch 0")) << r.output;

  r = cli("bench --plan '" + plan() + "' --backend cpu --batch one");
  EXPECT_EQ(r.rc, 2) << r.output;

  r = cli("bench --plan '" + plan() + "' --backend cpu --batch 1 --iters 0");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--iters")) << r.output;

  r = cli("bench --plan '" + plan() + "' --backend cpu --batch 1 --text-tokens 600");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--text-tokens 600")) << r.output;

  const std::string bad_lengths = file("bad_lengths.txt");
  write_bytes(bad_lengths, "12 x7\n");
  r = cli("bench --plan '" + plan() + "' --backend cpu --batch 1 --lengths '" + bad_lengths + "'");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "x7")) << r.output;

  r = cli("bench --plan '" + file("missing.plan") + "' --batch 1");
  EXPECT_EQ(r.rc, 4) << r.output;
  EXPECT_TRUE(contains(r.output, "missing.plan")) << r.output;

#if !defined(LAYOUTRT_ATTENTION_TRACE)
  // The attention trace exists only in builds configured with -DLAYOUTRT_ATTENTION_TRACE=ON.
  r = cli("bench --plan '" + plan() + "' --backend cpu --batch 1 --iters 1 --attention-trace '" + file("tr") + "'");
  EXPECT_EQ(r.rc, 6) << r.output;
  EXPECT_TRUE(contains(r.output, "LAYOUTRT_ATTENTION_TRACE=ON")) << r.output;
#endif
  // The device timeline needs a device: the CPU backend says so, before loading anything.
  r = cli("bench --plan '" + plan() + "' --backend cpu --batch 1 --iters 1 --kernel-trace '" + file("kt") + "'");
  EXPECT_EQ(r.rc, 6) << r.output;
  EXPECT_TRUE(contains(r.output, "--kernel-trace")) << r.output;
}

TEST_F(CliBenchCompare, ComparePassesAgainstFixtureReference) {
  const CliResult r = cli("compare --plan '" + plan() + "' --backend cpu --inputs '" + fixtures("inputs/b3_pad137") +
                          "' --reference '" + fixtures("expected/token_cls/b3_pad137.safetensors") + "'");
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "logits")) << r.output;
  EXPECT_TRUE(contains(r.output, "PASS")) << r.output;
  EXPECT_FALSE(contains(r.output, "FAIL")) << r.output;
}

TEST_F(CliBenchCompare, ComparePlanAgainstItselfAsJson) {
  const CliResult r = cli("compare --plan '" + plan() + "' --plan2 '" + plan() + "' --backend cpu --inputs '" +
                          fixtures("inputs/b1_box_edges") + "' --json");
  ASSERT_EQ(r.rc, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_TRUE(j.at("pass").get<bool>());
  bool saw_logits = false;
  for (const auto& t : j.at("tensors"))
    if (t.at("name") == "logits") {
      saw_logits = true;
      EXPECT_EQ(t.at("rel_l2").get<double>(), 0.0);
      EXPECT_EQ(t.at("agreement_percent").get<double>(), 100.0);
    }
  EXPECT_TRUE(saw_logits);
}

TEST_F(CliBenchCompare, CompareFailsAgainstPerturbedReference) {
  SafetensorsFile ref = SafetensorsFile::open(fixtures("expected/token_cls/b3_pad137.safetensors"));
  Tensor logits = ref.tensor("logits").clone();
  float* v = logits.mutable_data_as<float>();
  for (int64_t i = 0; i < logits.numel(); i += 3) v[i] *= 1.01f;  // ~0.6 % rel-L2: far above 1e-5
  const std::string perturbed = file("perturbed.safetensors");
  write_safetensors(perturbed, {{"logits", logits}, {"labels", ref.tensor("labels").clone()}});
  const CliResult r = cli("compare --plan '" + plan() + "' --backend cpu --inputs '" + fixtures("inputs/b3_pad137") +
                          "' --reference '" + perturbed + "'");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "FAIL")) << r.output;
  EXPECT_TRUE(contains(r.output, "rel-L2 above")) << r.output;
  // A loose enough tolerance passes the same pair.
  const CliResult loose = cli("compare --plan '" + plan() + "' --backend cpu --inputs '" +
                              fixtures("inputs/b3_pad137") + "' --reference '" + perturbed +
                              "' --rtol-l2 0.05 --atol 1 --min-agreement 90");
  EXPECT_EQ(loose.rc, 0) << loose.output;
}

TEST_F(CliBenchCompare, CompareBadArguments) {
  const std::string inputs = fixtures("inputs/b3_pad137");
  CliResult r = cli("compare --plan '" + plan() + "' --inputs '" + inputs + "'");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--plan2")) << r.output;
  EXPECT_TRUE(contains(r.output, "--reference")) << r.output;

  r = cli("compare --plan '" + plan() + "' --plan2 '" + plan() + "' --reference x.safetensors --inputs '" + inputs +
          "'");
  EXPECT_EQ(r.rc, 2) << r.output;

  r = cli("compare --plan '" + plan() + "' --backend cpu --inputs '" + inputs + "' --reference '" +
          file("nope.safetensors") + "'");
  EXPECT_EQ(r.rc, 4) << r.output;
  EXPECT_TRUE(contains(r.output, "nope.safetensors")) << r.output;

  // A reference for other inputs: shapes differ.
  r = cli("compare --plan '" + plan() + "' --backend cpu --inputs '" + inputs + "' --reference '" +
          fixtures("expected/token_cls/b1_full512.safetensors") + "'");
  EXPECT_EQ(r.rc, 3) << r.output;
  EXPECT_TRUE(contains(r.output, "shape")) << r.output;

  // A reference with none of the output names.
  const std::string other = file("other_names.safetensors");
  write_safetensors(other, {{"scores", Tensor(DType::kF32, {3, 137, 7})}});
  r = cli("compare --plan '" + plan() + "' --backend cpu --inputs '" + inputs + "' --reference '" + other + "'");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "no output names in common")) << r.output;
}

}  // namespace
}  // namespace layoutrt::test
