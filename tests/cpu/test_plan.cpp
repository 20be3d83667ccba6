// Plan file: round trip, inspect, and every corruption a user can meet (flipped byte, truncation, wrong magic,
// newer version, header that does not match the tensors) -> one clear layoutrt::Error, never a crash.
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "layoutrt/engine.h"
#include "ops/backend.h"
#include "plan/plan_format.h"
#include "plan/plan_layout.h"
#include "plan_edit.h"
#include "test_util.h"

namespace layoutrt {
namespace {

class PlanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir("plan");
    BuildOptions o;
    o.checkpoint_dir = test::fixtures("models/token_cls");
    o.max_batch = 3;
    o.max_text_tokens = 200;
    plan_ = dir_->file("token_cls.plan");
    build_plan(o, plan_);
  }
  static void TearDownTestSuite() { delete dir_; }
  // Writes bytes with the trailing checksum recomputed (to get past the checksum to the next check).
  static std::string with_checksum(std::string bytes) {
    const uint64_t h = xxh64(bytes.data(), bytes.size() - 8);
    std::memcpy(&bytes[bytes.size() - 8], &h, 8);
    return bytes;
  }
  static test::ScratchDir* dir_;
  static std::string plan_;
};
test::ScratchDir* PlanTest::dir_ = nullptr;
std::string PlanTest::plan_;

TEST_F(PlanTest, HeaderDescribesTheModel) {
  const auto h = nlohmann::json::parse(inspect_plan(plan_));
  EXPECT_EQ(h.at("format"), "layoutrt-plan");
  EXPECT_EQ(h.at("model").at("head"), "token_classification");
  EXPECT_EQ(h.at("model").at("labels").size(), 7u);
  EXPECT_EQ(h.at("model").at("labels")[1], "B-HEADER");
  EXPECT_EQ(h.at("precision").at("policy"), "fp32");
  EXPECT_EQ(h.at("build").at("max_batch"), 3);
  EXPECT_EQ(h.at("build").at("max_text_tokens"), 200);
  EXPECT_EQ(h.at("model").at("config").at("hidden_size"), 64);
  EXPECT_EQ(h.at("checksum"), "verified");
  PlanFile p = PlanFile::open(plan_);
  const auto qkv = p.find("encoder.layer.1.attention.qkv.weight");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->shape, (Shape{192, 64}));
  EXPECT_EQ(qkv->offset % kPlanAlignment, 0u);
  // 1D table covers max(T, 197) = 200 on each side; 2D the whole 0..1023 coordinate range.
  EXPECT_EQ(p.find("rel_pos.buckets_1d")->shape, (Shape{401}));
  EXPECT_EQ(p.find("rel_pos.buckets_2d")->shape, (Shape{2047}));
}

TEST_F(PlanTest, EveryPrecisionBuildsWithItsPolicy) {
  for (const char* name : {"tf32", "fp16", "bf16", "mixed"}) {
    BuildOptions o;
    o.checkpoint_dir = test::fixtures("models/token_cls");
    o.precision = *precision_from_name(name);
    const std::string path = dir_->file(std::string(name) + ".plan");
    build_plan(o, path);
    PlanFile p = PlanFile::open(path);
    EXPECT_EQ(p.find("encoder.layer.0.intermediate.dense.weight")->dtype, encoder_dtype(o.precision)) << name;
    EXPECT_EQ(p.find("embeddings.word_embeddings.weight")->dtype, embedding_dtype(o.precision)) << name;
    EXPECT_EQ(p.find("encoder.layer.0.output.LayerNorm.weight")->dtype, DType::kF32) << name;
  }
}

