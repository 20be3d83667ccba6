// Padding-free batches (RunOptions::pack): real tokens' outputs equal the padded run's; dropped positions read 0 / -1.
#include <cstring>
#include <map>
#include <numeric>

#include "io/model_io.h"
#include "layoutrt/engine.h"
#include "ops/backend.h"
#include "runtime/batch.h"
#include "test_util.h"

namespace layoutrt {
namespace {

struct PackCase {
  const char* model;
  const char* inputs;
  bool drop_pixels;
};

class Packing : public ::testing::TestWithParam<PackCase> {};

TEST_P(Packing, RealTokensMatchThePaddedRun) {
  const PackCase& pc = GetParam();
  test::ScratchDir dir("packing");
  BuildOptions o;
  o.checkpoint_dir = test::fixtures(std::string("models/") + pc.model);
  o.max_batch = 3;
  build_plan(o, dir.file("m.plan"));
  EngineOptions eo;
  eo.backend = BackendKind::kCPU;
  auto engine = Engine::load(dir.file("m.plan"), eo);
  auto ctx = engine->create_context();
  Inputs in = load_inputs(test::fixtures(std::string("inputs/") + pc.inputs));
  if (pc.drop_pixels) in.pixel_values = Tensor();
  RunOptions padded_opt, packed_opt;
  padded_opt.output_hidden_state = packed_opt.output_hidden_state = true;
  packed_opt.pack = true;
  const Outputs padded = ctx->run(in, padded_opt), packed = ctx->run(in, packed_opt);
  const Tensor mask = in.attention_mask.to(DType::kI64);
  const int64_t B = mask.dim(0), T = mask.dim(1);
  int64_t dropped = 0;
  const Tensor& hp = padded.at("last_hidden_state");
  const Tensor& hk = packed.at("last_hidden_state");
  const int64_t L = hp.dim(1), H = hp.dim(2);
  ASSERT_EQ(hk.shape(), hp.shape());
  double num = 0, den = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < L; ++r) {
      const bool real = r >= T || mask.data_as<int64_t>()[b * T + r] != 0;
      dropped += !real;
      for (int64_t k = 0; k < H; ++k) {
        const double u = hk.data_as<float>()[(b * L + r) * H + k], v = hp.data_as<float>()[(b * L + r) * H + k];
        if (real) num += (u - v) * (u - v), den += v * v;
        else ASSERT_EQ(u, 0.0) << "dropped row " << b << "," << r << " must read 0";
      }
    }
  EXPECT_GT(dropped, 0) << "the case must have padding";
  EXPECT_LE(std::sqrt(num / den), 1e-6) << "real rows' hidden states differ";
  if (packed.tensors.count("logits") && padded.at("logits").rank() == 3) {
    const Tensor& lp = padded.at("labels");
    const Tensor& lk = packed.at("labels");
    for (int64_t i = 0; i < B * T; ++i) {
      if (mask.data_as<int64_t>()[i]) EXPECT_EQ(lk.data_as<int32_t>()[i], lp.data_as<int32_t>()[i]) << "token " << i;
      else EXPECT_EQ(lk.data_as<int32_t>()[i], -1) << "dropped token " << i;
    }
  } else if (packed.tensors.count("logits")) {
    const test::Diff d = test::compare(packed.at("logits"), padded.at("logits"));
    EXPECT_LE(d.rel_l2, 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Packing,
                         ::testing::Values(PackCase{"token_cls", "b3_pad137", false},
                                           PackCase{"token_cls", "b3_pad137", true},
                                           PackCase{"token_cls", "b1_pad_inside", false},
                                           PackCase{"seq_cls_bf16_sharded", "b3_pad137", false},
                                           PackCase{"token_cls_text_only", "b3_pad137", true}),
                         [](const auto& info) {
                           return std::string(info.param.model) + "_" + info.param.inputs +
                                  (info.param.drop_pixels ? "_text" : "");
                         });

}  // namespace
}  // namespace layoutrt

namespace layoutrt {
namespace {

// pack_batch's row layout: real rows of each sequence contiguous, longest sequence first (LAYOUTRT_PACK_ORDER=input:
// the batch's order), and every batch position mapped to its new row. A hand-made batch of sequences of T = 4 text +
// 2 visual rows with real_text[b] real text tokens (by default three with 1, 4 and 2); pos1d holds each padded row's
// own index, so the compacted per-row arrays show where every row went.
PreparedBatch hand_made_batch(const std::vector<int>& real_text = {1, 4, 2}) {
  PreparedBatch p;
  const int64_t B = static_cast<int64_t>(real_text.size());
  p.batch = B;
  p.text_len = 4;
  p.visual_len = 2;
  const int64_t L = 6;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t r = 0; r < L; ++r) {
      const int32_t row = static_cast<int32_t>(b * L + r);
      p.pos1d.push_back(row);
      p.pos_x.push_back(row);
      p.pos_y.push_back(row);
      p.key_valid.push_back(r >= 4 || r < real_text[b] ? 1 : 0);
      if (r < 4) {
        p.text_row.push_back(row);
        p.token_ids.push_back(row);
        p.position_ids.push_back(row);
        p.token_type_ids.push_back(0);
        for (int k = 0; k < 4; ++k) p.boxes.push_back(row);
      }
    }
    p.cls_row.push_back(static_cast<int32_t>(b * L + 4));
  }
  for (int64_t b = 0; b <= B; ++b) p.seq_begin.push_back(static_cast<int32_t>(b * L));
  p.padded_row.resize(B * L);
  std::iota(p.padded_row.begin(), p.padded_row.end(), 0);
  p.max_seq_rows = L;
  return p;
}

TEST(PackBatch, LongestSequenceFirst) {
  PreparedBatch p = hand_made_batch();
  pack_batch(p);
  EXPECT_TRUE(p.packed);
  // Sequence 1 (4 real text rows + 2 visual), then 2 (2 + 2), then 0 (1 + 2).
  EXPECT_EQ(p.seq_begin, (std::vector<int32_t>{0, 6, 10, 13}));
  EXPECT_EQ(p.max_seq_rows, 6);
  EXPECT_EQ(p.pos1d, (std::vector<int32_t>{6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 0, 4, 5}));
  EXPECT_EQ(p.cls_row, (std::vector<int32_t>{11, 4, 8}));
  EXPECT_EQ(p.padded_row[0], 10);
  EXPECT_EQ(p.padded_row[1], -1);  // a dropped pad token
  EXPECT_EQ(p.padded_row[6], 0);
  EXPECT_EQ(p.padded_row[17], 9);
  // Text tokens keep the batch order; each points at its sequence's new rows.
  EXPECT_EQ(p.text_row, (std::vector<int32_t>{10, 0, 1, 2, 3, 6, 7}));
  EXPECT_EQ(p.token_ids, (std::vector<int32_t>{0, 6, 7, 8, 9, 12, 13}));
  for (size_t i = 0; i < p.text_row.size(); ++i) EXPECT_EQ(p.pos1d[p.text_row[i]], p.token_ids[i]) << i;
}

// With lanes, the sequences (longest first) are dealt to the lane with the fewest rows so far. Real rows 3, 6, 4, 6,
// 5, 3 (sequences 0 .. 5), longest first 1, 3, 4, 2, 0, 5: lane 0 takes 1, 4, 5 (6 + 5 + 3 = 14 rows), lane 1 3, 2, 0
// (6 + 4 + 3 = 13); the longest-first order split at the row boundary nearest half would give 12 and 15.
TEST(PackBatch, LanesGetAboutEqualRows) {
  PreparedBatch p = hand_made_batch({1, 4, 2, 4, 3, 1});
  EXPECT_EQ(packed_rows(p), 27);
  pack_batch(p, 2);
  EXPECT_EQ(p.lane_seq_begin, (std::vector<int32_t>{0, 3, 6}));
  EXPECT_EQ(p.seq_begin, (std::vector<int32_t>{0, 6, 11, 14, 20, 24, 27}));
  EXPECT_EQ(p.padded_row[6], 0);    // sequence 1's first row
  EXPECT_EQ(p.padded_row[24], 6);   // sequence 4's
  EXPECT_EQ(p.padded_row[30], 11);  // sequence 5's
  EXPECT_EQ(p.padded_row[18], 14);  // sequence 3's
  EXPECT_EQ(p.padded_row[12], 20);  // sequence 2's
  EXPECT_EQ(p.padded_row[0], 24);   // sequence 0's
  EXPECT_EQ(p.max_seq_rows, 6);
  // One lane, or LAYOUTRT_PACK_ORDER=longest: longest first over the batch, no lane groups.
  for (const bool longest : {false, true}) {
    const test::ScopedEnv order("LAYOUTRT_PACK_ORDER", longest ? "longest" : nullptr);
    PreparedBatch q = hand_made_batch({1, 4, 2, 4, 3, 1});
    pack_batch(q, longest ? 2 : 1);
    EXPECT_TRUE(q.lane_seq_begin.empty());
    EXPECT_EQ(q.seq_begin, (std::vector<int32_t>{0, 6, 12, 17, 21, 24, 27}));
  }
  // More lanes than sequences: one lane per sequence.
  PreparedBatch r = hand_made_batch({1, 4});
  pack_batch(r, 5);
  EXPECT_EQ(r.lane_seq_begin, (std::vector<int32_t>{0, 1, 2}));
  // An unknown order is refused with its value.
  const test::ScopedEnv bad("LAYOUTRT_PACK_ORDER", "shortest");
  PreparedBatch u = hand_made_batch();
  try {
    pack_batch(u, 2);
    ADD_FAILURE() << "LAYOUTRT_PACK_ORDER=shortest accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("LAYOUTRT_PACK_ORDER=shortest"), std::string::npos) << e.what();
  }
}

TEST(PackBatch, InputOrderOnRequest) {
  const test::ScopedEnv order("LAYOUTRT_PACK_ORDER", "input");
  PreparedBatch p = hand_made_batch();
  pack_batch(p);
  EXPECT_EQ(p.seq_begin, (std::vector<int32_t>{0, 3, 9, 13}));
  EXPECT_EQ(p.pos1d, (std::vector<int32_t>{0, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17}));
  EXPECT_EQ(p.cls_row, (std::vector<int32_t>{1, 7, 11}));
}

// Lanes (Backend::lanes_for, LAYOUTRT_LANES): the encoder layers of a batch split into parts of consecutive sequences
// that run as separate op sequences. On the CPU every row's arithmetic is the same whichever part it is in, so every
// output must equal the one-lane run's, padded and packed; the lane count must reach the backend (capped at the batch).
TEST(Lanes, SplitBatchGivesTheSameOutputs) {
  test::ScratchDir dir("lanes");
  BuildOptions o;
  o.checkpoint_dir = test::fixtures("models/token_cls");
  o.max_batch = 3;
  build_plan(o, dir.file("m.plan"));
  EngineOptions eo;
  eo.backend = BackendKind::kCPU;
  auto engine = Engine::load(dir.file("m.plan"), eo);
  const Inputs in = load_inputs(test::fixtures("inputs/b3_pad137"));
  for (const bool pack : {false, true}) {
    RunOptions ro;
    ro.output_hidden_state = true;
    ro.pack = pack;
    Outputs one;
    {
      const test::ScopedEnv env("LAYOUTRT_LANES", "1");
      auto ctx = engine->create_context();
      one = ctx->run(in, ro);
      EXPECT_EQ(ctx->kernel_choices().at("lanes"), "1");
    }
    for (const char* lanes : {"2", "3", "8"}) {
      SCOPED_TRACE(std::string(pack ? "packed" : "padded") + ", LAYOUTRT_LANES=" + lanes);
      const test::ScopedEnv env("LAYOUTRT_LANES", lanes);
      auto ctx = engine->create_context();
      const Outputs got = ctx->run(in, ro);
      EXPECT_EQ(ctx->kernel_choices().at("lanes"), std::string(lanes) == "8" ? "3" : lanes) << "capped at B = 3";
      ASSERT_EQ(got.tensors.size(), one.tensors.size());
      for (const auto& [name, t] : one.tensors) {
        const Tensor& u = got.at(name);
        ASSERT_EQ(u.shape(), t.shape()) << name;
        if (name == "labels") {
          EXPECT_EQ(std::memcmp(u.data(), t.data(), t.nbytes()), 0) << name;
        } else {
          EXPECT_LE(test::compare(u, t).rel_l2, 1e-6) << name;
        }
      }
    }
  }
  // Out of 1 .. Backend::kMaxLanes: refused with the variable's value.
  for (const std::string v : {std::string("0"), std::to_string(Backend::kMaxLanes + 1), std::string("2x")}) {
    const test::ScopedEnv bad("LAYOUTRT_LANES", v.c_str());
    try {
      engine->create_context();
      ADD_FAILURE() << "LAYOUTRT_LANES=" << v << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("LAYOUTRT_LANES=" + v), std::string::npos) << e.what();
    }
  }
}

