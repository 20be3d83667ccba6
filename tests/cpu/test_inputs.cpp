// Bad inputs give an error naming the input, index and value — never a crash or a silent wrong answer.
#include <chrono>
#include <cstring>

#include "io/model_io.h"
#include "layoutrt/engine.h"
#include "test_util.h"

namespace layoutrt {
namespace {

class InputsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir("inputs");
    for (const char* m : {"token_cls", "token_cls_text_only", "seq_cls_image_only"}) {
      BuildOptions o;
      o.checkpoint_dir = test::fixtures(std::string("models/") + m);
      o.max_batch = 3;
      o.max_text_tokens = 137;
      build_plan(o, dir_->file(std::string(m) + ".plan"));
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::shared_ptr<Engine> engine(const std::string& model) {
    EngineOptions eo;
    eo.backend = BackendKind::kCPU;
    static std::map<std::string, std::shared_ptr<Engine>> engines;
    auto& e = engines[model];
    if (!e) e = Engine::load(dir_->file(model + ".plan"), eo);
    return e;
  }
  static std::unique_ptr<ExecutionContext> ctx(const std::string& model) { return engine(model)->create_context(); }
  static Inputs good() { return load_inputs(test::fixtures("inputs/b3_pad137")); }
  template <class T>
  static void set(Tensor& t, int64_t i, T v) {
    t = t.clone();
    if (t.dtype() == DType::kI64) t.mutable_data_as<int64_t>()[i] = v;
    else if (t.dtype() == DType::kI32) t.mutable_data_as<int32_t>()[i] = static_cast<int32_t>(v);
    else if (t.dtype() == DType::kF32) t.mutable_data_as<float>()[i] = static_cast<float>(v);
    else FAIL() << "unexpected dtype";
  }
  static test::ScratchDir* dir_;
};
test::ScratchDir* InputsTest::dir_ = nullptr;

TEST_F(InputsTest, GoodInputsRun) {
  const Outputs o = ctx("token_cls")->run(good());
  EXPECT_EQ(o.at("logits").shape(), (Shape{3, 137, 7}));
  EXPECT_EQ(o.at("labels").shape(), (Shape{3, 137}));
}

// ExecutionContext::host_times_ms: the four phases of the last run, each >= 0, summing to at most its wall time.
TEST_F(InputsTest, HostPhasesAddUpToTheRun) {
  auto c = ctx("token_cls");
  EXPECT_TRUE(c->host_times_ms().empty()) << "before any run";
  const auto t0 = std::chrono::steady_clock::now();
  c->run(good());
  const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto h = c->host_times_ms();
  double sum = 0;
  for (const char* k : {"prepare", "upload", "forward", "download"}) {
    ASSERT_TRUE(h.count(k)) << k;
    EXPECT_GE(h.at(k), 0.0) << k;
    sum += h.at(k);
  }
  EXPECT_EQ(h.size(), 4u);
  EXPECT_LE(sum, wall + 1e-3);
  EXPECT_GT(h.at("forward"), 0.0);
}

TEST_F(InputsTest, IdOutsideVocabulary) {
  Inputs in = good();
  set(in.input_ids, 137 + 4, 1000);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange,
                     {"input_ids[1][4] = 1000", "0..999"});
  set(in.input_ids, 137 + 4, -3);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"input_ids[1][4] = -3"});
}

TEST_F(InputsTest, BoxOutsideRangeOrInverted) {
  Inputs in = good();
  set(in.bbox, (2 * 137 + 1) * 4 + 2, 1001);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"bbox[2][1]", "1001", "0..1000"});
  in = good();
  set(in.bbox, 5 * 4 + 0, 900);
  set(in.bbox, 5 * 4 + 2, 100);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"bbox[0][5]", "x1 < x0"});
  in = good();
  set(in.bbox, 6 * 4 + 1, 999);
  set(in.bbox, 6 * 4 + 3, 3);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"bbox[0][6]", "y1 < y0"});
  in = good();
  set(in.bbox, 0, -1);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"bbox[0][0]", "-1"});
}

TEST_F(InputsTest, TooManyTokensOrSequences) {
  Inputs in = load_inputs(test::fixtures("inputs/b1_full512"));
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange,
                     {"T = 512", "max_text_tokens 137"});
  in = good();
  Tensor ids(DType::kI64, {4, 10});
  in = Inputs{};
  in.input_ids = ids;
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"batch size 4", "max_batch 3"});
}

