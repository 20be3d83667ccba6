// The whole engine on the CUDA backend against transformers: every (model, input case) pair of
// tests/fixtures/manifest.json, built into plans of every precision and run with BackendKind::kCUDA. Plus: two
// ExecutionContexts of one engine agree bit for bit, every batch size 1..max_batch, and T = 1.
//
// These tests need a GPU: without one they FAIL (cuda_device_available() is asserted), they never skip.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "cuda/device_info.h"
#include "io/model_io.h"
#include "io/safetensors_writer.h"
#include "layoutrt/engine.h"
#include "model/safetensors.h"
#include "ops/backend.h"
#include "test_util.h"

namespace layoutrt {
namespace {

#define REQUIRE_GPU() ASSERT_TRUE(cuda_device_available()) << "these tests need a CUDA device (none is visible)"

// ---- tolerances against transformers' float32 outputs -------------------------------------------------------------
// fp32 : the same arithmetic as the CPU parity test (tests/cpu/test_fixture_parity.cpp): only summation order differs.
// The other budgets were MEASURED without a GPU, by emulating each precision in the CPU backend on these fixtures
// (FP32 math, with every op output rounded to the activation dtype and the GEMM's output rounded before
// bias_activation, as the CUDA path does; tf32: GEMM inputs rounded to 10 mantissa bits, round-to-nearest). Worst
// rel-L2 / worst max-abs ÷ max|ref| over all fixture outputs:
//   tf32  1.7e-3 / 1.4e-3    fp16  1.5e-3 / 1.7e-3    mixed 1.5e-3 / 1.7e-3    bf16  1.2e-2 / 1.1e-2
// The budgets keep ≥ 2x margin over those (tf32 3x: tensor cores may truncate to TF32 instead of rounding, which
// roughly doubles its error). bf16 legitimately needs more than 5e-3: with 8 mantissa bits each stored activation
// carries ~2.3e-3 rms rounding error, ~15 roundings deep in these 2-layer models (seq_cls_bf16_sharded, whose weights
// are exact bf16, still measures 1.2e-2). Any indexing or formula error costs O(1e-1..1).
struct Tolerance {
  double rel_l2, max_abs_abs, max_abs_rel;  // max-abs bound = max_abs_abs + max_abs_rel · max|ref|
};
Tolerance tolerance_for(Precision p) {
  switch (p) {
    case Precision::kFP32: return {1e-5, 1e-4, 0};
    case Precision::kTF32: return {5e-3, 0, 1e-2};
    case Precision::kFP16:
    case Precision::kMixed: return {5e-3, 0, 1e-2};
    case Precision::kBF16: return {2.5e-2, 0, 5e-2};
  }
  return {0, 0, 0};
}
constexpr Precision kPrecisions[] = {Precision::kFP32, Precision::kTF32, Precision::kFP16, Precision::kBF16,
                                     Precision::kMixed};
constexpr int kMaxBatch = 4;

struct ParityRun {
  std::string model, case_name, expected;
  std::vector<std::string> inputs;
  Precision precision = Precision::kFP32;
};
void PrintTo(const ParityRun& r, std::ostream* os) {
  *os << r.model << " on " << r.expected << " (" << precision_name(r.precision) << ")";
}

std::vector<ParityRun> manifest_runs() {
  std::ifstream f(test::fixtures("manifest.json"));
  std::vector<ParityRun> runs;
  if (!f) return runs;
  const auto j = nlohmann::json::parse(f);
  for (Precision p : kPrecisions)
    for (const auto& [model, m] : j.at("models").items())
      for (const auto& r : m.at("runs"))
        runs.push_back({model, r.at("case").get<std::string>(),
                        r.contains("expected") ? r.at("expected").get<std::string>() : r.at("case").get<std::string>(),
                        r.at("inputs").get<std::vector<std::string>>(), p});
  return runs;
}

// One plan per (model, precision), built once per test binary; engines per (model, precision, backend).
std::string plan_for(const std::string& model, Precision p) {
  static test::ScratchDir dir("cuda_parity");
  static std::map<std::string, std::string> plans;
  const std::string key = model + "." + precision_name(p);
  auto& path = plans[key];
  if (path.empty()) {
    BuildOptions o;
    o.checkpoint_dir = test::fixtures("models/" + model);
    o.max_batch = kMaxBatch;
    o.precision = p;
    path = dir.file(key + ".plan");
    build_plan(o, path);
  }
  return path;
}
std::map<std::string, std::shared_ptr<Engine>>& engines() {
  static std::map<std::string, std::shared_ptr<Engine>> m;
  return m;
}
// Engines (and their device memory) are released before the CUDA runtime shuts down at process exit.
class ReleaseEngines : public ::testing::Environment {
 public:
  void TearDown() override { engines().clear(); }
};
const ::testing::Environment* const kReleaseEngines = ::testing::AddGlobalTestEnvironment(new ReleaseEngines);

std::shared_ptr<Engine> engine_for(const std::string& model, Precision p, BackendKind backend = BackendKind::kCUDA) {
  auto& e = engines()[model + "." + precision_name(p) + "." + backend_kind_name(backend)];
  if (!e) {
    EngineOptions eo;
    eo.backend = backend;
    e = Engine::load(plan_for(model, p), eo);
  }
  return e;
}

Inputs select_inputs(const Inputs& all, const std::vector<std::string>& names) {
  Inputs in;
  for (const auto& name : names) {
    if (name == "input_ids") in.input_ids = all.input_ids;
    if (name == "bbox") in.bbox = all.bbox;
    if (name == "attention_mask") in.attention_mask = all.attention_mask;
    if (name == "token_type_ids") in.token_type_ids = all.token_type_ids;
    if (name == "pixel_values") in.pixel_values = all.pixel_values;
  }
  return in;
}

// Rows `idx` of dim 0 (any dtype): batches assembled from fixture sequences.
Tensor take_rows(const Tensor& t, const std::vector<int>& idx) {
  if (!t.defined()) return t;
  Shape s = t.shape();
  const size_t row_bytes = t.nbytes() / static_cast<size_t>(s[0]);
  s[0] = static_cast<int64_t>(idx.size());
  Tensor out(t.dtype(), s);
  for (size_t i = 0; i < idx.size(); ++i)
    std::memcpy(static_cast<char*>(out.mutable_data()) + i * row_bytes,
                static_cast<const char*>(t.data()) + idx[i] * row_bytes, row_bytes);
  return out;
}
Inputs take_rows(const Inputs& in, const std::vector<int>& idx) {
  return {take_rows(in.input_ids, idx), take_rows(in.bbox, idx), take_rows(in.attention_mask, idx),
          take_rows(in.token_type_ids, idx), take_rows(in.pixel_values, idx)};
}
// The first n positions of dim 1 of a [B, T, ...] tensor.
Tensor first_positions(const Tensor& t, int64_t n) {
  if (!t.defined()) return t;
  Shape s = t.shape();
  const int64_t B = s[0], T = s[1];
  const size_t inner = t.nbytes() / static_cast<size_t>(B * T);
  s[1] = n;
  Tensor out(t.dtype(), s);
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(static_cast<char*>(out.mutable_data()) + b * n * inner,
                static_cast<const char*>(t.data()) + b * T * inner, n * inner);
  return out;
}

// Compares one output to its reference under `tol`; for "labels" (argmax), demands agreement wherever the reference's
// top two candidates differ by more than the observed logit error could explain.
void expect_close(const std::string& name, const Tensor& got, const Tensor& want, const Tensor* ref_logits,
                  const Tensor* got_logits, const Tolerance& tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what << " " << name;
  if (name == "labels") {
    ASSERT_TRUE(ref_logits && got_logits) << what;
    const Tensor logits = ref_logits->to(DType::kF32);
    const test::Diff ld = test::compare(*got_logits, *ref_logits);
    // If every logit is within e of the reference, our argmax a has ref[a] ≥ ref[b] − 2e: only closer calls may flip.
    const float tie = static_cast<float>(std::max(1e-4, 2 * ld.max_abs));
    const int64_t n = logits.dim(-1);
    int64_t differ = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const int a = got.data_as<int32_t>()[i], b = want.data_as<int32_t>()[i];
      if (a == b) continue;
      const float* row = logits.data_as<float>() + i * n;
      if (std::abs(row[a] - row[b]) > tie) ++differ;
    }
    EXPECT_EQ(differ, 0) << what << ": argmax labels differ beyond near-ties (tie margin " << tie << ")";
    return;
  }
  const test::Diff d = test::compare(got, want);
  double ref_max = 0;
  const Tensor w64 = want.to(DType::kF64);
  for (int64_t i = 0; i < w64.numel(); ++i) ref_max = std::max(ref_max, std::abs(w64.data_as<double>()[i]));
  EXPECT_EQ(d.nonfinite, 0) << what << " " << name;
  EXPECT_LE(d.rel_l2, tol.rel_l2) << what << " " << name << " rel-L2";
  EXPECT_LE(d.max_abs, tol.max_abs_abs + tol.max_abs_rel * ref_max) << what << " " << name << " max-abs";
  std::printf("  %-40s %-22s rel-L2 %.2e  max-abs %.2e\n", what.c_str(), name.c_str(), d.rel_l2, d.max_abs);
}

void expect_outputs_close(const Outputs& out, const std::map<std::string, Tensor>& ref, const Tolerance& tol,
                          const std::string& what) {
  for (const auto& [name, want] : ref) {
    ASSERT_TRUE(out.tensors.count(name)) << what << ": engine produced no " << name;
    const Tensor* ref_logits = ref.count("logits") ? &ref.at("logits") : nullptr;
    const Tensor* got_logits = out.tensors.count("logits") ? &out.at("logits") : nullptr;
    expect_close(name, out.at(name), want, ref_logits, got_logits, tol, what);
  }
}

// Bit-identical outputs: every tensor of `want` in `got` with the same shape and bytes; `what` names the comparison.
void expect_identical(const Outputs& got, const Outputs& want, const std::string& what) {
  ASSERT_EQ(got.tensors.size(), want.tensors.size()) << what;
  for (const auto& [name, t] : want.tensors) {
    const Tensor& u = got.at(name);
    ASSERT_EQ(t.shape(), u.shape()) << name << " " << what;
    EXPECT_EQ(std::memcmp(t.data(), u.data(), t.nbytes()), 0) << name << " differs " << what;
  }
}

std::map<std::string, Tensor> expected_outputs(const std::string& model, const std::string& expected) {
  SafetensorsFile f = SafetensorsFile::open(test::fixtures("expected/" + model + "/" + expected + ".safetensors"));
  std::map<std::string, Tensor> m;
  for (const auto& e : f.entries()) m[e.name] = f.tensor(e.name).clone();
  return m;
}

// ---- parity with transformers ------------------------------------------------------------------------------------
class CudaFixtureParity : public ::testing::TestWithParam<ParityRun> {};

TEST_P(CudaFixtureParity, MatchesTransformers) {
  REQUIRE_GPU();
  const ParityRun& r = GetParam();
  auto engine = engine_for(r.model, r.precision);
  ASSERT_EQ(engine->backend(), BackendKind::kCUDA);
  const Inputs in = select_inputs(load_inputs(test::fixtures("inputs/" + r.case_name)), r.inputs);
  const Outputs out = engine->create_context()->run(in);
  expect_outputs_close(out, expected_outputs(r.model, r.expected), tolerance_for(r.precision),
                       r.model + "/" + r.expected + "/" + precision_name(r.precision));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaFixtureParity, ::testing::ValuesIn(manifest_runs()),
                         [](const ::testing::TestParamInfo<ParityRun>& info) {
                           return info.param.model + "__" + info.param.expected + "__" +
                                  precision_name(info.param.precision);
                         });

TEST(CudaEngine, ManifestIsPresent) { EXPECT_GE(manifest_runs().size(), 100u) << test::fixtures("manifest.json"); }

TEST(CudaEngine, ReportsTheDevice) {
  REQUIRE_GPU();
  auto engine = engine_for("token_cls", Precision::kFP32);
  EXPECT_EQ(engine->backend(), BackendKind::kCUDA);
  EXPECT_FALSE(engine->device_name().empty());
  EXPECT_EQ(engine->device_name().find("CPU"), std::string::npos) << engine->device_name();
  std::printf("  device: %s\n", engine->device_name().c_str());
}

// ---- two contexts of one engine, run concurrently from two threads, agree bit for bit -----------------------------
TEST(CudaEngine, TwoContextsGiveIdenticalOutputs) {
  REQUIRE_GPU();
  for (Precision p : {Precision::kFP32, Precision::kFP16}) {
    SCOPED_TRACE(precision_name(p));
    auto engine = engine_for("token_cls", p);
    const Inputs in = load_inputs(test::fixtures("inputs/b3_pad137"));
    auto c1 = engine->create_context(), c2 = engine->create_context();
    ASSERT_NE(c1->device_stream(), nullptr);
    ASSERT_NE(c1->device_stream(), c2->device_stream()) << "contexts must not share a stream";
    Outputs o1, o2;
    RunOptions ro;
    ro.output_hidden_state = true;
    std::thread t1([&] { for (int i = 0; i < 3; ++i) o1 = c1->run(in, ro); });
    std::thread t2([&] { for (int i = 0; i < 3; ++i) o2 = c2->run(in, ro); });
    t1.join();
    t2.join();
    expect_identical(o2, o1, "between contexts");
    // And a third, sequential run on a fresh context agrees too (no state leaks from earlier runs).
    expect_identical(engine->create_context()->run(in, ro), o1, "on a fresh context");
  }
}

// ---- programmatic dependent launch (src/cuda/device_info.h pdl_enabled) changes no bit of the outputs -------------
// With PDL the forward's LayerNorms, wgmma attention and CUTLASS FFN GEMM may be scheduled under the kernel before
// them and wait in-kernel for its writes: a missing or misplaced wait reads half-written activations. Each context
// below records its own CUDA graph, under the setting in force (three runs: the first runs eagerly, the second records,
// the third replays), with the LayerNorms' programmatic edges moved to launch completion (graphs.cu; this one-lane
// batch qualifies) and without.
TEST(CudaEngine, ProgrammaticDependentLaunchGivesIdenticalOutputs) {
  REQUIRE_GPU();
  if (!cuda::pdl_enabled()) GTEST_SKIP() << "PDL needs compute capability 9.0 or later (and LAYOUTRT_PDL not 0)";
  const Inputs in = load_inputs(test::fixtures("inputs/b3_pad137"));
  RunOptions ro;
  ro.output_hidden_state = true;
  for (const std::string model : {"token_cls", "qa_1d_bias"})
    for (Precision p : {Precision::kFP16, Precision::kBF16, Precision::kFP32}) {
      SCOPED_TRACE(model + "/" + precision_name(p));
      Outputs off;
      {
        const test::ScopedEnv plain("LAYOUTRT_PDL", "0");
        auto ctx = engine_for(model, p)->create_context();
        off = ctx->run(in, ro);
        off = ctx->run(in, ro);
      }
      for (const char* early : {"1", "0"}) {  // graphs.cu: programmatic edges moved to launch completion, or not
        SCOPED_TRACE(std::string("LAYOUTRT_PDL_EARLY=") + early);
        const test::ScopedEnv setting("LAYOUTRT_PDL_EARLY", early);
        auto ctx = engine_for(model, p)->create_context();
        for (int i = 0; i < 3; ++i) expect_identical(ctx->run(in, ro), off, "with PDL, run " + std::to_string(i));
        // The rewrite finds its edges by the downstream kernel's name (backend_cuda.cu: "layer_norm"): a renamed
        // kernel would turn it off silently. This one-lane forward (B = 3 of a small model) has two LayerNorms behind
        // a GEMM per layer.
        const auto choices = ctx->kernel_choices();
        ASSERT_TRUE(choices.count("pdl_early_edges")) << "no graph was captured";
        const int moved = std::stoi(choices.at("pdl_early_edges"));
        if (std::string(early) == "1") EXPECT_GE(moved, 2) << "no LayerNorm edge moved to launch completion";
        else EXPECT_EQ(moved, 0);
      }
    }
}

// The recorded forward's empty root kernel (backend_cuda.cu graph_root_kernel) changes no output: with and without it
// (LAYOUTRT_GRAPH_ROOT=0) bit for bit in the eager, the recording and the replayed runs, with the bias cache's side
// stream forked behind it (fp16) and without a side stream (fp32). The backend reports whether its latest forward had
// the root (kernel_choices "graph_root"): one-lane forwards do; two-lane ones (LAYOUTRT_LANES=2) and the switch's 0
// do not.
TEST(CudaEngine, GraphRootKernelGivesIdenticalOutputs) {
  REQUIRE_GPU();
  const Inputs in = load_inputs(test::fixtures("inputs/b3_pad137"));
  RunOptions ro;
  ro.output_hidden_state = true;
  for (const std::string model : {"token_cls", "qa_1d_bias"})
    for (Precision p : {Precision::kFP16, Precision::kFP32}) {
      SCOPED_TRACE(model + "/" + precision_name(p));
      std::vector<Outputs> without;
      {
        const test::ScopedEnv off("LAYOUTRT_GRAPH_ROOT", "0");
        auto ctx = engine_for(model, p)->create_context();
        for (int i = 0; i < 3; ++i) without.push_back(ctx->run(in, ro));
        EXPECT_EQ(ctx->kernel_choices().at("graph_root"), "0");
      }
      auto ctx = engine_for(model, p)->create_context();
      for (int i = 0; i < 3; ++i)
        expect_identical(ctx->run(in, ro), without[i], "with the root kernel, run " + std::to_string(i));
      EXPECT_EQ(ctx->kernel_choices().at("graph_root"), "1") << "a one-lane forward without the root kernel";
      const test::ScopedEnv lanes("LAYOUTRT_LANES", "2");
      auto two = engine_for(model, p)->create_context();
      two->run(in, ro);
      EXPECT_EQ(two->kernel_choices().at("graph_root"), "0") << "a two-lane forward with the root kernel";
    }
}

// Engine::host_tensor on CUDA: page-locked memory, from which run() uploads pixel_values asynchronously (the copy is
// queued, not waited for; B = 3's 1.8 MB take the direct path, not the staging ring). The outputs equal those of the
// same pixels in pageable memory bit for bit, run after run, the buffer refilled with other pixels between runs: each
// run computes on what the buffer held when it was called.
TEST(CudaEngine, PageLockedInputsGiveTheSameOutputs) {
  REQUIRE_GPU();
  auto engine = engine_for("token_cls", Precision::kFP16);
  const Inputs in = load_inputs(test::fixtures("inputs/b3_pad137"));
  const Tensor px = in.pixel_values.to(DType::kF32);
  ASSERT_GT(px.nbytes(), size_t{1} << 20) << "pixels under the staging ring's limit would not test the direct copy";
  Tensor px2 = px.clone();
  for (int64_t i = 0; i < px2.numel(); ++i) px2.mutable_data_as<float>()[i] = -0.5f * px.data_as<float>()[i];
  Tensor pinned = engine->host_tensor(DType::kF32, px.shape());
  cudaPointerAttributes attr{};
  ASSERT_EQ(cudaPointerGetAttributes(&attr, pinned.data()), cudaSuccess);
  EXPECT_EQ(attr.type, cudaMemoryTypeHost) << "Engine::host_tensor must be page-locked on CUDA";

  auto ctx = engine->create_context();
  Inputs pageable1 = in, pageable2 = in, locked = in;
  pageable1.pixel_values = px;
  pageable2.pixel_values = px2;
  locked.pixel_values = pinned;
  const Outputs ref1 = ctx->run(pageable1), ref2 = ctx->run(pageable2);
  const size_t bytes = ref1.at("logits").nbytes();
  ASSERT_NE(std::memcmp(ref1.at("logits").data(), ref2.at("logits").data(), bytes), 0)
      << "the two pixel sets must give different logits";
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    std::memcpy(pinned.mutable_data(), px.data(), px.nbytes());
    const Outputs a = ctx->run(locked);
    std::memcpy(pinned.mutable_data(), px2.data(), px2.nbytes());
    const Outputs b = ctx->run(locked);
    EXPECT_EQ(std::memcmp(a.at("logits").data(), ref1.at("logits").data(), bytes), 0);
    EXPECT_EQ(std::memcmp(b.at("logits").data(), ref2.at("logits").data(), bytes), 0);
  }
}

