// GEMM algorithms stored in the plan (BuildOptions::tune_gemm, src/cuda/gemm_algos.h): `layoutrt build` on a GPU
// times cuBLASLt's candidates for the model's GEMM shapes and records the winners with the GPU model; a fresh process
// loading the plan on the same GPU model uses them (no timing) and still matches transformers; a record from another
// GPU model is ignored with a warning (re-tuned); algorithms cuBLASLt rejects are re-chosen. The fresh processes are
// the CLI (LAYOUTRT_CLI): the algorithm table is per process.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cuda/device_info.h"
#include "cuda/gemm_algos.h"
#include "cuda/gemm_sm90.h"
#include "io/model_io.h"
#include "layoutrt/engine.h"
#include "ops/backend.h"
#include "plan/plan_format.h"
#include "plan_edit.h"
#include "test_util.h"

namespace layoutrt {
namespace {

using test::cli;
using test::CliResult;
using test::contains;
using test::edited_plan;


// fp32: cuBLASLt FP32 GEMMs (tuned like the others) and a 1e-5 budget against transformers, free of near-ties.
std::string compare_args(const std::string& plan) {
  return "compare --plan '" + plan + "' --backend cuda --inputs '" + test::fixtures("inputs/b3_pad137") +
         "' --reference '" + test::fixtures("expected/token_cls/b3_pad137.safetensors") + "' --rtol-l2 1e-5";
}

class GemmTuning : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    dir_ = new test::ScratchDir("gemm_tuning");
    plan_ = build_tuned("tuned.plan", Precision::kFP32, 3);
  }
  // A token_cls plan `name` in dir_, built with GEMM tuning on: batches 1 .. max_batch at T = 137, the shapes of the
  // b3_pad137 fixture (3 x 137 tokens). Its path.
  static std::string build_tuned(const std::string& name, Precision p, int64_t max_batch) {
    BuildOptions o;
    o.checkpoint_dir = test::fixtures("models/token_cls");
    o.precision = p;
    o.max_batch = max_batch;
    o.max_text_tokens = 137;
    o.tune_gemm = layoutrt::GemmTuning::kOn;
    const std::string path = dir_->file(name);
    build_plan(o, path);
    return path;
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::ScratchDir* dir_;
  static std::string plan_;
};
test::ScratchDir* GemmTuning::dir_ = nullptr;
std::string GemmTuning::plan_;

TEST_F(GemmTuning, BuildRecordsTheAlgorithmsWithTheGpuModel) {
  const nlohmann::json h = PlanFile::open(plan_).header();
  ASSERT_TRUE(h.contains("gemm_tuning"));
  const auto& g = h.at("gemm_tuning");
  EXPECT_EQ(g.at("device").get<std::string>(), Engine::load(plan_)->device_name());
  EXPECT_GT(g.at("sm_count").get<int>(), 0);
  // token_cls: QKV, out-proj, FFN up and down, patch projection, head — at batches 1, 2, 3.
  EXPECT_GE(g.at("algorithms").size(), 12u) << g.dump(1);
  for (const auto& a : g.at("algorithms")) EXPECT_EQ(a.at("algo").get<std::string>().size(), 128u);
  // An untuned build says so.
  BuildOptions o;
  o.checkpoint_dir = test::fixtures("models/token_cls");
  o.tune_gemm = layoutrt::GemmTuning::kOff;
  build_plan(o, dir_->file("untuned.plan"));
  EXPECT_FALSE(PlanFile::open(dir_->file("untuned.plan")).header().contains("gemm_tuning"));
  EXPECT_EQ(Engine::load(dir_->file("untuned.plan"))->gemm_tuning(), "no GEMM algorithms in the plan: timed on first use");
}

TEST_F(GemmTuning, AFreshProcessUsesThePlansAlgorithmsAndMatchesTransformers) {
  const CliResult b = cli("bench --plan '" + plan_ + "' --batch 1,3 --text-tokens 137 --warmup 1 --iters 3 -q");
  ASSERT_EQ(b.rc, 0) << b.output;
  EXPECT_TRUE(contains(b.output, "# gemm algorithms: ")) << b.output;
  EXPECT_TRUE(contains(b.output, " GEMM algorithms from the plan (tuned on ")) << b.output;
  EXPECT_FALSE(contains(b.output, "# gemm algorithms: 0 ")) << b.output;
  EXPECT_FALSE(contains(b.output, "warning")) << b.output;
  const CliResult c = cli(compare_args(plan_));
  EXPECT_EQ(c.rc, 0) << c.output;
  EXPECT_FALSE(contains(c.output, "warning")) << c.output;
}

TEST_F(GemmTuning, AnotherGpuModelsRecordIsIgnoredWithAWarning) {
  const std::string p = edited_plan(plan_, dir_->file("other_gpu.plan"), [](nlohmann::json& h) {
    h["gemm_tuning"]["device"] = "Imaginary GPU 9000";
  });
  const CliResult c = cli(compare_args(p));
  EXPECT_EQ(c.rc, 0) << c.output;
  EXPECT_TRUE(contains(c.output, "warning: the plan's GEMM algorithms were tuned on Imaginary GPU 9000")) << c.output;
  EXPECT_TRUE(contains(c.output, "re-tuned on first use")) << c.output;
}

TEST_F(GemmTuning, AlgorithmsCublasLtRejectsAreReChosen) {
  // Every record's algorithm replaced by one that is not a cuBLASLt algorithm (all bytes 0xff): each is rejected on
  // first use and chosen afresh; the answers stay exact.
  const std::string p = edited_plan(plan_, dir_->file("bad_algos.plan"), [](nlohmann::json& h) {
    for (auto& a : h["gemm_tuning"]["algorithms"]) a["algo"] = std::string(128, 'f');
  });
  const CliResult c = cli(compare_args(p));
  EXPECT_EQ(c.rc, 0) << c.output;
  EXPECT_TRUE(contains(c.output, "is rejected by cuBLASLt; re-tuned")) << c.output;
  // Malformed record: ignored with a warning, never a failure.
  const std::string q = edited_plan(plan_, dir_->file("malformed.plan"), [](nlohmann::json& h) {
    h["gemm_tuning"]["algorithms"] = {{{"m", "many"}}};
  });
  const CliResult d = cli(compare_args(q));
  EXPECT_EQ(d.rc, 0) << d.output;
  EXPECT_TRUE(contains(d.output, "unreadable entries ignored")) << d.output;
}

// GEMMs of concurrent lanes (LAYOUTRT_LANES=2: batches of two or more sequences split over two streams) are keys of
// their own (GemmKey::lanes), their candidates timed as two copies at once: the record holds lane-count-2 entries
// beside the one-lane ones (batch 1), a fresh process running two lanes uses them and matches transformers, and an
// entry with an impossible lane count is ignored with a warning.
TEST_F(GemmTuning, ConcurrentLanesAreTunedAndRecordedPerLaneCount) {
  const test::ScopedEnv lanes("LAYOUTRT_LANES", "2");
  const std::string plan = build_tuned("tuned_lanes.plan", Precision::kFP32, 3);
  const nlohmann::json h = PlanFile::open(plan).header();
  int one = 0, two = 0;
  for (const auto& a : h.at("gemm_tuning").at("algorithms")) {
    const int n = a.at("lanes").get<int>();
    one += n == 1;
    two += n == 2;
    EXPECT_TRUE(n == 1 || n == 2) << a.dump();
  }
  EXPECT_GE(one, 4) << "batch 1 runs one lane: QKV, out-projection, FFN up and down at least";
  EXPECT_GE(two, 4) << "batches 2 and 3 run two lanes";
  const CliResult c = cli(compare_args(plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  EXPECT_FALSE(contains(c.output, "warning")) << c.output;
  const std::string p = edited_plan(plan, dir_->file("lanes_9.plan"), [](nlohmann::json& h) {
    for (auto& a : h["gemm_tuning"]["algorithms"])
      if (a.at("lanes") == 2) a["lanes"] = 9;
  });
  const CliResult d = cli(compare_args(p));
  EXPECT_EQ(d.rc, 0) << d.output;
  EXPECT_TRUE(contains(d.output, "unreadable entries ignored")) << d.output;
}

// A stage-timed run (RunOptions::time_stages: the lanes run in turn, CUDA events between stages) multiplies with the
// keys of the forward it times — the lanes' — so it never times candidates inside a stage: after two-lane runs of a
// packed batch, a stage-timed run of it adds no algorithm to the process's table.
TEST_F(GemmTuning, StageTimedRunsUseTheLanesAlgorithms) {
  const test::ScopedEnv lanes("LAYOUTRT_LANES", "2");
  auto ctx = Engine::load(plan_)->create_context();
  const Inputs in = load_inputs(test::fixtures("inputs/b3_pad137"));
  auto entries = [] {
    cuda::GemmAlgoTable& t = cuda::GemmAlgoTable::instance();
    std::lock_guard<std::mutex> lock(t.mu);
    size_t two = 0;
    for (const auto& [dk, e] : t.entries) two += dk.second.lanes == 2;
    return std::make_pair(t.entries.size(), two);
  };
  // Packed: the lanes' row counts (sums of the sequences' real lengths) are no whole batch's, so a stage-timed run
  // keyed as one lane would meet new keys.
  RunOptions ro;
  ro.pack = true;
  for (int rep = 0; rep < 2; ++rep) ctx->run(in, ro);  // eager (timing the new keys), then recorded
  EXPECT_EQ(ctx->kernel_choices().at("lanes"), "2");
  const auto before = entries();
  EXPECT_GT(before.second, 0u) << "the two-lane runs' GEMMs are keys of lane count 2";
  ro.time_stages = true;
  ctx->run(in, ro);
  EXPECT_FALSE(ctx->stage_times_ms().empty());
  EXPECT_EQ(entries(), before) << "the stage-timed run met GEMM keys the two-lane runs had not";
}

// FP16 on Hopper with the CUTLASS GEMMs built: the record names the configuration of every key a Hopper GEMM won
// (at least the fused bias + GELU keys, which only they run), a fresh process uses them without a warning, and a
// record naming a configuration this build does not have is ignored with a warning (the key re-tuned).
TEST_F(GemmTuning, HopperConfigurationsAreRecordedByName) {
  if (!cuda::sm90_fused_gemm_built() || !cuda::device_is_sm90())
    GTEST_SKIP() << "needs the Hopper GEMMs (CUTLASS headers, compute capability 9.0)";
  const std::string plan = build_tuned("tuned_fp16.plan", Precision::kFP16, 2);
  const nlohmann::json h = PlanFile::open(plan).header();
  int gelu = 0, named = 0;
  for (const auto& a : h.at("gemm_tuning").at("algorithms")) {
    if (a.value("gelu", false)) {
      ++gelu;
      EXPECT_TRUE(a.contains("sm90")) << a.dump();
    }
    if (a.contains("sm90")) {
      ++named;
      EXPECT_GE(cuda::sm90_gemm_config_by_name(a.at("sm90").get<std::string>()), 0) << a.dump();
    }
  }
  EXPECT_GE(gelu, 2) << "batches 1 and 2: the FFN's first linear";
  EXPECT_GE(named, gelu);
  const CliResult b = cli("bench --plan '" + plan + "' --batch 1,2 --text-tokens 137 --warmup 1 --iters 3 -q");
  ASSERT_EQ(b.rc, 0) << b.output;
  EXPECT_TRUE(contains(b.output, " GEMM algorithms from the plan (tuned on ")) << b.output;
  EXPECT_FALSE(contains(b.output, "warning")) << b.output;
  const std::string p = edited_plan(plan, dir_->file("unknown_config.plan"), [](nlohmann::json& h) {
    for (auto& a : h["gemm_tuning"]["algorithms"])
      if (a.contains("sm90")) a["sm90"] = "warp_drive_512x512";
  });
  const CliResult c = cli("bench --plan '" + p + "' --batch 1 --text-tokens 137 --warmup 1 --iters 2 -q");
  EXPECT_EQ(c.rc, 0) << c.output;
  EXPECT_TRUE(contains(c.output, "unreadable entries ignored")) << c.output;
}

}  // namespace
}  // namespace layoutrt
