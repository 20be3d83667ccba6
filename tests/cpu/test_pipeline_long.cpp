// Long documents: a synthetic 3 000-word page through overlapping windows, with the tiny token-classification fixture
// model (FUNSD labels, vocab 1000: the page uses words whose roberta ids are below 1000). Every word gets exactly one
// label, the windows cover every token with `stride` shared, and each word is read from the window where its first
// sub-token has the most context (checked with logits that name their window). Also the CLI: run --document,
// --visualize, eval, and --inputs/--document exclusion.
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "layoutrt/pipeline.h"
#include "pipeline/image.h"
#include "pipeline_test_util.h"

namespace layoutrt {
namespace {

// " the", " of", ... are single roberta tokens with ids < 1000 (the fixture model's vocabulary).
const std::vector<std::string> kWords = {"the", "of", "and", "to", "a", "in", "for", "is", "on", "that", "by",
                                         "with", "from", "at", "as", "be", "this", "are", "or", "name", "total",
                                         "number", "report"};

Document synthetic_page(int n_words, int width = 2000, int height = 3000) {
  Document d;
  d.path = "synthetic";
  d.id = "synthetic";
  d.width = width;
  d.height = height;
  const int cols = 50, rows = (n_words + cols - 1) / cols;
  for (int i = 0; i < n_words; ++i) {
    const double cw = static_cast<double>(width) / cols, rh = static_cast<double>(height) / rows;
    const int c = i % cols, r = i / cols;
    d.words.push_back({kWords[(i * 7 + i / 13) % kWords.size()], {c * cw + 2, r * rh + 1, (c + 1) * cw - 2, (r + 1) * rh - 1}, ""});
  }
  return d;
}

ModelInfo funsd_info(int vocab) {
  ModelInfo m;
  m.head = HeadKind::kTokenClassification;
  m.labels = {"O", "B-HEADER", "I-HEADER", "B-QUESTION", "I-QUESTION", "B-ANSWER", "I-ANSWER"};
  m.num_labels = 7;
  m.vocab_size = vocab;
  m.max_text_tokens = 512;
  m.max_batch = 8;
  m.visual_embed = false;
  return m;
}

TEST(PipelineLong, WindowsCoverEveryTokenWithStrideShared) {
  LAYOUTRT_REQUIRE_TOKENIZER();
  PipelineOptions po;
  po.stride = 128;
  DocumentPipeline pipe(funsd_info(50265), test::roberta_tokenizer_dir(), po);
  const Document doc = synthetic_page(3000);
  const EncodedDocument enc = pipe.encode(doc);
  ASSERT_EQ(enc.num_tokens, 3000);
  ASSERT_EQ(enc.windows.size(), 8u);  // 510 tokens each, advancing 382
  EXPECT_EQ(enc.windows.front()[0], 0);
  EXPECT_EQ(enc.windows.back()[1], 3000);
  for (size_t b = 0; b < enc.windows.size(); ++b) {
    EXPECT_LE(enc.windows[b][1] - enc.windows[b][0], 510);
    if (b > 0) EXPECT_EQ(enc.windows[b - 1][1] - enc.windows[b][0], 128) << "window " << b;
  }
  EXPECT_EQ(enc.inputs.input_ids.dim(0), 8);
  EXPECT_EQ(enc.inputs.input_ids.dim(1), 512);
}

TEST(PipelineLong, EachWordReadFromItsBestContextWindow) {
  LAYOUTRT_REQUIRE_TOKENIZER();
  PipelineOptions po;
  po.stride = 128;
  DocumentPipeline pipe(funsd_info(50265), test::roberta_tokenizer_dir(), po);
  Document doc = synthetic_page(3000);
  doc.words[700].text = "antidisestablishmentarianism";  // multi-token words, some straddling window edges
  for (int i = 880; i < 900; ++i) doc.words[i].text = "supercalifragilistic";
  const EncodedDocument enc = pipe.encode(doc);
  const int64_t B = enc.inputs.input_ids.dim(0), T = enc.inputs.input_ids.dim(1);
  // Logits that name their window: label (b mod 7) everywhere in window b.
  Tensor logits(DType::kF32, {B, T, 7});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) logits.mutable_data_as<float>()[(b * T + t) * 7 + b % 7] = 5.0f;
  Outputs out;
  out.tensors["logits"] = logits;
  const DocumentResult r = pipe.decode(doc, enc, out);
  ASSERT_EQ(r.words.size(), doc.words.size());
  const auto& names = funsd_info(0).labels;
  for (size_t w = 0; w < doc.words.size(); ++w) {
    // Independent statement of the rule: among windows holding the word's first sub-token f, the one maximising
    // min(f - begin, end - 1 - f); the earlier on ties.
    const int f = enc.word_first_token[w];
    int best = -1, best_ctx = -1;
    for (size_t b = 0; b < enc.windows.size(); ++b) {
      const int begin = enc.windows[b][0], end = enc.windows[b][1];
      if (f < begin || f >= end) continue;
      const int ctx = std::min(f - begin, end - 1 - f);
      if (ctx > best_ctx) best_ctx = ctx, best = static_cast<int>(b);
    }
    ASSERT_GE(best, 0) << "word " << w << " is in no window";
    EXPECT_EQ(r.words[w].window, best) << "word " << w;
    EXPECT_EQ(r.words[w].predicted, names[best % 7]) << "word " << w;
  }
}

class PipelineEngine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir("pipeline_plan");
    BuildOptions bo;
    bo.checkpoint_dir = test::fixtures("models/token_cls");
    build_plan(bo, dir_->file("token_cls.plan"));
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string plan() { return dir_->file("token_cls.plan"); }
  static test::ScratchDir* dir_;
};
test::ScratchDir* PipelineEngine::dir_ = nullptr;

