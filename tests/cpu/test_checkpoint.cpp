// Checkpoint loading: config fields and defaults, head detection, and every bad checkpoint -> an error naming the
// tensor (and both shapes).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors_writer.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "test_util.h"

namespace layoutrt {
namespace {

namespace fs = std::filesystem;

// A writable copy of a fixture checkpoint whose tensors can be edited before writing it back.
struct CheckpointCopy {
  test::ScratchDir dir{"ckpt"};
  std::vector<std::pair<std::string, Tensor>> tensors;
  nlohmann::json config;
  explicit CheckpointCopy(const std::string& fixture) {
    SafetensorsFile f = SafetensorsFile::open(test::fixtures("models/" + fixture + "/model.safetensors"));
    for (const auto& e : f.entries()) tensors.emplace_back(e.name, f.tensor(e.name).clone());
    std::ifstream c(test::fixtures("models/" + fixture + "/config.json"));
    config = nlohmann::json::parse(c);
  }
  std::string write() {
    write_safetensors(dir.file("model.safetensors"), tensors);
    std::ofstream(dir.file("config.json")) << config.dump();
    return dir.path().string();
  }
  Tensor& at(const std::string& name) {
    for (auto& [n, t] : tensors) if (n == name) return t;
    throw std::runtime_error("no " + name);
  }
};

TEST(Config, DefaultsFollowTransformers) {
  const auto c = LayoutLMv3Config::from_json(nlohmann::json::object(), "config.json");
  EXPECT_EQ(c.vocab_size, 50265);
  EXPECT_EQ(c.max_position_embeddings, 512);  // LayoutLMv3Config's default (the base checkpoint says 514)
  EXPECT_EQ(c.type_vocab_size, 2);
  EXPECT_EQ(c.num_labels(), 2);
  EXPECT_EQ(c.visual_tokens(), 197);
  EXPECT_TRUE(c.has_relative_attention_bias && c.has_spatial_attention_bias && c.text_embed && c.visual_embed);
  EXPECT_EQ(c.activation(), Activation::kGeluErf);
}

TEST(Config, ReadsLabelsInIdOrder) {
  auto j = nlohmann::json::parse(R"({"id2label": {"10": "k", "2": "c", "0": "a", "1": "b", "3": "d", "4": "e",
      "5": "f", "6": "g", "7": "h", "8": "i", "9": "j"}, "patch_size": [16, 16]})");
  const auto c = LayoutLMv3Config::from_json(j, "config.json");
  ASSERT_EQ(c.num_labels(), 11);
  EXPECT_EQ(c.id2label[2], "c");
  EXPECT_EQ(c.id2label[10], "k");
  EXPECT_EQ(c.patch_size, 16);
}

TEST(Config, RejectsInconsistentFields) {
  test::expect_error([] { LayoutLMv3Config::from_json(nlohmann::json::parse(R"({"hidden_size": 100})"), "c.json"); },
                     ErrorCode::kFormat, {"c.json", "num_attention_heads"});
  test::expect_error(
      [] { LayoutLMv3Config::from_json(nlohmann::json::parse(R"({"coordinate_size": 100})"), "c.json"); },
      ErrorCode::kFormat, {"coordinate_size", "hidden_size"});
  test::expect_error([] { LayoutLMv3Config::from_json(nlohmann::json::parse(R"({"hidden_act": "mish"})"), "c.json"); },
                     ErrorCode::kUnsupported, {"mish"});
  test::expect_error(
      [] { LayoutLMv3Config::from_json(nlohmann::json::parse(R"({"model_type": "bert"})"), "c.json"); },
      ErrorCode::kUnsupported, {"bert"});
  test::expect_error([] { LayoutLMv3Config::from_json(nlohmann::json::parse(R"({"vocab_size": "many"})"), "c.json"); },
                     ErrorCode::kFormat, {"vocab_size"});
}

TEST(Checkpoint, LoadsEveryFixture) {
  for (const char* name : {"token_cls", "seq_cls_bf16_sharded", "token_cls16_f16", "qa_1d_bias", "base_spatial_only",
                           "token_cls_text_only", "seq_cls_image_only"}) {
    SCOPED_TRACE(name);
    const CheckpointWeights w = load_checkpoint(test::fixtures(std::string("models/") + name), "");
    EXPECT_FALSE(w.tensors.empty());
  }
  EXPECT_EQ(load_checkpoint(test::fixtures("models/seq_cls_bf16_sharded"), "").stored_dtype, "BF16");
  EXPECT_EQ(load_checkpoint(test::fixtures("models/seq_cls_bf16_sharded"), "").files.size(), 5u);
  EXPECT_EQ(load_checkpoint(test::fixtures("models/token_cls16_f16"), "").head, HeadKind::kTokenClassification);
  EXPECT_EQ(load_checkpoint(test::fixtures("models/qa_1d_bias"), "").head, HeadKind::kQuestionAnswering);
  EXPECT_EQ(load_checkpoint(test::fixtures("models/base_spatial_only"), "").head, HeadKind::kBase);
}

