#include "runtime/forward.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "layoutrt/error.h"
#include "plan/plan_layout.h"

namespace layoutrt {

const TensorView& ModelWeights::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw_error(ErrorCode::kInternal, "weight ", name, " not loaded");
  return it->second;
}

Epilogue epilogue_for(Activation a) {
  switch (a) {
    case Activation::kGeluErf: return Epilogue::kGeluErf;
    case Activation::kGeluTanh: return Epilogue::kGeluTanh;
    case Activation::kRelu: return Epilogue::kRelu;
    case Activation::kSilu: return Epilogue::kSilu;
  }
  return Epilogue::kNone;
}

Workspace::Workspace(Backend& backend, const ModelWeights& w, int64_t max_batch_, int64_t max_text_tokens)
    : backend_(backend) {
  const LayoutLMv3Config& c = w.config;
  const int64_t V = c.visual_tokens(), T = c.text_embed ? max_text_tokens : 0, L = T + V;
  const int64_t H = c.hidden_size;
  max_batch = max_batch_;
  max_rows = max_batch * L;
  const DType act = backend.activation_dtype(w.precision);
  hidden = matrix(act, max_rows, H);
  hidden2 = matrix(act, max_rows, H);
  qkv = matrix(act, max_rows, 3 * H);
  ctx = matrix(act, max_rows, H);
  tmp = matrix(act, max_rows, H);
  ff = matrix(act, max_rows, c.intermediate_size);
  if (w.fp32_residual && act != DType::kF32) resid = matrix(DType::kF32, max_rows, H);
  if (V > 0) {
    const int64_t P = V - 1, k = int64_t{c.num_channels} * c.patch_size * c.patch_size;
    // The patch projection is a GEMM in the patch weight's dtype (FP32 in mixed plans: embeddings stay FP32).
    const DType patch_dt = w.at("patch_embed.proj.weight").dtype;
    patches = matrix(patch_dt, max_batch * P, k);
    proj = matrix(patch_dt, max_batch * P, H);
    pixels = static_cast<float*>(alloc(sizeof(float) * max_batch * c.num_channels * c.input_size * c.input_size));
    cls_row = static_cast<int32_t*>(alloc(sizeof(int32_t) * max_batch));
  }
  const size_t scratch = backend.attention_scratch_bytes(max_batch, L, c.num_attention_heads, c.head_dim());
  if (scratch) attn_scratch = TensorView(alloc(scratch), DType::kU8, backend.device(), {static_cast<int64_t>(scratch)});
  if (T > 0) {
    const size_t n = static_cast<size_t>(max_batch * T);
    text_row = static_cast<int32_t*>(alloc(sizeof(int32_t) * n));
    token_ids = static_cast<int32_t*>(alloc(sizeof(int32_t) * n));
    position_ids = static_cast<int32_t*>(alloc(sizeof(int32_t) * n));
    token_type_ids = static_cast<int32_t*>(alloc(sizeof(int32_t) * n));
    boxes = static_cast<int32_t*>(alloc(sizeof(int32_t) * n * 4));
  }
  pos1d = static_cast<int32_t*>(alloc(sizeof(int32_t) * max_rows));
  pos_x = static_cast<int32_t*>(alloc(sizeof(int32_t) * max_rows));
  pos_y = static_cast<int32_t*>(alloc(sizeof(int32_t) * max_rows));
  key_valid = static_cast<uint8_t*>(alloc(max_rows));
  seq_begin = static_cast<int32_t*>(alloc(sizeof(int32_t) * (max_batch + 1)));
  query_rows = static_cast<int32_t*>(alloc(sizeof(int32_t) * max_batch));
  compact_src = static_cast<int32_t*>(alloc(sizeof(int32_t) * max_rows));
  // Head rows: every text token (token classification), one per sequence, or every row (QA).
  switch (w.head) {
    case HeadKind::kBase: max_head_rows = 0; break;
    case HeadKind::kTokenClassification: max_head_rows = max_batch * T; break;
    case HeadKind::kSequenceClassification: max_head_rows = max_batch; break;
    case HeadKind::kQuestionAnswering: max_head_rows = max_rows; break;
  }
  if (max_head_rows > 0) {
    head_rows = static_cast<int32_t*>(alloc(sizeof(int32_t) * max_head_rows));
    head_in = matrix(DType::kF32, max_head_rows, H);
    head_mid = matrix(DType::kF32, max_head_rows, H);
    head_out = matrix(DType::kF32, max_head_rows, c.num_labels());
  }
}