// ---- every batch size 1..max_batch: sequence i of any batch matches transformers' output for it ------------------
TEST(CudaEngine, EveryBatchSize) {
  REQUIRE_GPU();
  const Inputs all = load_inputs(test::fixtures("inputs/b3_pad137"));
  for (const std::string model : {"token_cls", "qa_1d_bias", "seq_cls_bf16_sharded"})
    for (Precision p : {Precision::kFP32, Precision::kFP16}) {
      auto engine = engine_for(model, p);
      auto ctx = engine->create_context();  // one context: its workspace serves every batch size
      const auto ref = expected_outputs(model, "b3_pad137");
      const std::vector<int> order{2, 0, 1, 2};  // sequences of the 3-sequence fixture, one repeated
      for (int n = 1; n <= kMaxBatch; ++n) {
        const std::vector<int> idx(order.begin(), order.begin() + n);
        const Outputs out = ctx->run(take_rows(all, idx));
        std::map<std::string, Tensor> want;
        for (const auto& [name, t] : ref) want[name] = take_rows(t, idx);
        expect_outputs_close(out, want, tolerance_for(p),
                             model + "/batch " + std::to_string(n) + "/" + precision_name(p));
      }
    }
}

// ---- the flash kernel at the engine level -------------------------------------------------------------------------
// The transformers fixtures have head_dim 16 or 8, which the flash kernel (d = 32, 64, 128) does not take. Derived
// checkpoints: token_cls with 1 or 2 heads (head_dim 64, 32; the relative-bias tables keep their first rows) run
// the flash kernel and, for FP16/BF16, the precomputed bias cache (unless LAYOUTRT_ATTENTION_BIAS=lookup). The CPU
// engine (FP32 throughout) on the same checkpoint is the reference, with the precision's budget.
std::string derived_checkpoint(int heads) {
  static test::ScratchDir dir("flash_ckpt");
  const std::string out = dir.file("token_cls_h" + std::to_string(heads));
  if (std::filesystem::exists(out + "/model.safetensors")) return out;
  std::filesystem::create_directories(out);
  const std::string src = test::fixtures("models/token_cls");
  nlohmann::json config = nlohmann::json::parse(test::read_bytes(src + "/config.json"));
  config["num_attention_heads"] = heads;
  test::write_bytes(out + "/config.json", config.dump(2));
  const SafetensorsFile f = SafetensorsFile::open(src + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const SafetensorsEntry& e : f.entries()) {
    Tensor t = f.tensor(e.name);
    if (e.name.find("rel_pos") != std::string::npos) {  // [heads, bins]: the first `heads` rows
      Tensor rows(t.dtype(), {heads, t.dim(1)});
      std::memcpy(rows.mutable_data(), t.data(), rows.nbytes());
      t = rows;
    }
    tensors.emplace_back(e.name, t);
  }
  write_safetensors(out + "/model.safetensors", tensors);
  return out;
}