// The residual stream's dtype (BuildOptions::fp32_residual, `layoutrt build --residual`): recorded in the header,
// reported by the engine; plans from before the field read as the encoder's dtype; anything else is a format error.
TEST_F(PlanTest, ResidualStreamDtypeIsRecorded) {
  for (const bool f32 : {false, true})
    for (const char* name : {"fp32", "fp16", "bf16"}) {
      BuildOptions o;
      o.checkpoint_dir = test::fixtures("models/token_cls");
      o.precision = *precision_from_name(name);
      o.fp32_residual = f32;
      const std::string path = dir_->file(std::string("residual_") + name + (f32 ? "_f32" : "") + ".plan");
      build_plan(o, path);
      const DType want = f32 ? DType::kF32 : encoder_dtype(o.precision);
      EXPECT_EQ(nlohmann::json::parse(inspect_plan(path)).at("precision").at("residual"), dtype_name(want)) << name;
      EXPECT_EQ(Engine::load(path)->info().residual, want) << name << " f32 " << f32;
    }
  const std::string f32 = dir_->file("residual_fp16_f32.plan");
  test::edited_plan(f32, dir_->file("residual_old.plan"), [](nlohmann::json& h) { h["precision"].erase("residual"); });
  EXPECT_EQ(Engine::load(dir_->file("residual_old.plan"))->info().residual, DType::kF16);
  test::edited_plan(f32, dir_->file("residual_bad.plan"), [](nlohmann::json& h) { h["precision"]["residual"] = "BF16"; });
  test::expect_error([&] { Engine::load(dir_->file("residual_bad.plan")); }, ErrorCode::kFormat,
                     {"precision.residual", "BF16"});
}

TEST_F(PlanTest, FlippedByteAnywhereIsRejected) {
  const std::string good = test::read_bytes(plan_);
  const std::string bad = dir_->file("flipped.plan");
  // Positions in the fixed header, the JSON header, the tensor data and the checksum itself.
  for (size_t pos : {size_t{3}, size_t{9}, size_t{20}, size_t{100}, good.size() / 2, good.size() - 100,
                     good.size() - 3}) {
    std::string b = good;
    b[pos] = static_cast<char>(b[pos] ^ 0x40);
    test::write_bytes(bad, b);
    try {
      Engine::load(bad);
      ADD_FAILURE() << "flipped byte at " << pos << " was accepted";
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ErrorCode::kChecksum || e.code() == ErrorCode::kFormat ||
                  e.code() == ErrorCode::kVersion)
          << pos << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("flipped.plan"), std::string::npos) << e.what();
    }
  }
}

TEST_F(PlanTest, DataByteFlipIsAChecksumError) {
  std::string b = test::read_bytes(plan_);
  b[b.size() / 2] ^= 1;
  test::write_bytes(dir_->file("data_flip.plan"), b);
  test::expect_error([&] { Engine::load(dir_->file("data_flip.plan")); }, ErrorCode::kChecksum,
                     {"checksum mismatch", "rebuild"});
}

TEST_F(PlanTest, TruncatedPlanIsRejected) {
  const std::string good = test::read_bytes(plan_);
  for (size_t keep : {size_t{0}, size_t{7}, size_t{39}, size_t{500}, good.size() - 1}) {
    test::write_bytes(dir_->file("trunc.plan"), good.substr(0, keep));
    try {
      Engine::load(dir_->file("trunc.plan"));
      ADD_FAILURE() << "plan truncated to " << keep << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << e.what();
    }
  }
  test::write_bytes(dir_->file("trunc.plan"), good.substr(0, good.size() - 1000));
  test::expect_error([&] { Engine::load(dir_->file("trunc.plan")); }, ErrorCode::kFormat, {"truncated"});
}

TEST_F(PlanTest, WrongMagicSaysNotAPlan) {
  std::string b = test::read_bytes(plan_);
  b.replace(0, 8, "GGUF\0\0\0\0", 8);
  test::write_bytes(dir_->file("magic.plan"), b);
  test::expect_error([&] { Engine::load(dir_->file("magic.plan")); }, ErrorCode::kFormat, {"not a layoutrt plan"});
}