Workspace::~Workspace() {
  for (void* p : allocations_) backend_.deallocate(p);
}

void* Workspace::alloc(size_t bytes) {
  void* p = backend_.allocate(std::max<size_t>(bytes, 1));
  allocations_.push_back(p);
  return p;
}

TensorView Workspace::matrix(DType t, int64_t rows, int64_t cols) {
  return TensorView(alloc(static_cast<size_t>(rows * cols) * dtype_size(t)), t, backend_.device(), {rows, cols});
}

namespace {

template <class T>
void upload(Backend& be, T* dst, const std::vector<T>& src) {
  if (!src.empty()) be.copy_to_device(dst, src.data(), src.size() * sizeof(T));
}

Tensor download(Backend& be, const TensorView& v, Shape shape) {
  Tensor t(v.dtype, std::move(shape));
  be.copy_to_host(t.mutable_data(), v.data, t.nbytes());
  return t;
}

// A lane's part of the batch (Backend::lanes_for): sequences [first_seq, first_seq + num_seqs), rows [row0, row1).
struct LanePart {
  int64_t first_seq = 0, num_seqs = 0, row0 = 0, row1 = 0;
};

// Splits the batch's sequences into n parts of consecutive sequences: pack_batch's lane groups when it made n of
// them (lane_seq_begin), else parts of about equal rows (the GEMMs' work; a part gets at least one sequence).
// seq_begin: [B + 1] row offsets.
std::vector<LanePart> split_lanes(const std::vector<int32_t>& seq_begin, const std::vector<int32_t>& lane_seq_begin,
                                  int n) {
  const int64_t B = static_cast<int64_t>(seq_begin.size()) - 1;
  n = static_cast<int>(std::clamp<int64_t>(n, 1, std::max<int64_t>(B, 1)));
  std::vector<LanePart> parts;
  if (static_cast<int64_t>(lane_seq_begin.size()) == n + 1 && lane_seq_begin.back() == B) {
    for (int i = 0; i < n; ++i) {
      const int64_t s = lane_seq_begin[i], e = lane_seq_begin[i + 1];
      parts.push_back({s, e - s, seq_begin[s], seq_begin[e]});
    }
    return parts;
  }
  int64_t s = 0;
  for (int i = 0; i < n; ++i) {
    LanePart p;
    p.first_seq = s;
    // End at the sequence boundary nearest to the i+1-th n-th of the rows, leaving a sequence for each later part.
    int64_t e = B - (n - 1 - i);
    if (i + 1 < n) {
      const double target = static_cast<double>(seq_begin[B]) * (i + 1) / n;
      int64_t best = s + 1;
      for (int64_t k = s + 1; k <= e; ++k)
        if (std::abs(seq_begin[k] - target) < std::abs(seq_begin[best] - target)) best = k;
      e = best;
    }
    p.num_seqs = e - s;
    p.row0 = seq_begin[s];
    p.row1 = seq_begin[e];
    parts.push_back(p);
    s = e;
  }
  return parts;
}

// The last layer's kept rows (run_forward): Workspace::query_rows / compact_src on the device, and how many rows the
// lane keeps.
struct KeptRows {
  const int32_t* query_rows = nullptr;
  const int32_t* compact_src = nullptr;
  int64_t rows = 0;
};

// One encoder layer (post-LN) over a lane's rows: attention -> out-proj + residual + LN -> FFN + residual + LN. x is
// updated in place. With an FP32 residual stream r (defined), x / x1 are its FP16/BF16 copies that the GEMMs read,
// and each LayerNorm adds its residual from r and writes r back in place. x, x1, r and the scratch matrices are the
// whole batch's; the layer touches rows [part.row0, part.row1) only. With `kept` (the last layer, no FP32 stream):
// the attention computes only the kept queries, which are then gathered with their residual rows to the front of
// the lane's rows (a lane of one sequence has them there already), and the rest of the layer runs on those: its
// output is x's rows [row0, row0 + kept->rows). With `head` (the last layer, see run_forward), the last LayerNorm and
// the head's first linear run as one op.
void encoder_layer(Backend& be, const ModelWeights& w, Workspace& ws, int layer, const TensorView& x_all,
                   const TensorView& x1_all, const TensorView& r_all, const AttentionArgs& attn_meta,
                   const LanePart& part, const KeptRows* kept, int l2_hints, const GatherLinearArgs* head) {
  const LayoutLMv3Config& c = w.config;
  const int64_t rows = x_all.dim(0), r0 = part.row0, n = part.row1 - part.row0;
  auto W = [&](const char* what) { return w.at(layer_tensor(layer, what)); };
  auto mine = [&](const TensorView& t) { return t.defined() ? t.rows(r0, n) : t; };
  const TensorView x = mine(x_all), x1 = mine(x1_all), r = mine(r_all);
  const TensorView qkv = mine(ws.qkv), ctx = mine(ws.ctx), tmp = mine(ws.tmp), ff = mine(ws.ff);

  be.stage("qkv");
  be.linear({x, W("attention.qkv.weight"), W("attention.qkv.bias"), qkv, Epilogue::kNone});
  be.stage("attention");
  // The attention indexes rows through seq_begin: it gets the whole batch's matrices and its sequences.
  AttentionArgs a = attn_meta;
  a.first_seq = part.first_seq;
  a.num_seqs = part.num_seqs;
  a.qkv = ws.qkv.rows(0, rows);
  a.out = ws.ctx.rows(0, rows);
  if (kept) a.query_rows = kept->query_rows;
  be.attention(a);
  be.stage("out_proj_ln");
  // out-proj ctx -> tmp, LN -> x1, FFN x1 -> ff -> tmp, LN -> x. Kept rows: the same on the lane's first kept->rows
  // rows; where the kept rows are not there already (more than one sequence), ctx and the residual x are first
  // gathered there into tmp and x1, and the out-projection then reads tmp and writes ctx, the LayerNorm adds x1.
  TensorView attn_out = ctx, proj = tmp, res1 = r.defined() ? r : x, h1 = x1, ffv = ff, proj2 = tmp, out = x;
  if (kept) {
    for (TensorView* t : {&attn_out, &proj, &res1, &h1, &ffv, &proj2, &out}) *t = t->rows(0, kept->rows);
    if (part.num_seqs > 1) {
      be.gather_rows({ws.ctx.rows(0, rows), kept->compact_src + r0, kept->rows, proj});
      be.gather_rows({x_all, kept->compact_src + r0, kept->rows, h1});
      std::swap(attn_out, proj);  // ctx's kept rows are now in tmp; ctx is free for the out-projection
      res1 = h1;
    }
  }
  // The out-projection's bias is added by the LayerNorm (x_bias), in FP32, one pass fewer.
  be.linear({attn_out, W("attention.output.dense.weight"), TensorView(), proj, Epilogue::kNone});
  // l2_hints (l2_hints_for): each LayerNorm names the weights of the next one or two GEMMs for the L2 cache.
  LayerNormArgs ln1{proj, res1, W("attention.output.LayerNorm.weight"), W("attention.output.LayerNorm.bias"), h1,
                    static_cast<float>(c.layer_norm_eps), W("attention.output.dense.bias"), r};
  if (l2_hints == 1 || l2_hints == 2) ln1.l2_prefetch[0] = W("intermediate.dense.weight");
  if (l2_hints == 2) ln1.l2_prefetch[1] = W("output.dense.weight");
  be.layer_norm(ln1);
  be.stage("ffn");
  be.linear({h1, W("intermediate.dense.weight"), W("intermediate.dense.bias"), ffv, epilogue_for(c.activation())});
  be.linear({ffv, W("output.dense.weight"), TensorView(), proj2, Epilogue::kNone});
  LayerNormArgs ln2{proj2, r.defined() ? r : h1, W("output.LayerNorm.weight"), W("output.LayerNorm.bias"), out,
                    static_cast<float>(c.layer_norm_eps), W("output.dense.bias"), r};
  if (layer + 1 < c.num_hidden_layers) {
    auto next = [&](const char* what) { return w.at(layer_tensor(layer + 1, what)); };
    if (l2_hints >= 1) ln2.l2_prefetch[0] = next("attention.qkv.weight");
    if (l2_hints >= 2) ln2.l2_prefetch[1] = next("attention.output.dense.weight");
    if (l2_hints == 3) {
      ln2.l2_prefetch[2] = next("intermediate.dense.weight");
      ln2.l2_prefetch[3] = next("output.dense.weight");
    }
  }
  if (head && l2_hints >= 1) ln2.l2_prefetch[0] = head->weight;
  if (head) be.layer_norm_gather_linear(ln2, *head);  // the last layer: its output rows are the head's (run_forward)
  else be.layer_norm(ln2);
}

// LAYOUTRT_LN_PREFETCH: which weights the LayerNorms of a one-lane forward name for the L2 cache (encoder_layer;
// LayerNormArgs::l2_prefetch): 2 (default) the two GEMMs after each — the FFN's two after the attention block's, the
// next layer's QKV and out-projection after the FFN's; 1 the next GEMM's; 3 all four of the next layer's after the
// FFN's; 0 none. H200, fp16 forward at B = 1, two calls (bench/results/2026-12-03-h200-ln-l2-prefetch.md): 2 0.625 –
// 0.630 vs 0.632 – 0.634 ms without; 1 0.627 – 0.629; 3 0.633 / 0.636; B = 2 unchanged. Two-lane forwards (B ≥ 8 on
// an H200) leave it out: their GEMMs are long enough to hide the weights' first loads.
int l2_hints_for(size_t lanes) {
  const char* e = std::getenv("LAYOUTRT_LN_PREFETCH");
  const int n = e ? std::atoi(e) : 2;
  return lanes == 1 ? std::clamp(n, 0, 3) : 0;
}

// LAYOUTRT_LAST_LAYER: "head" (default) computes the last layer on the head's rows where that applies, "all" on every
// row (A/B checks, tests); anything else is refused.
bool last_layer_head_rows() {
  const char* e = std::getenv("LAYOUTRT_LAST_LAYER");
  const std::string v = e && *e ? e : "head";
  if (v != "head" && v != "all")
    throw_error(ErrorCode::kInvalidArgument, "LAYOUTRT_LAST_LAYER=", v, ": expected head or all");
  return v == "head";
}

}  // namespace