TEST(Checkpoint, HeadFromTensorNamesWithoutArchitectures) {
  CheckpointCopy ck("seq_cls_image_only");
  ck.config.erase("architectures");
  const std::string dir = ck.write();
  EXPECT_EQ(load_checkpoint(dir, "").head, HeadKind::kSequenceClassification);  // classifier.dense with < 10 labels
  // An explicit --head base refuses the classifier tensors as unexpected.
  test::expect_error([&] { load_checkpoint(dir, "base"); }, ErrorCode::kUnexpectedTensor, {"classifier.dense"});
}

TEST(Checkpoint, MissingTensorIsNamed) {
  CheckpointCopy ck("token_cls");
  ck.tensors.erase(std::remove_if(ck.tensors.begin(), ck.tensors.end(),
                                  [](const auto& p) { return p.first == "layoutlmv3.encoder.layer.1.output.dense.bias"; }),
                   ck.tensors.end());
  const std::string dir = ck.write();
  test::expect_error([&] { load_checkpoint(dir, ""); }, ErrorCode::kMissingTensor,
                     {"encoder.layer.1.output.dense.bias", "[64]"});
}

TEST(Checkpoint, WrongShapeNamesBothShapes) {
  CheckpointCopy ck("token_cls");
  ck.at("layoutlmv3.encoder.layer.0.intermediate.dense.weight") = Tensor(DType::kF32, {100, 64});
  const std::string dir = ck.write();
  test::expect_error([&] { load_checkpoint(dir, ""); }, ErrorCode::kShapeMismatch,
                     {"layoutlmv3.encoder.layer.0.intermediate.dense.weight", "[100, 64]", "[128, 64]",
                      "model.safetensors"});
}

TEST(Checkpoint, WrongDtypeIsNamed) {
  CheckpointCopy ck("token_cls");
  ck.at("classifier.weight") = Tensor(DType::kI64, {7, 64});
  const std::string dir = ck.write();
  test::expect_error([&] { load_checkpoint(dir, ""); }, ErrorCode::kDTypeMismatch, {"classifier.weight", "I64"});
}

TEST(Checkpoint, UnexpectedTensorIsNamed) {
  CheckpointCopy ck("token_cls");
  ck.tensors.emplace_back("lm_head.decoder.weight", Tensor(DType::kF32, {4, 4}));
  ck.tensors.emplace_back("layoutlmv3.embeddings.position_ids", Tensor(DType::kI64, {1, 514}));  // ignorable buffer
  const std::string dir = ck.write();
  test::expect_error([&] { load_checkpoint(dir, ""); }, ErrorCode::kUnexpectedTensor, {"lm_head.decoder.weight"});
}

TEST(Checkpoint, LabelCountMustMatchTheHead) {
  CheckpointCopy ck("token_cls");
  ck.config["id2label"] = {{"0", "A"}, {"1", "B"}, {"2", "C"}};
  const std::string dir = ck.write();
  test::expect_error([&] { load_checkpoint(dir, ""); }, ErrorCode::kShapeMismatch,
                     {"classifier.weight", "[7, 64]", "[3, 64]"});
}

TEST(Checkpoint, MissingConfigOrWeights) {
  test::ScratchDir dir("empty");
  test::expect_error([&] { load_checkpoint(dir.path().string(), ""); }, ErrorCode::kNotFound, {"config.json"});
  std::ofstream(dir.file("config.json")) << "{\"hidden_size\": 64,";
  test::expect_error([&] { load_checkpoint(dir.path().string(), ""); }, ErrorCode::kFormat, {"config.json", "JSON"});
  std::ofstream(dir.file("config.json")) << "{}";
  test::expect_error([&] { load_checkpoint(dir.path().string(), ""); }, ErrorCode::kNotFound, {"model.safetensors"});
  test::expect_error([&] { load_checkpoint(dir.file("nowhere"), ""); }, ErrorCode::kNotFound, {"nowhere"});
}

TEST(Checkpoint, TruncatedWeightsFileIsAFormatError) {
  test::ScratchDir dir("trunc");
  fs::copy_file(test::fixtures("models/token_cls/config.json"), dir.file("config.json"));
  const std::string bytes = test::read_bytes(test::fixtures("models/token_cls/model.safetensors"));
  test::write_bytes(dir.file("model.safetensors"), bytes.substr(0, bytes.size() - 1000));
  test::expect_error([&] { load_checkpoint(dir.path().string(), ""); }, ErrorCode::kFormat, {"model.safetensors"});
}

}  // namespace
}  // namespace layoutrt