TEST(CudaEngine, FlashKernelAndBiasCacheMatchTheCpuEngine) {
  REQUIRE_GPU();
  const char* env = std::getenv("LAYOUTRT_ATTENTION_BIAS");
  const std::string cached = env && std::string(env) == "lookup" ? "lookup" : "cache";
  const char* attn_env = std::getenv("LAYOUTRT_ATTENTION");
  if (attn_env && std::string(attn_env) == "reference") GTEST_SKIP() << "LAYOUTRT_ATTENTION=reference";
  const Inputs in = load_inputs(test::fixtures("inputs/b3_pad137"));
  test::ScratchDir plans("flash_plans");
  for (int heads : {1, 2}) {
    const std::string ckpt = derived_checkpoint(heads);
    auto plan = [&](Precision p) {
      BuildOptions o;
      o.checkpoint_dir = ckpt;
      o.max_batch = kMaxBatch;
      o.precision = p;
      const std::string path = plans.file("h" + std::to_string(heads) + "." + precision_name(p) + ".plan");
      build_plan(o, path);
      return path;
    };
    RunOptions ro;
    ro.output_hidden_state = true;
    EngineOptions cpu_opt;
    cpu_opt.backend = BackendKind::kCPU;
    auto cpu_ctx = Engine::load(plan(Precision::kFP32), cpu_opt)->create_context();
    std::map<bool, std::map<std::string, Tensor>> want;  // padded and packed (the CPU engine packs too)
    for (bool pack : {false, true}) {
      ro.pack = pack;
      const Outputs cpu = cpu_ctx->run(in, ro);
      want[pack] = std::map<std::string, Tensor>(cpu.tensors.begin(), cpu.tensors.end());
    }
    // Lanes (LAYOUTRT_LANES=2): the batch's sequences split in two parts on two streams; the second part's attention
    // reads the bias cache from its first sequence on. Run three times (eager, graph capture, graph replay).
    for (const char* lanes : {"1", "2"})
      for (Precision p : {Precision::kFP16, Precision::kBF16, Precision::kMixed}) {
        const std::string what = "heads " + std::to_string(heads) + " " + precision_name(p) + " lanes " + lanes;
        SCOPED_TRACE(what);
        const test::ScopedEnv env("LAYOUTRT_LANES", lanes);
        auto engine = Engine::load(plan(p));
        auto ctx = engine->create_context();
        EXPECT_TRUE(ctx->kernel_choices().empty()) << "before any run";
        for (bool pack : {false, true})
          for (int rep = 0; rep < (lanes[0] == '2' ? 3 : 1); ++rep) {
            ro.pack = pack;
            const Outputs got = ctx->run(in, ro);
            const auto k = ctx->kernel_choices();
            ASSERT_TRUE(k.count("attention") && k.count("attention_bias") && k.count("lanes"));
            EXPECT_EQ(k.at("attention"), "flash");
            EXPECT_EQ(k.at("lanes"), lanes);
            // Mixed plans keep the biases FP32 (their policy): always looked up.
            EXPECT_EQ(k.at("attention_bias"), p == Precision::kMixed ? "lookup" : cached);
            expect_outputs_close(got, want[pack], tolerance_for(p),
                                 what + (pack ? " packed" : " padded") + " run " + std::to_string(rep));
            // The head's outputs alone: the last layer's attention computes only the text tokens' queries
            // (AttentionArgs::query_rows) and its dense layers run on those rows, gathered per lane.
            RunOptions head_only = ro;
            head_only.output_hidden_state = false;
            std::map<std::string, Tensor> want_head = want[pack];
            want_head.erase("last_hidden_state");
            const Outputs got_head = ctx->run(in, head_only);
            EXPECT_EQ(ctx->kernel_choices().at("last_layer_rows"), "head");
            EXPECT_FALSE(got_head.tensors.count("last_hidden_state"));
            expect_outputs_close(got_head, want_head, tolerance_for(p),
                                 what + (pack ? " packed" : " padded") + " head rows, run " + std::to_string(rep));
          }
      }
  }
  // head_dim 16 (the fixtures): the reference kernel.
  auto ctx = engine_for("token_cls", Precision::kFP32)->create_context();
  ctx->run(in);
  EXPECT_EQ(ctx->kernel_choices().at("attention"), "reference") << "head_dim 16";
}