Outputs run_forward(Backend& be, const ModelWeights& w, Workspace& ws, const PreparedBatch& pb,
                    const RunOptions& options, std::map<std::string, double>* host_ms) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point mark = Clock::now();
  auto lap = [&](const char* phase) {
    const Clock::time_point now = Clock::now();
    if (host_ms) (*host_ms)[phase] += std::chrono::duration<double, std::milli>(now - mark).count();
    mark = now;
  };
  const LayoutLMv3Config& c = w.config;
  const int64_t B = pb.batch, T = pb.text_len, V = pb.visual_len, L = pb.seq_len(), rows = pb.rows();
  const int64_t num_text = static_cast<int64_t>(pb.text_row.size());
  const int64_t H = c.hidden_size;
  if (B > ws.max_batch || rows > ws.max_rows)
    throw_error(ErrorCode::kInternal, "batch of ", B, " x ", L, " rows exceeds the workspace");
  const TensorView x = ws.hidden.rows(0, rows), x1 = ws.hidden2.rows(0, rows);
  // The FP32 residual stream (undefined when x is the stream itself). The embedding ops write x and r (with an image,
  // after the joint LayerNorm they apply themselves: JointNorm).
  const TensorView r = ws.resid.defined() ? ws.resid.rows(0, rows) : TensorView();
  // What the head and output_hidden_state read: the unrounded stream where there is one.
  const TensorView final_hidden = r.defined() ? r : x;
  const float eps = static_cast<float>(c.layer_norm_eps);

  // Head positions: which rows the head reads (indexes of the padded layout, b * L + t).
  // Token classification classifies only the text positions; sequence classification the first position of each
  // sequence (<s>, or the visual CLS without text); QA every position.
  std::vector<int64_t> positions;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t begin = b * L;
    switch (w.head) {
      case HeadKind::kTokenClassification: for (int64_t t = 0; t < T; ++t) positions.push_back(begin + t); break;
      case HeadKind::kSequenceClassification: positions.push_back(begin); break;
      case HeadKind::kQuestionAnswering: for (int64_t t = 0; t < L; ++t) positions.push_back(begin + t); break;
      case HeadKind::kBase: break;
    }
  }
  // Outputs are indexed by positions of the padded layout (b * L + t); a position packing dropped has no row: its
  // outputs are 0 and its label -1 (RunOptions::pack).
  auto rows_of = [&](const std::vector<int64_t>& positions, std::vector<int32_t>& rows, std::vector<int64_t>& slot) {
    for (size_t i = 0; i < positions.size(); ++i) {
      const int32_t r = pb.padded_row[positions[i]];
      slot.push_back(r < 0 ? -1 : static_cast<int64_t>(rows.size()));
      if (r >= 0) rows.push_back(r);
    }
  };
  // Gathers `rows` of x (FP32) and scatters them to a [positions, width] tensor through `slot`.
  auto scatter = [&](const Tensor& gathered, const std::vector<int64_t>& slot, int64_t width) {
    Tensor t(DType::kF32, {static_cast<int64_t>(slot.size()), width});
    float* dst = t.mutable_data_as<float>();
    for (size_t i = 0; i < slot.size(); ++i)
      for (int64_t k = 0; k < width; ++k)
        dst[i * width + k] = slot[i] < 0 ? 0.f : gathered.data_as<float>()[slot[i] * width + k];
    return t;
  };

  std::vector<int32_t> head_rows;
  std::vector<int64_t> slot;
  if (w.head != HeadKind::kBase) rows_of(positions, head_rows, slot);
  const int64_t n = static_cast<int64_t>(head_rows.size());
  const int64_t labels = c.num_labels();
  const std::vector<LanePart> lanes = split_lanes(pb.seq_begin, pb.lane_seq_begin, be.lanes_for(B, rows));

  // The last layer on the head's rows only (LAYOUTRT_LAST_LAYER=head, the default): when the outputs are the head's
  // alone (not the base model, no output_hidden_state), nothing reads the last layer's other rows. Where the head's
  // rows are, in every sequence, the first rows of its range (token classification: the text tokens; sequence
  // classification: the first token; QA reads every row), their queries are a prefix of the sequence's: the
  // attention skips the other queries (it still reads every key), and the out-projection, FFN and LayerNorms run on
  // the kept rows only, gathered to the front of each lane's rows (lane-local, so lanes never write each other's
  // rows); the head then reads them there. Every kept row's arithmetic is the same: those layers work per row.
  // Not with the FP32 residual stream (its rows would need an F32 gather as well).
  std::vector<int32_t> query_rows, compact_src;
  std::vector<int64_t> lane_kept;
  bool keep_head_rows = last_layer_head_rows();  // read (and checked) on every run
  keep_head_rows = keep_head_rows && c.num_hidden_layers > 0 && w.head != HeadKind::kBase &&
                   !options.output_hidden_state && !r.defined() && n > 0 && n < rows;
  if (keep_head_rows) {
    std::vector<int32_t> head_of(rows, -1);  // row -> index in head_rows
    for (int64_t j = 0; j < n; ++j) head_of[head_rows[j]] = static_cast<int32_t>(j);
    query_rows.assign(B, 0);
    for (int64_t b = 0; b < B && keep_head_rows; ++b) {
      const int32_t s = pb.seq_begin[b], e = pb.seq_begin[b + 1];
      int32_t q = 0, total = 0;
      while (s + q < e && head_of[s + q] >= 0) ++q;
      for (int32_t k = s; k < e; ++k) total += head_of[k] >= 0;
      query_rows[b] = q;
      keep_head_rows = total == q;  // the head's rows of this sequence are its first q
    }
    compact_src.assign(rows, 0);
    std::vector<int32_t> compact_head(n);
    for (const LanePart& p : lanes) {
      int64_t pos = p.row0;
      for (int64_t b = p.first_seq; b < p.first_seq + p.num_seqs && keep_head_rows; ++b)
        for (int32_t q = 0; q < query_rows[b]; ++q, ++pos) {
          compact_src[pos] = pb.seq_begin[b] + q;
          compact_head[head_of[pb.seq_begin[b] + q]] = static_cast<int32_t>(pos);
        }
      lane_kept.push_back(pos - p.row0);
      if (pos == p.row0) keep_head_rows = false;  // a lane without kept rows: not worth a special case
    }
    if (keep_head_rows) head_rows = std::move(compact_head);
  }
  be.note_last_layer_rows(keep_head_rows ? "head" : "all");

  // Phase 1: every host-to-device transfer (metadata, pixels, head rows), so phase 2 is ops only.
  upload(be, ws.pos1d, pb.pos1d);
  upload(be, ws.pos_x, pb.pos_x);
  upload(be, ws.pos_y, pb.pos_y);
  upload(be, ws.key_valid, pb.key_valid);
  upload(be, ws.seq_begin, pb.seq_begin);
  if (num_text > 0) {
    upload(be, ws.text_row, pb.text_row);
    upload(be, ws.token_ids, pb.token_ids);
    upload(be, ws.position_ids, pb.position_ids);
    upload(be, ws.token_type_ids, pb.token_type_ids);
    upload(be, ws.boxes, pb.boxes);
  }
  if (V > 0) {
    be.copy_to_device(ws.pixels, pb.pixels.data(), pb.pixels.nbytes());
    upload(be, ws.cls_row, pb.cls_row);
  }
  if (n > 0) upload(be, ws.head_rows, head_rows);
  if (keep_head_rows) {
    upload(be, ws.query_rows, query_rows);
    upload(be, ws.compact_src, compact_src);
  }
  lap("upload");

  AttentionArgs meta;
  meta.num_seqs = B;
  meta.max_seq_len = pb.max_seq_rows;
  meta.seq_begin = ws.seq_begin;
  meta.pos1d = ws.pos1d;
  meta.pos_x = ws.pos_x;
  meta.pos_y = ws.pos_y;
  meta.key_valid = ws.key_valid;
  meta.num_heads = c.num_attention_heads;
  meta.head_dim = c.head_dim();
  // transformers adds the spatial bias only together with the 1D bias (LayoutLMv3SelfAttention.forward): a model
  // with has_spatial_attention_bias alone gets no bias at all.
  if (c.has_relative_attention_bias) {
    meta.bias1d = w.bias1d;
    meta.max_dist_1d = w.max_dist_1d;
    if (c.has_spatial_attention_bias) {
      meta.bias_x = w.bias_x;
      meta.bias_y = w.bias_y;
      meta.max_dist_2d = w.max_dist_2d;
    }
  }
  meta.scratch = ws.attn_scratch;

  // Phase 2: the network, ops only on fixed shapes — a backend may record it once per shape key and replay it.
  // What all layers' attention shares is prepared first: the CUDA backend runs it (the bias cache) on a side stream
  // joined before the first attention, so it overlaps the embeddings and layer 0's QKV GEMM. Its time is then not in
  // any stage of bench --stages.
  AttentionArgs layer_meta = meta;
  auto network = [&] {
    be.prepare_attention(layer_meta);
    be.stage("embeddings");

    // With an image, the joint LayerNorm over text + visual rows (text rows are layer-normed twice) runs inside both
    // embedding ops (JointNorm): the rows are the same as writing them and running layer_norm over all of them.
    JointNorm joint;
    if (V > 0) joint = {w.at("LayerNorm.weight"), w.at("LayerNorm.bias"), eps};
    if (num_text > 0) {
      TextEmbeddingArgs e;
      e.num_tokens = num_text;
      e.dst_row = ws.text_row;
      e.token_ids = ws.token_ids;
      e.position_ids = ws.position_ids;
      e.token_type_ids = ws.token_type_ids;
      e.boxes = ws.boxes;
      e.word = w.at("embeddings.word_embeddings.weight");
      e.position = w.at("embeddings.position_embeddings.weight");
      e.token_type = w.at("embeddings.token_type_embeddings.weight");
      e.x = w.at("embeddings.x_position_embeddings.weight");
      e.y = w.at("embeddings.y_position_embeddings.weight");
      e.h = w.at("embeddings.h_position_embeddings.weight");
      e.w = w.at("embeddings.w_position_embeddings.weight");
      e.ln_weight = w.at("embeddings.LayerNorm.weight");
      e.ln_bias = w.at("embeddings.LayerNorm.bias");
      e.eps = eps;
      e.out = x;
      e.out_f32 = r;
      e.joint = joint;
      be.text_embedding(e);
    }
    // The text and patch embeddings run one after the other: as two lanes (concurrent streams) they were not faster
    // (B = 1 0.687 vs 0.681 ms; H200, 2026-12-02, bench/results/2026-12-02-h200-stages-splitk.md).
    if (V > 0) {
      const int64_t P = V - 1;
      PatchEmbeddingArgs pe;
      pe.batch = B;
      pe.pixels = ws.pixels;
      pe.channels = c.num_channels;
      pe.image_size = c.input_size;
      pe.patch_size = c.patch_size;
      pe.cls_row = ws.cls_row;
      pe.weight = w.at("patch_embed.proj.weight");
      pe.bias = w.at("patch_embed.proj.bias");
      pe.cls_token = w.at("cls_token");
      pe.pos_embed = w.at("pos_embed");
      pe.ln_weight = w.at("norm.weight");
      pe.ln_bias = w.at("norm.bias");
      pe.eps = 1e-6f;  // LayoutLMv3Model.norm is built with eps=1e-6, not config.layer_norm_eps (trap 4)
      pe.patches = ws.patches.rows(0, B * P);
      pe.proj = ws.proj.rows(0, B * P);
      pe.out = x;
      pe.out_f32 = r;
      pe.joint = joint;
      be.patch_embedding(pe);
    }
    be.stage("attention");
    // The layers lane by lane, interleaved per layer (what runs eagerly is issued in the order it can overlap).
    // The head's linears: the first reads the head's rows of final_hidden itself (gather_linear; head_in: its
    // scratch), tanh between them.
    auto head_args = [&](size_t i, const TensorView& in) {
      const HeadLinear& hl = w.head_layers[i];
      const bool last = i + 1 == w.head_layers.size();
      return GatherLinearArgs{in, ws.head_rows, n, w.at(hl.name + ".weight"), w.at(hl.name + ".bias"),
                              last ? ws.head_out.rows(0, n) : ws.head_mid.rows(0, n),
                              last ? Epilogue::kNone : Epilogue::kTanh, ws.head_in.rows(0, n)};
    };
    // Where the last layer ran on the head's rows in one lane, its last LayerNorm wrote exactly the rows the head
    // reads: that LayerNorm and the head's first linear run as one op (Backend::layer_norm_gather_linear).
    const bool head_in_layer = keep_head_rows && n > 0 && !w.head_layers.empty() && lanes.size() == 1 &&
                               lane_kept.size() == 1 && lane_kept[0] == n;
    const GatherLinearArgs first_head =
        n > 0 && !w.head_layers.empty() ? head_args(0, final_hidden) : GatherLinearArgs{};
    be.begin_lanes(static_cast<int>(lanes.size()));
    const int l2_hints = l2_hints_for(lanes.size());
    for (int l = 0; l < c.num_hidden_layers; ++l)
      for (size_t i = 0; i < lanes.size(); ++i) {
        be.lane(static_cast<int>(i));
        const bool last = keep_head_rows && l + 1 == c.num_hidden_layers;
        const KeptRows kept{ws.query_rows, ws.compact_src, last ? lane_kept[i] : 0};
        encoder_layer(be, w, ws, l, x, x1, r, layer_meta, lanes[i], last ? &kept : nullptr, l2_hints,
                      last && head_in_layer ? &first_head : nullptr);
      }
    be.end_lanes();
    be.stage("head");
    if (n > 0) {
      TensorView cur;
      for (size_t i = 0; i < w.head_layers.size(); ++i) {
        const GatherLinearArgs h = i == 0 ? first_head : head_args(i, cur);
        if (i == 0 && !head_in_layer) be.gather_linear(h);
        else if (i > 0) be.linear({cur, h.weight, h.bias, h.out, h.epilogue});
        cur = h.out;
      }
    }
    be.stage(nullptr);
  };
  uint64_t key = 0xcbf29ce484222325ull;  // FNV-1a over every shape the recording depends on
  auto mix = [&](int64_t v) {
    key ^= static_cast<uint64_t>(v);
    key *= 0x100000001b3ull;
  };
  for (int64_t v : {B, T, V, rows, pb.max_seq_rows, num_text, n, int64_t{pb.packed}}) mix(v);
  for (const LanePart& p : lanes) mix(p.num_seqs), mix(p.row1);  // the lanes' grids and GEMM shapes
  mix(keep_head_rows);
  for (const int64_t k : lane_kept) mix(k);  // the last layer's GEMM shapes
  be.run_recorded(key, static_cast<int>(lanes.size()), network);
  be.synchronize();  // the copies back would wait anyway; here it splits "forward" from "download"
  lap("forward");

  // Phase 3: outputs to the host.
  Outputs out;
  const bool want_hidden = w.head == HeadKind::kBase || options.output_hidden_state;
  if (want_hidden) {
    Tensor h = download(be, final_hidden, {rows, H});
    if (h.dtype() != DType::kF32) h = h.to(DType::kF32);
    if (!pb.packed) {
      out.tensors["last_hidden_state"] = h.reshaped({B, L, H});
    } else {
      std::vector<int64_t> all(B * L);
      for (int64_t i = 0; i < B * L; ++i) all[i] = pb.padded_row[i];
      out.tensors["last_hidden_state"] = scatter(h, all, H).reshaped({B, L, H});
    }
  }
  if (w.head == HeadKind::kBase) {
    lap("download");
    return out;
  }
  Tensor gathered(DType::kF32, {n, labels});
  if (n > 0) gathered = download(be, ws.head_out.rows(0, n), {n, labels});
  const Tensor logits = scatter(gathered, slot, labels);
  auto argmax = [&](const Tensor& lg) {
    Tensor ids(DType::kI32, {lg.dim(0)});
    for (int64_t r = 0; r < lg.dim(0); ++r) {
      const float* row = lg.data_as<float>() + r * labels;
      ids.mutable_data_as<int32_t>()[r] =
          slot[r] < 0 ? -1 : static_cast<int32_t>(std::max_element(row, row + labels) - row);
    }
    return ids;
  };
  switch (w.head) {
    case HeadKind::kTokenClassification:
      out.tensors["labels"] = argmax(logits).reshaped({B, T});
      out.tensors["logits"] = logits.reshaped({B, T, labels});
      break;
    case HeadKind::kSequenceClassification:
      out.tensors["labels"] = argmax(logits).reshaped({B});
      out.tensors["logits"] = logits.reshaped({B, labels});
      break;
    case HeadKind::kQuestionAnswering: {
      Tensor start(DType::kF32, {B, L}), end(DType::kF32, {B, L});
      for (int64_t r = 0; r < B * L; ++r) {
        start.mutable_data_as<float>()[r] = logits.data_as<float>()[2 * r];
        end.mutable_data_as<float>()[r] = logits.data_as<float>()[2 * r + 1];
      }
      out.tensors["start_logits"] = start;
      out.tensors["end_logits"] = end;
      break;
    }
    case HeadKind::kBase: break;
  }
  lap("download");
  return out;
}

}  // namespace layoutrt