TEST_F(InputsTest, ShapeAndDtypeMismatches) {
  Inputs in = good();
  in.bbox = Tensor(DType::kI64, {3, 137, 2});
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kShapeMismatch, {"bbox", "[3, 137, 2]", "[3, 137, 4]"});
  in = good();
  in.input_ids = in.input_ids.to(DType::kF32);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kDTypeMismatch, {"input_ids", "F32"});
  in = good();
  in.pixel_values = Tensor(DType::kF32, {3, 3, 112, 112});
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kShapeMismatch,
                     {"pixel_values", "[3, 3, 112, 112]", "[3, 3, 224, 224]"});
  in = good();
  in.attention_mask = Tensor(DType::kI64, {2, 137});
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kShapeMismatch, {"attention_mask", "[2, 137]"});
  in = good();
  in.input_ids = Tensor(DType::kI64, {3});
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kShapeMismatch, {"input_ids", "[3]"});
}

TEST_F(InputsTest, MaskAndTokenTypeValues) {
  Inputs in = good();
  set(in.attention_mask, 7, 2);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"attention_mask[0][7] = 2"});
  in = good();
  in.token_type_ids = Tensor(DType::kI64, {3, 137});
  set(in.token_type_ids, 9, 2);
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"token_type_ids[0][9] = 2"});
}

TEST_F(InputsTest, NonFinitePixels) {
  Inputs in = good();
  in.pixel_values = in.pixel_values.to(DType::kF32);
  set(in.pixel_values, 3 * 224 * 224 + 224 + 5, std::nan(""));
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange,
                     {"pixel_values[1][0][1][5]", "not finite"});
}

// Engine::host_tensor: zero-filled, writable, of the asked dtype and shape, usable as any input (on the CPU backend
// ordinary memory: the same outputs bit for bit); it outlives its engine; a negative dim is refused.
TEST_F(InputsTest, HostTensorsAreWritableInputs) {
  const Inputs in = good();
  const Tensor px = in.pixel_values.to(DType::kF32);
  Tensor pinned = engine("token_cls")->host_tensor(DType::kF32, px.shape());
  ASSERT_EQ(pinned.dtype(), DType::kF32);
  ASSERT_EQ(pinned.shape(), px.shape());
  for (int64_t i = 0; i < pinned.numel(); ++i) ASSERT_EQ(pinned.data_as<float>()[i], 0.f) << i;
  std::memcpy(pinned.mutable_data(), px.data(), px.nbytes());
  Inputs with = in;
  with.pixel_values = pinned;
  const Outputs a = ctx("token_cls")->run(in), b = ctx("token_cls")->run(with);
  ASSERT_EQ(a.at("logits").nbytes(), b.at("logits").nbytes());
  EXPECT_EQ(std::memcmp(a.at("logits").data(), b.at("logits").data(), a.at("logits").nbytes()), 0);
  EXPECT_EQ(std::memcmp(a.at("labels").data(), b.at("labels").data(), a.at("labels").nbytes()), 0);
  Tensor outlives;
  {
    EngineOptions eo;
    eo.backend = BackendKind::kCPU;
    auto e = Engine::load(dir_->file("token_cls.plan"), eo);
    outlives = e->host_tensor(DType::kI64, {2, 3});
  }
  outlives.mutable_data_as<int64_t>()[5] = 7;
  EXPECT_EQ(outlives.data_as<int64_t>()[5], 7);
  EXPECT_EQ(engine("token_cls")->host_tensor(DType::kF16, {0, 4}).numel(), 0);
  test::expect_error([&] { engine("token_cls")->host_tensor(DType::kF32, {2, -1}); }, ErrorCode::kInvalidArgument,
                     {"host_tensor", "[2, -1]", "negative"});
}

TEST_F(InputsTest, InputsTheModelCannotTake) {
  Inputs in = good();
  test::expect_error([&] { ctx("token_cls_text_only")->run(in); }, ErrorCode::kInvalidArgument,
                     {"pixel_values", "visual_embed=false"});
  test::expect_error([&] { ctx("seq_cls_image_only")->run(in); }, ErrorCode::kInvalidArgument,
                     {"input_ids", "text_embed=false"});
  Inputs none;
  test::expect_error([&] { ctx("token_cls")->run(none); }, ErrorCode::kInvalidArgument, {"input_ids is required"});
  // Text only with every token masked attends to nothing.
  in = good();
  in.pixel_values = Tensor();
  in.attention_mask = Tensor(DType::kI64, {3, 137});
  test::expect_error([&] { ctx("token_cls")->run(in); }, ErrorCode::kInputOutOfRange, {"attention_mask[0]", "all zeros"});
}

TEST_F(InputsTest, OptionalInputsTakeTransformersDefaults) {
  // Without bbox and attention_mask: zeros and ones, as LayoutLMv3Model.forward fills them in.
  Inputs in;
  in.input_ids = good().input_ids;
  const Outputs o = ctx("token_cls")->run(in);
  EXPECT_EQ(o.at("logits").shape(), (Shape{3, 137, 7}));
}

}  // namespace
}  // namespace layoutrt