// The attention's inline-tail form and the visual rows resident early (backend_cuda.cu early_filter: their
// programmatic edges behind the cuBLASLt GEMMs moved to the GEMMs' launch completion, the attention's first reads
// before its PDL wait): one sequence of 512 + 197 rows (a 5-row partial query tile) through the head_dim-64 model
// with two warpgroups per CTA, every layer on all rows. Outputs bit-identical to plain launches (LAYOUTRT_PDL=0) in
// the eager, recording and replayed runs; and the default filter moves at least one edge per layer (the attention's)
// plus the visual rows' more than the LayerNorms' alone — a renamed kernel would drop out of the filter silently.
TEST(CudaEngine, EarlyResidentAttentionGivesIdenticalOutputs) {
  REQUIRE_GPU();
  if (!cuda::pdl_enabled()) GTEST_SKIP() << "PDL needs compute capability 9.0 or later (and LAYOUTRT_PDL not 0)";
  const char* attn_env = std::getenv("LAYOUTRT_ATTENTION");
  if (attn_env && std::string(attn_env) == "reference") GTEST_SKIP() << "LAYOUTRT_ATTENTION=reference";
  const Inputs in = load_inputs(test::fixtures("inputs/b1_full512"));
  const test::ScopedEnv split("LAYOUTRT_FLASH_SPLIT", "2"), tail("LAYOUTRT_FLASH_TAIL", "inline");
  test::ScratchDir plans("early_plans");
  const std::string ckpt = derived_checkpoint(1);  // one head of 64: the wgmma kernel
  RunOptions ro;
  ro.output_hidden_state = true;  // the last layer on all rows too (with the head's rows alone: no partial tile)
  for (Precision p : {Precision::kFP16, Precision::kBF16}) {
    SCOPED_TRACE(precision_name(p));
    BuildOptions o;
    o.checkpoint_dir = ckpt;
    o.max_batch = 1;
    o.precision = p;
    const std::string path = plans.file(std::string(precision_name(p)) + ".plan");
    build_plan(o, path);
    auto engine = Engine::load(path);
    Outputs off;
    {
      const test::ScopedEnv plain("LAYOUTRT_PDL", "0");
      auto ctx = engine->create_context();
      off = ctx->run(in, ro);
      if (ctx->kernel_choices().at("attention_tail") != "inline")
        GTEST_SKIP() << "the inline tail needs the wgmma kernel (compute capability 9.0): "
                     << ctx->kernel_choices().at("attention_tail");
      off = ctx->run(in, ro);
    }
    std::map<std::string, int> moved;
    for (const char* only : {"", "layer_norm"}) {
      SCOPED_TRACE(std::string("LAYOUTRT_PDL_EARLY_ONLY=") + only);
      const test::ScopedEnv filter("LAYOUTRT_PDL_EARLY_ONLY", only);
      auto ctx = engine->create_context();
      for (int i = 0; i < 3; ++i) expect_identical(ctx->run(in, ro), off, "resident early, run " + std::to_string(i));
      const auto k = ctx->kernel_choices();
      EXPECT_EQ(k.at("attention_tail"), "inline");
      ASSERT_TRUE(k.count("pdl_early_edges")) << "no graph was captured";
      moved[only] = std::stoi(k.at("pdl_early_edges"));
    }
    const int layers = 2;  // models/token_cls
    EXPECT_GE(moved[""] - moved["layer_norm"], layers + 1)
        << "the attention's edge of every layer and the visual rows' edge";
  }
}