// The last layer on the head's rows only (LAYOUTRT_LAST_LAYER=head, the default) against every row (=all): token and
// sequence classification (the text tokens / the first token of each sequence), padded and packed, one, two and three
// lanes (each lane's kept rows gathered to the front of its own rows), on the CPU. QA reads every row and the
// hidden-state output every row: those runs keep every row, and must still match. An unknown value is refused.
TEST(LastLayer, HeadRowsOnlyMatchEveryRow) {
  test::ScratchDir dir("last_layer");
  // Which models keep only the head's rows: text + image token / sequence classification, and an image-only sequence
  // classifier (its first, visual CLS row); not QA (every row) nor a text-only token classifier (every row is text).
  const std::map<std::string, bool> keeps{{"token_cls", true},
                                          {"seq_cls_bf16_sharded", true},
                                          {"seq_cls_image_only", true},
                                          {"qa_1d_bias", false},
                                          {"token_cls_text_only", false}};
  for (const auto& [model, keeps_head] : keeps) {
    BuildOptions o;
    o.checkpoint_dir = test::fixtures("models/" + model);
    o.max_batch = 3;
    build_plan(o, dir.file(model + ".plan"));
    EngineOptions eo;
    eo.backend = BackendKind::kCPU;
    auto engine = Engine::load(dir.file(model + ".plan"), eo);
    for (const std::string inputs : {"b3_pad137", "b1_pad_inside"}) {
      Inputs in = load_inputs(test::fixtures("inputs/" + inputs));
      if (model == "token_cls_text_only") in.pixel_values = Tensor();
      if (model == "seq_cls_image_only") {
        if (!in.pixel_values.defined()) continue;  // an image-only model needs the image
        in.input_ids = in.bbox = in.attention_mask = in.token_type_ids = Tensor();
      }
      for (const bool pack : {false, true})
        for (const bool hidden : {false, true})
          for (const char* lanes : {"1", "2", "3"}) {
            SCOPED_TRACE(model + " " + inputs + (pack ? " packed" : " padded") + (hidden ? " + hidden state" : "") +
                         ", lanes " + lanes);
            const test::ScopedEnv lane_env("LAYOUTRT_LANES", lanes);
            RunOptions ro;
            ro.pack = pack;
            ro.output_hidden_state = hidden;
            Outputs all, head;
            {
              const test::ScopedEnv env("LAYOUTRT_LAST_LAYER", "all");
              auto ctx = engine->create_context();
              all = ctx->run(in, ro);
              EXPECT_EQ(ctx->kernel_choices().at("last_layer_rows"), "all");
            }
            auto ctx = engine->create_context();
            head = ctx->run(in, ro);
            // A token classifier given no image reads every (text) row.
            const bool keeps_rows = keeps_head && !hidden && (model != "token_cls" || in.pixel_values.defined());
            EXPECT_EQ(ctx->kernel_choices().at("last_layer_rows"), keeps_rows ? "head" : "all");
            ASSERT_EQ(head.tensors.size(), all.tensors.size());
            for (const auto& [name, t] : all.tensors) {
              const Tensor& u = head.at(name);
              ASSERT_EQ(u.shape(), t.shape()) << name;
              if (name == "labels")
                EXPECT_EQ(std::memcmp(u.data(), t.data(), t.nbytes()), 0) << name;
              else  // the kept rows' GEMMs run at another M, and OpenBLAS picks its kernels (summation order) by shape:
                    // 1.26e-6 on the H200 host's CPU, 1.2e-6 here with OPENBLAS_CORETYPE=Zen (one kept row)
                EXPECT_LE(test::compare(u, t).rel_l2, 1e-5) << name;
            }
          }
      const test::ScopedEnv bad("LAYOUTRT_LAST_LAYER", "some");
      try {
        engine->create_context()->run(in);
        ADD_FAILURE() << "LAYOUTRT_LAST_LAYER=some accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find("LAYOUTRT_LAST_LAYER=some"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(StageTiming, CoversEveryStageOnTheCpu) {
  test::ScratchDir dir("stages");
  BuildOptions o;
  o.checkpoint_dir = test::fixtures("models/token_cls");
  build_plan(o, dir.file("m.plan"));
  EngineOptions eo;
  eo.backend = BackendKind::kCPU;
  auto ctx = Engine::load(dir.file("m.plan"), eo)->create_context();
  RunOptions ro;
  ro.time_stages = true;
  ctx->run(load_inputs(test::fixtures("inputs/b3_pad137")), ro);
  const auto t = ctx->stage_times_ms();
  for (const char* s : {"embeddings", "qkv", "attention", "out_proj_ln", "ffn", "head"}) {
    ASSERT_TRUE(t.count(s)) << "stage " << s << " missing";
    EXPECT_GE(t.at(s), 0.0);
  }
  EXPECT_EQ(t.size(), 6u);
}

}  // namespace
}  // namespace layoutrt