TEST_F(PlanTest, NewerFormatVersionIsRejected) {
  std::string b = test::read_bytes(plan_);
  b[8] = static_cast<char>(kPlanFormatVersion + 1);
  test::write_bytes(dir_->file("newer.plan"), with_checksum(b));
  test::expect_error([&] { Engine::load(dir_->file("newer.plan")); }, ErrorCode::kVersion, {"newer", "version 2"});
}

TEST_F(PlanTest, HeaderThatDoesNotMatchTheTensorsIsRejected) {
  // Same tensors, header claiming another intermediate size: the plan's tensor table no longer fits the model.
  test::edited_plan(plan_, dir_->file("mismatch.plan"),
                    [](nlohmann::json& h) { h["model"]["config"]["intermediate_size"] = 256; });
  test::expect_error([&] { Engine::load(dir_->file("mismatch.plan")); }, ErrorCode::kShapeMismatch,
                     {"intermediate.dense.weight", "[128, 64]", "[256, 64]"});
  // A tensor removed.
  PlanFile p = PlanFile::open(plan_);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : p.tensors()) tensors.emplace_back(t.name, p.tensor(t.name));
  tensors.pop_back();
  write_plan(dir_->file("missing.plan"), p.header(), tensors);
  test::expect_error([&] { Engine::load(dir_->file("missing.plan")); }, ErrorCode::kFormat, {"tensors"});
}

TEST_F(PlanTest, MissingFileIsNotFound) {
  test::expect_error([&] { Engine::load(dir_->file("nope.plan")); }, ErrorCode::kNotFound, {"nope.plan"});
}

TEST(PlanBuild, RejectsBadOptions) {
  test::ScratchDir dir("planopt");
  BuildOptions o;
  o.checkpoint_dir = test::fixtures("models/token_cls");
  o.max_text_tokens = 600;
  test::expect_error([&] { build_plan(o, dir.file("x.plan")); }, ErrorCode::kInvalidArgument,
                     {"--max-text-tokens 600", "1..512"});
  o.max_text_tokens = 512;
  o.max_batch = 0;
  test::expect_error([&] { build_plan(o, dir.file("x.plan")); }, ErrorCode::kInvalidArgument, {"--max-batch 0"});
  o.max_batch = 1;
  o.head = "lm";
  test::expect_error([&] { build_plan(o, dir.file("x.plan")); }, ErrorCode::kInvalidArgument, {"--head lm"});
}

// --tune-gemm on needs a GPU: a clear error before any work, no plan written. (Skipped where a GPU is present.)
TEST(PlanBuild, TuneGemmOnWithoutAGpuIsAClearError) {
#ifdef LAYOUTRT_WITH_CUDA
  if (cuda_device_available()) GTEST_SKIP() << "a CUDA device is present";
#endif
  test::ScratchDir dir("tune_gemm");
  BuildOptions o;
  o.checkpoint_dir = test::fixtures("models/token_cls");
  o.tune_gemm = GemmTuning::kOn;
  test::expect_error([&] { build_plan(o, dir.file("t.plan")); }, ErrorCode::kUnsupported, {"--tune-gemm on"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("t.plan")));
  o.tune_gemm = GemmTuning::kAuto;  // auto: no GPU, no record
  build_plan(o, dir.file("t.plan"));
  EXPECT_FALSE(PlanFile::open(dir.file("t.plan")).header().contains("gemm_tuning"));
}

TEST(Hash, Xxh64KnownVectors) {
  EXPECT_EQ(xxh64("", 0), 0xef46db3751d8e999ULL);
  EXPECT_EQ(xxh64("a", 1), 0xd24ec4f1a98c6e5bULL);
  EXPECT_EQ(xxh64("abc", 3), 0x44bc2cf5ad770999ULL);
  const std::string s = "0123456789abcdef0123456789abcdef0";
  EXPECT_EQ(xxh64(s.data(), s.size()), 0xe87684f08d6d0816ULL);
  Xxh64 streamed;
  for (char c : s) streamed.update(&c, 1);
  EXPECT_EQ(streamed.digest(), 0xe87684f08d6d0816ULL);
}

}  // namespace
}  // namespace layoutrt