// ---- the residual stream's dtype (BuildOptions::fp32_residual) ----------------------------------------------------
// Every fixture run of a text+image, a text-only and an image-only model in fp16 / bf16 / mixed, built twice: with the
// FP32 residual stream (--residual f32) and with the 16-bit one (the default). Both must meet the precision's
// budget against transformers; summed over the runs (Σ|got − ref|² / Σ|ref|² over every float output), the FP32
// stream must be strictly more exact — it removes the rounding of the hidden state at every LayerNorm. A stream that
// is never read, or never written, fails one of the two.
TEST(CudaEngine, Fp32ResidualStreamIsMoreExact) {
  REQUIRE_GPU();
  test::ScratchDir plans("residual_plans");
  const auto manifest = nlohmann::json::parse(test::read_bytes(test::fixtures("manifest.json")));
  for (Precision p : {Precision::kFP16, Precision::kBF16, Precision::kMixed}) {
    double err2[2] = {0, 0}, ref2 = 0;  // [fp32 stream, native]
    for (const std::string model : {"token_cls", "token_cls_text_only", "seq_cls_image_only"}) {
      for (const bool f32 : {true, false}) {
        BuildOptions o;
        o.checkpoint_dir = test::fixtures("models/" + model);
        o.max_batch = kMaxBatch;
        o.precision = p;
        o.fp32_residual = f32;
        const std::string path = plans.file(model + "." + precision_name(p) + (f32 ? ".f32" : ".native") + ".plan");
        build_plan(o, path);
        auto engine = Engine::load(path);
        EXPECT_EQ(engine->info().residual, f32 ? DType::kF32 : encoder_dtype(p));
        auto ctx = engine->create_context();
        for (const auto& r : manifest.at("models").at(model).at("runs")) {
          const std::string expected = r.value("expected", r.at("case").get<std::string>());
          const std::string what = model + "/" + expected + "/" + precision_name(p) + (f32 ? "/f32-stream" : "/native");
          const Inputs in = select_inputs(load_inputs(test::fixtures("inputs/" + r.at("case").get<std::string>())),
                                          r.at("inputs").get<std::vector<std::string>>());
          const Outputs out = ctx->run(in);
          const auto want = expected_outputs(model, expected);
          expect_outputs_close(out, want, tolerance_for(p), what);
          for (const auto& [name, ref] : want) {
            if (name == "labels") continue;
            const Tensor g = out.at(name).to(DType::kF64), w = ref.to(DType::kF64);
            for (int64_t i = 0; i < w.numel(); ++i) {
              const double d = g.data_as<double>()[i] - w.data_as<double>()[i];
              err2[f32 ? 0 : 1] += d * d;
              if (f32) ref2 += w.data_as<double>()[i] * w.data_as<double>()[i];
            }
          }
        }
      }
    }
    const double e32 = std::sqrt(err2[0] / ref2), enat = std::sqrt(err2[1] / ref2);
    std::printf("  %s: rel-L2 over all runs, FP32 residual stream %.3e, native %.3e\n", precision_name(p), e32, enat);
    EXPECT_LT(e32, enat) << precision_name(p);
  }
}