TEST_F(PipelineEngine, ThreeThousandWordsGetOneLabelEach) {
  LAYOUTRT_REQUIRE_TOKENIZER();
  EngineOptions eo;
  eo.backend = BackendKind::kCPU;
  auto engine = Engine::load(plan(), eo);
  PipelineOptions po;
  po.stride = 128;
  DocumentPipeline pipe(engine->info(), test::roberta_tokenizer_dir(), po);
  auto ctx = engine->create_context();
  const Document doc = synthetic_page(3000);
  const DocumentResult r = pipe.run(*ctx, doc);
  EXPECT_EQ(r.windows, 8);
  ASSERT_EQ(r.words.size(), 3000u);
  const auto& labels = engine->info().labels;
  for (size_t w = 0; w < r.words.size(); ++w) {
    EXPECT_NE(std::find(labels.begin(), labels.end(), r.words[w].predicted), labels.end()) << "word " << w;
    EXPECT_EQ(r.words[w].tokens, 1);
    EXPECT_GT(r.words[w].score, 0.f);
  }
  for (const auto& e : r.entities) EXPECT_LE(e.first_word, e.last_word);

  // Truncation mode: only the first 510 words are read.
  po.truncate = true;
  DocumentPipeline trunc(engine->info(), test::roberta_tokenizer_dir(), po);
  const DocumentResult t = trunc.run(*ctx, doc);
  EXPECT_EQ(t.windows, 1);
  EXPECT_FALSE(t.words[509].predicted.empty());
  EXPECT_TRUE(t.words[510].predicted.empty());

  // A word whose token the model cannot embed is named.
  Document bad = synthetic_page(10);
  bad.words[3].text = "Ελληνικά";
  try {
    pipe.run(*ctx, bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("word 3"), std::string::npos) << e.what();
  }
}

int run_cli(const std::string& args) { return WEXITSTATUS(std::system((std::string(LAYOUTRT_CLI) + " " + args).c_str())); }

TEST_F(PipelineEngine, CliRunDocumentVisualizeAndEval) {
  LAYOUTRT_REQUIRE_TOKENIZER();
  test::ScratchDir d("pipeline_cli");
  const std::string png = test::fixtures("pipeline/funsd/training_data/images/0060308251.png");
  const auto wh = pipeline::image_size(png);
  const Document page = synthetic_page(120, wh[0], wh[1]);
  nlohmann::json ocr = {{"image", png}, {"width", wh[0]}, {"height", wh[1]}, {"words", nlohmann::json::array()}};
  nlohmann::json funsd = {{"form", nlohmann::json::array()}};
  const char* kinds[] = {"question", "answer", "header", "other"};
  for (size_t i = 0; i < page.words.size(); ++i) {
    ocr["words"].push_back({{"text", page.words[i].text}, {"box", page.words[i].box}});
    if (i % 3 == 0) funsd["form"].push_back({{"label", kinds[(i / 3) % 4]}, {"words", nlohmann::json::array()}});
    funsd["form"].back()["words"].push_back({{"text", page.words[i].text}, {"box", page.words[i].box}});
  }
  std::ofstream(d.file("ocr.json")) << ocr.dump();
  const std::string tok = " --tokenizer " + test::roberta_tokenizer_dir();
  ASSERT_EQ(run_cli("run --plan " + plan() + tok + " --document " + d.file("ocr.json") + " --output " +
                    d.file("result.json") + " --visualize " + d.file("vis.png") + " --backend cpu"),
            0);
  std::ifstream rf(d.file("result.json"));
  const auto res = nlohmann::json::parse(rf);
  EXPECT_EQ(res.at("words").size(), 120u);
  EXPECT_EQ(res.at("windows"), 1);
  for (const auto& w : res.at("words")) EXPECT_TRUE(w.at("label").is_string());
  const pipeline::RgbImage vis = pipeline::load_image(d.file("vis.png"));
  EXPECT_EQ(vis.width, wh[0]);
  EXPECT_EQ(vis.height, wh[1]);
  // --inputs and --document exclude each other (usage error: exit 2).
  EXPECT_EQ(run_cli("run --plan " + plan() + " --inputs x --document y --output z 2>/dev/null"), 2);

  std::filesystem::create_directories(d.path() / "data/testing_data/annotations");
  std::filesystem::create_directories(d.path() / "data/testing_data/images");
  for (const char* id : {"doc1", "doc2"}) {
    std::ofstream(d.file(std::string("data/testing_data/annotations/") + id + ".json")) << funsd.dump();
    std::filesystem::copy_file(png, d.file(std::string("data/testing_data/images/") + id + ".png"));
  }
  ASSERT_EQ(run_cli("eval --plan " + plan() + tok + " --data " + d.file("data") + " --json " + d.file("report.json") +
                    " --backend cpu --quiet > /dev/null"),
            0);
  std::ifstream jf(d.file("report.json"));
  const auto rep = nlohmann::json::parse(jf);
  EXPECT_EQ(rep.at("documents"), 2);
  EXPECT_EQ(rep.at("words_scored"), 240);
  EXPECT_EQ(rep.at("micro").at("support"), 2 * 30);  // 40 entities a page, 10 of them "other" (no entity)
  EXPECT_GE(rep.at("micro").at("f1").get<double>(), 0.0);
  EXPECT_LE(rep.at("accuracy").get<double>(), 1.0);
}

}  // namespace
}  // namespace layoutrt
