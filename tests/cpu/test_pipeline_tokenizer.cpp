// The BPE tokenizer and layout encoder against transformers' LayoutLMv3Tokenizer / Processor (fixtures written by
// python/make_pipeline_fixtures.py): word-level ids of tricky words, three FUNSD pages token-for-token, box-for-box
// and label-for-label, and box normalisation errors.
#include <nlohmann/json.hpp>

#include "layoutrt/pipeline.h"
#include "pipeline/bpe_tokenizer.h"
#include "pipeline/formats.h"
#include "pipeline/layout_encoder.h"
#include "pipeline_test_util.h"

namespace layoutrt {
namespace {

using pipeline::BpeTokenizer;

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

const BpeTokenizer& roberta() {
  static const BpeTokenizer tok = BpeTokenizer::load(test::roberta_tokenizer_dir());
  return tok;
}

TEST(PipelineTokenizer, SpecialTokensAndVocab) {
  LAYOUTRT_REQUIRE_TOKENIZER();
  EXPECT_EQ(roberta().vocab_size(), 50265);
  EXPECT_EQ(roberta().bos_id(), 0);
  EXPECT_EQ(roberta().pad_id(), 1);
  EXPECT_EQ(roberta().eos_id(), 2);
  EXPECT_EQ(roberta().unk_id(), 3);
}

TEST(PipelineTokenizer, TrickyWordsMatchTransformers) {
  LAYOUTRT_REQUIRE_TOKENIZER();
  const auto cases = read_json(test::fixtures("pipeline/tokenizer_cases.json"));
  for (const auto& c : cases.at("words"))
    EXPECT_EQ(roberta().encode_word(c.at("word").get<std::string>()), c.at("ids").get<std::vector<int32_t>>())
        << "word \"" << c.at("word").get<std::string>() << "\"";
  // Texts: transformers' backend tokenizer (ByteLevel with add_prefix_space) on a whole string = encode_word.
  for (const auto& c : cases.at("texts"))
    EXPECT_EQ(roberta().encode_word(c.at("text").get<std::string>()), c.at("ids").get<std::vector<int32_t>>())
        << "text \"" << c.at("text").get<std::string>() << "\"";
}

TEST(PipelineTokenizer, PreTokenizerPieces) {
  using V = std::vector<std::string>;
  EXPECT_EQ(BpeTokenizer::pre_tokenize("Hello  world's 12ab!?"), (V{"Hello", " ", " world", "'s", " 12", "ab", "!?"}));
  EXPECT_EQ(BpeTokenizer::pre_tokenize("a \t\nb  "), (V{"a", " \t", "\n", "b", "  "}));
}

class FunsdPages : public ::testing::TestWithParam<std::string> {};

TEST_P(FunsdPages, TokensBoxesLabelsMatchProcessor) {
  LAYOUTRT_REQUIRE_TOKENIZER();
  const std::string id = GetParam();
  const auto exp = read_json(test::fixtures("pipeline/expected/" + id + ".json"));
  const Document doc = load_document(test::fixtures("pipeline/funsd/training_data/annotations/" + id + ".json"));
  ASSERT_EQ(doc.width, exp.at("width").get<int>());
  ASSERT_EQ(doc.height, exp.at("height").get<int>());
  ASSERT_EQ(doc.words.size(), exp.at("num_words").get<size_t>());
  std::vector<std::string> texts;
  std::vector<int32_t> labels;
  const auto bio = exp.at("words_bio").get<std::vector<std::string>>();
  for (size_t i = 0; i < doc.words.size(); ++i) {
    texts.push_back(doc.words[i].text);
    EXPECT_EQ(doc.words[i].label, bio[i]) << "word " << i;
    const auto& names = pipeline::funsd_labels();
    labels.push_back(static_cast<int32_t>(std::find(names.begin(), names.end(), doc.words[i].label) - names.begin()));
  }
  const auto boxes = pipeline::normalized_boxes(doc);
  const auto tw = pipeline::tokenize_words(roberta(), texts);
  const auto e = pipeline::encode_truncated(roberta(), tw, boxes, labels, {});
  EXPECT_EQ(e.input_ids, exp.at("input_ids").get<std::vector<int32_t>>());
  EXPECT_EQ(e.bbox, exp.at("bbox").get<std::vector<pipeline::Box>>());
  EXPECT_EQ(e.labels, exp.at("labels").get<std::vector<int32_t>>());
  pipeline::EncodeOptions all;
  all.max_length = static_cast<int>(tw.ids.size()) + 2;
  EXPECT_EQ(pipeline::encode_truncated(roberta(), tw, boxes, {}, all).input_ids,
            exp.at("input_ids_untruncated").get<std::vector<int32_t>>());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FunsdPages, ::testing::Values("0060308251", "0013255595", "0060025670"));

TEST(PipelineEncoder, TruncationAndPadding) {
  LAYOUTRT_REQUIRE_TOKENIZER();
  std::vector<std::string> words(400, "hello");  // " hello" is one token
  words[399] = "antidisestablishmentarianism";
  const auto tw = pipeline::tokenize_words(roberta(), words);
  std::vector<pipeline::Box> boxes(words.size(), pipeline::Box{1, 2, 3, 4});
  pipeline::EncodeOptions o;
  o.max_length = 401;  // 399 tokens fit: the last word is cut away
  o.pad_to_max = true;
  auto e = pipeline::encode_truncated(roberta(), tw, boxes, std::vector<int32_t>(words.size(), 5), o);
  ASSERT_EQ(e.size(), 401u);
  EXPECT_EQ(e.input_ids.front(), 0);
  EXPECT_EQ(e.input_ids.back(), 2);
  EXPECT_EQ(e.bbox.front(), (pipeline::Box{0, 0, 0, 0}));
  EXPECT_EQ(e.labels.front(), -100);
  EXPECT_EQ(e.labels[1], 5);
  o.max_length = 512;
  e = pipeline::encode_truncated(roberta(), tw, boxes, {}, o);
  ASSERT_EQ(e.size(), 512u);
  const size_t real = 2 + tw.ids.size();
  EXPECT_EQ(e.input_ids[real], 1);  // <pad>
  EXPECT_EQ(e.attention_mask[real], 0);
  EXPECT_EQ(e.bbox[real], (pipeline::Box{0, 0, 0, 0}));
  EXPECT_EQ(e.input_ids[real - 1], 2);
  EXPECT_GT(tw.token_count[399], 1);  // a multi-token word: only its first sub-token is labelled
}

TEST(PipelineFormats, BadBoxesNameTheWord) {
  test::ScratchDir dir("ocr");
  auto write = [&](const std::string& words) {
    std::ofstream(dir.file("doc.json")) << R"({"width": 100, "height": 50, "words": )" << words << "}";
    return load_document(dir.file("doc.json"));
  };
  const Document ok = write(R"([{"text": "a", "box": [0, 0, 100, 50]}, {"text": "b", "box": [33, 10, 66.6, 20]}])");
  const auto b = pipeline::normalized_boxes(ok);
  EXPECT_EQ(b[0], (pipeline::Box{0, 0, 1000, 1000}));
  EXPECT_EQ(b[1], (pipeline::Box{330, 200, 666, 400}));
  for (const char* bad : {R"([{"text": "a", "box": [0,0,1,1]}, {"text": "Total", "box": [50, 10, 40, 20]}])",
                          R"([{"text": "a", "box": [0,0,1,1]}, {"text": "Total", "box": [50, 10, 101, 20]}])"}) {
    const Document d = write(bad);
    try {
      pipeline::normalized_boxes(d);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("word 1 \"Total\""), std::string::npos) << e.what();
      EXPECT_EQ(e.code(), ErrorCode::kInputOutOfRange);
    }
  }
  EXPECT_THROW(write(R"([{"text": "a"}])"), Error);  // no box
}

}  // namespace
}  // namespace layoutrt