// ---- padding-free batches (RunOptions::pack) on the GPU: variable-length sequences through the attention kernel --
TEST(CudaEngine, PackedRunMatchesPaddedRun) {
  REQUIRE_GPU();
  for (const std::string model : {"token_cls", "token_cls_text_only"})
    for (Precision p : {Precision::kFP32, Precision::kFP16}) {
      SCOPED_TRACE(model + " " + precision_name(p));
      auto ctx = engine_for(model, p)->create_context();
      Inputs in = load_inputs(test::fixtures("inputs/b3_pad137"));
      if (model == "token_cls_text_only") in.pixel_values = Tensor();  // visual_embed=false
      RunOptions padded_opt, packed_opt;
      padded_opt.output_hidden_state = packed_opt.output_hidden_state = true;
      packed_opt.pack = true;
      const Outputs padded = ctx->run(in, padded_opt), packed = ctx->run(in, packed_opt);
      const Tensor mask = in.attention_mask.to(DType::kI64);
      const int64_t B = mask.dim(0), T = mask.dim(1);
      const Tensor& hp = padded.at("last_hidden_state");
      const Tensor& hk = packed.at("last_hidden_state");
      ASSERT_EQ(hk.shape(), hp.shape());
      const int64_t L = hp.dim(1), H = hp.dim(2);
      double num = 0, den = 0;
      int64_t dropped = 0, dropped_nonzero = 0;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t r = 0; r < L; ++r) {
          const bool real = r >= T || mask.data_as<int64_t>()[b * T + r] != 0;
          dropped += !real;
          for (int64_t k = 0; k < H; ++k) {
            const double u = hk.data_as<float>()[(b * L + r) * H + k], v = hp.data_as<float>()[(b * L + r) * H + k];
            if (real) num += (u - v) * (u - v), den += v * v;
            else dropped_nonzero += u != 0.0;
          }
        }
      EXPECT_GT(dropped, 0) << "the case must have padding";
      EXPECT_EQ(dropped_nonzero, 0) << "dropped rows must read 0";
      // Packing changes only GEMM shapes (summation order) and which masked keys exist: within the precision's budget.
      EXPECT_LE(std::sqrt(num / den), tolerance_for(p).rel_l2) << "real rows' hidden states differ";
    }
}

// ---- a single text token (T = 1): the CUDA engine against the CPU engine on the same plan ------------------------
TEST(CudaEngine, SingleTextToken) {
  REQUIRE_GPU();
  const Inputs all = load_inputs(test::fixtures("inputs/b1_full512"));
  Inputs one;
  one.input_ids = first_positions(all.input_ids, 1);
  one.bbox = first_positions(all.bbox, 1);
  one.attention_mask = first_positions(all.attention_mask, 1);
  for (const std::string model : {"token_cls", "qa_1d_bias", "token_cls_text_only"}) {
    Inputs in = one;
    if (model != "token_cls_text_only") in.pixel_values = all.pixel_values;
    RunOptions ro;
    ro.output_hidden_state = true;
    const Outputs cpu = engine_for(model, Precision::kFP32, BackendKind::kCPU)->create_context()->run(in, ro);
    for (Precision p : kPrecisions) {
      const Outputs gpu = engine_for(model, p)->create_context()->run(in, ro);
      std::map<std::string, Tensor> want(cpu.tensors.begin(), cpu.tensors.end());
      // The CPU engine computes FP32 from FP32 weights: it is the reference here, with transformers' budgets.
      expect_outputs_close(gpu, want, tolerance_for(p), model + "/T=1/" + precision_name(p));
    }
  }
}

}  // namespace
}  // namespace layoutrt
