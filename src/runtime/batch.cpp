#include "runtime/batch.h"

#include <array>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "layoutrt/error.h"

namespace layoutrt {

namespace {

// Integer input element i as int64, for any integer dtype (bool as 0/1).
int64_t int_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kI64: return t.data_as<int64_t>()[i];
    case DType::kI32: return t.data_as<int32_t>()[i];
    case DType::kI16: return t.data_as<int16_t>()[i];
    case DType::kI8: return t.data_as<int8_t>()[i];
    case DType::kU8: case DType::kBool: return t.data_as<uint8_t>()[i];
    default: break;
  }
  throw_error(ErrorCode::kInternal, "int_at on a ", dtype_name(t.dtype()), " tensor");
}

void require_integer(const Tensor& t, const char* name) {
  if (!dtype_is_integer(t.dtype()))
    throw_error(ErrorCode::kDTypeMismatch, "input ", name, " has dtype ", dtype_name(t.dtype()),
                "; expected an integer type (int64 or int32)");
}

void require_shape(const Tensor& t, const char* name, const Shape& want, const char* meaning) {
  if (t.shape() != want)
    throw_error(ErrorCode::kShapeMismatch, "input ", name, " has shape ", shape_str(t.shape()), ", expected ",
                shape_str(want), " ", meaning);
}

}  // namespace

std::vector<std::array<int32_t, 4>> visual_token_boxes(int n) {
  std::vector<std::array<int32_t, 4>> boxes;
  boxes.push_back({1, 1, 999, 999});
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c)
      boxes.push_back({1000 * c / n, 1000 * r / n, 1000 * (c + 1) / n, 1000 * (r + 1) / n});
  return boxes;
}

PreparedBatch prepare_batch(const LayoutLMv3Config& c, const ModelInfo& info, const Inputs& in) {
  PreparedBatch p;
  const bool has_text = in.input_ids.defined();
  const bool has_pixels = in.pixel_values.defined();

  if (!c.text_embed) {
    for (auto [t, name] : {std::pair{&in.input_ids, "input_ids"}, {&in.bbox, "bbox"},
                           {&in.attention_mask, "attention_mask"}, {&in.token_type_ids, "token_type_ids"}})
      if (t->defined())
        throw_error(ErrorCode::kInvalidArgument, "input ", name,
                    " given, but this model has text_embed=false (image only)");
    if (!has_pixels) throw_error(ErrorCode::kInvalidArgument, "input pixel_values is required (text_embed=false)");
  } else if (!has_text) {
    throw_error(ErrorCode::kInvalidArgument, "input input_ids is required");
  }
  if (has_pixels && !c.visual_embed)
    throw_error(ErrorCode::kInvalidArgument, "input pixel_values given, but this model has visual_embed=false");
  if (!has_text)
    for (auto [t, name] : {std::pair{&in.bbox, "bbox"}, {&in.attention_mask, "attention_mask"},
                           {&in.token_type_ids, "token_type_ids"}})
      if (t->defined()) throw_error(ErrorCode::kInvalidArgument, "input ", name, " given without input_ids");

  // Batch and text length.
  if (has_text) {
    require_integer(in.input_ids, "input_ids");
    if (in.input_ids.rank() != 2)
      throw_error(ErrorCode::kShapeMismatch, "input input_ids has shape ", shape_str(in.input_ids.shape()),
                  ", expected [batch, tokens]");
    p.batch = in.input_ids.dim(0);
    p.text_len = in.input_ids.dim(1);
    if (p.text_len < 1) throw_error(ErrorCode::kShapeMismatch, "input input_ids has no tokens (T = 0)");
    if (p.text_len > info.max_text_tokens)
      throw_error(ErrorCode::kInputOutOfRange, "input input_ids has T = ", p.text_len,
                  " tokens, more than the plan's max_text_tokens ", info.max_text_tokens,
                  (info.max_text_tokens >= 512 ? " (LayoutLMv3 takes at most 512)" : " (rebuild with --max-text-tokens)"));
  } else {
    if (in.pixel_values.rank() < 1)
      throw_error(ErrorCode::kShapeMismatch, "input pixel_values has shape ", shape_str(in.pixel_values.shape()),
                  ", expected [batch, channels, size, size]");
    p.batch = in.pixel_values.dim(0);
  }
  if (p.batch < 1) throw_error(ErrorCode::kShapeMismatch, "inputs have batch size 0");
  if (p.batch > info.max_batch)
    throw_error(ErrorCode::kInputOutOfRange, "batch size ", p.batch, " exceeds the plan's max_batch ",
                info.max_batch, " (rebuild with --max-batch ", p.batch, " or split the batch)");
  const int64_t B = p.batch, T = p.text_len;

  if (has_pixels) {
    const Shape want{B, info.num_channels, info.image_size, info.image_size};
    require_shape(in.pixel_values, "pixel_values", want, "[batch, channels, input_size, input_size] from config.json");
    const DType dt = in.pixel_values.dtype();
    if (dt != DType::kF32 && dt != DType::kF16 && dt != DType::kBF16 && dt != DType::kF64)
      throw_error(ErrorCode::kDTypeMismatch, "input pixel_values has dtype ", dtype_name(dt), "; expected float32");
    p.pixels = dt == DType::kF32 ? in.pixel_values : in.pixel_values.to(DType::kF32);
    const float* px = p.pixels.data_as<float>();
    // Any non-finite value: an exponent of all ones. A branch-free OR over the bits vectorizes (and splits over
    // threads for large batches: 4.8 M values at B = 32); the index is looked for only when there is one.
    const int64_t n = p.pixels.numel();
    const uint32_t* bits = reinterpret_cast<const uint32_t*>(px);
    uint32_t any_bad = 0;
#pragma omp parallel for reduction(| : any_bad) schedule(static) if (n > (int64_t{1} << 20))
    for (int64_t i = 0; i < n; ++i) any_bad |= static_cast<uint32_t>((bits[i] & 0x7f800000u) == 0x7f800000u);
    for (int64_t i = 0; any_bad && i < n; ++i)
      if (!std::isfinite(px[i])) {
        const int64_t plane = info.image_size * info.image_size;
        throw_error(ErrorCode::kInputOutOfRange, "input pixel_values[", i / (plane * info.num_channels), "][",
                    (i / plane) % info.num_channels, "][", (i % plane) / info.image_size, "][",
                    i % info.image_size, "] is ", px[i], " (not finite)");
      }
    p.visual_len = info.visual_tokens;
  }

  const int64_t L = p.seq_len();
  p.seq_begin.resize(B + 1);
  for (int64_t b = 0; b <= B; ++b) p.seq_begin[b] = static_cast<int32_t>(b * L);
  p.pos1d.assign(B * L, 0);
  p.pos_x.assign(B * L, 0);
  p.pos_y.assign(B * L, 0);
  p.key_valid.assign(B * L, 1);

  if (has_text) {
    const Shape bt{B, T};
    if (in.bbox.defined()) {
      require_integer(in.bbox, "bbox");
      require_shape(in.bbox, "bbox", {B, T, 4}, "[batch, tokens, 4] (x0, y0, x1, y1)");
    }
    if (in.attention_mask.defined()) {
      require_shape(in.attention_mask, "attention_mask", bt, "[batch, tokens] like input_ids");
    }
    if (in.token_type_ids.defined()) {
      require_integer(in.token_type_ids, "token_type_ids");
      require_shape(in.token_type_ids, "token_type_ids", bt, "[batch, tokens] like input_ids");
    }
    // Boxes index the 2D tables and h/w = clip(y1 - y0 / x1 - x0, 0, 1023); LayoutLMv3 processors give 0..1000.
    const int64_t max_coord = std::min(1000, c.max_2d_position_embeddings - 1);
    p.text_row.resize(B * T);
    p.token_ids.resize(B * T);
    p.position_ids.resize(B * T);
    p.token_type_ids.assign(B * T, 0);
    p.boxes.assign(B * T * 4, 0);
    Tensor float_mask;  // float masks are rare; compare them as doubles
    if (in.attention_mask.defined() && !dtype_is_integer(in.attention_mask.dtype()))
      float_mask = in.attention_mask.to(DType::kF64);
    for (int64_t b = 0; b < B; ++b) {
      int64_t cumsum = 0;
      int64_t attended = 0;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t i = b * T + t, row = b * L + t;
        const int64_t id = int_at(in.input_ids, i);
        if (id < 0 || id >= c.vocab_size)
          throw_error(ErrorCode::kInputOutOfRange, "input_ids[", b, "][", t, "] = ", id,
                      " is outside the vocabulary 0..", c.vocab_size - 1);
        p.text_row[i] = static_cast<int32_t>(row);
        p.token_ids[i] = static_cast<int32_t>(id);
        // RoBERTa positions from the padding of input_ids (not from attention_mask): pad tokens get pad_token_id.
        const bool real = id != c.pad_token_id;
        cumsum += real;
        p.position_ids[i] = static_cast<int32_t>(real ? cumsum + c.pad_token_id : c.pad_token_id);
        if (in.token_type_ids.defined()) {
          const int64_t tt = int_at(in.token_type_ids, i);
          if (tt < 0 || tt >= c.type_vocab_size)
            throw_error(ErrorCode::kInputOutOfRange, "token_type_ids[", b, "][", t, "] = ", tt, " is outside 0..",
                        c.type_vocab_size - 1);
          p.token_type_ids[i] = static_cast<int32_t>(tt);
        }
        if (in.bbox.defined()) {
          int64_t v[4];
          for (int k = 0; k < 4; ++k) {
            v[k] = int_at(in.bbox, i * 4 + k);
            if (v[k] < 0 || v[k] > max_coord)
              throw_error(ErrorCode::kInputOutOfRange, "bbox[", b, "][", t, "] = [", int_at(in.bbox, i * 4), ", ",
                          int_at(in.bbox, i * 4 + 1), ", ", int_at(in.bbox, i * 4 + 2), ", ",
                          int_at(in.bbox, i * 4 + 3), "]: coordinate ", v[k], " is outside 0..", max_coord,
                          " (boxes must be normalized to 0..1000)");
            p.boxes[i * 4 + k] = static_cast<int32_t>(v[k]);
          }
          if (v[2] < v[0] || v[3] < v[1])
            throw_error(ErrorCode::kInputOutOfRange, "bbox[", b, "][", t, "] = [", v[0], ", ", v[1], ", ", v[2], ", ",
                        v[3], "] is inverted (", v[2] < v[0] ? "x1 < x0" : "y1 < y0", ")");
        }
        if (in.attention_mask.defined()) {
          const double m = float_mask.defined() ? float_mask.data_as<double>()[i]
                                                : static_cast<double>(int_at(in.attention_mask, i));
          if (m != 0.0 && m != 1.0)
            throw_error(ErrorCode::kInputOutOfRange, "attention_mask[", b, "][", t, "] = ", m, "; expected 0 or 1");
          p.key_valid[row] = m != 0.0;
        }
        attended += p.key_valid[row];
        p.pos1d[row] = static_cast<int32_t>(t);  // plain arange for the bias (trap 1)
        p.pos_x[row] = p.boxes[i * 4 + 0];       // left x
        p.pos_y[row] = p.boxes[i * 4 + 3];       // bottom y (trap 2)
      }
      if (attended == 0 && p.visual_len == 0)
        throw_error(ErrorCode::kInputOutOfRange, "attention_mask[", b,
                    "] is all zeros and there are no visual tokens: the sequence attends to nothing");
    }
  }
  if (p.visual_len > 0) {
    const auto vboxes = visual_token_boxes(c.patches_per_side());
    p.cls_row.resize(B);
    for (int64_t b = 0; b < B; ++b) {
      p.cls_row[b] = static_cast<int32_t>(b * L + T);
      for (int64_t v = 0; v < p.visual_len; ++v) {
        const int64_t row = b * L + T + v;
        p.pos1d[row] = static_cast<int32_t>(v);
        p.pos_x[row] = vboxes[v][0];
        p.pos_y[row] = vboxes[v][3];
      }
    }
  }
  p.padded_row.resize(B * L);
  for (int64_t r = 0; r < B * L; ++r) p.padded_row[r] = static_cast<int32_t>(r);
  p.max_seq_rows = L;
  return p;
}

namespace {

// Whether row r (of sequence b, padded layout) stays in the packed layout.
bool kept_row(const PreparedBatch& p, int64_t b, int64_t r) {
  return r - b * p.seq_len() >= p.text_len || p.key_valid[r] != 0;
}

}  // namespace

int64_t packed_rows(const PreparedBatch& p) {
  int64_t n = 0;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t r = b * p.seq_len(); r < (b + 1) * p.seq_len(); ++r) n += kept_row(p, b, r);
  return n;
}

void pack_batch(PreparedBatch& p, int lanes) {
  const int64_t B = p.batch, L = p.seq_len();
  // The packed layout's sequence order. Longest first: the attention and bias-cache kernels issue their CTAs sequence
  // by sequence, so the long sequences' CTAs start first and the short ones fill the last wave (longest-processing-
  // time first). With lanes, the sequences are dealt to groups of about equal rows (longest first, each to the group
  // with the fewest rows so far): a split of the longest-first order at equal rows gives the first lane the long
  // sequences and so more of the attention's work, which grows with the square of a length (FUNSD's first 32
  // documents in two lanes, time estimated from the padded batch's GEMM rate per row and attention rate per tile
  // pair: 2.58 vs 2.45 ms split, 2.53 vs 2.51 dealt; measured on an H200, that batch packed 0.85 % faster:
  // bench/results/2026-12-01-h200-lane-groups.md). Rows stay contiguous per sequence and every output is mapped back
  // through padded_row, so the order changes no result.
  std::vector<int64_t> order(B), real(B, 0);
  for (int64_t b = 0; b < B; ++b) {
    order[b] = b;
    for (int64_t r = b * L; r < (b + 1) * L; ++r) real[b] += kept_row(p, b, r);
  }
  const char* env = std::getenv("LAYOUTRT_PACK_ORDER");
  const std::string mode = env && *env ? env : "lanes";
  if (mode != "lanes" && mode != "longest" && mode != "input")
    throw_error(ErrorCode::kInvalidArgument, "LAYOUTRT_PACK_ORDER=", mode, ": expected lanes, longest or input");
  if (mode != "input")
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return real[a] > real[b]; });
  p.lane_seq_begin.clear();
  lanes = static_cast<int>(std::clamp<int64_t>(lanes, 1, std::max<int64_t>(B, 1)));
  if (mode == "lanes" && lanes > 1) {
    std::vector<std::vector<int64_t>> group(lanes);
    std::vector<int64_t> group_rows(lanes, 0);
    for (const int64_t b : order) {
      const auto g = std::min_element(group_rows.begin(), group_rows.end()) - group_rows.begin();
      group[g].push_back(b);
      group_rows[g] += real[b];
    }
    order.clear();
    p.lane_seq_begin.push_back(0);
    for (const auto& g : group) {
      if (g.empty()) continue;  // only when sequences have no rows at all
      order.insert(order.end(), g.begin(), g.end());
      p.lane_seq_begin.push_back(static_cast<int32_t>(order.size()));
    }
  }
  std::vector<int32_t> new_row(B * L, -1);
  std::vector<int32_t> seq_begin(B + 1, 0);
  int32_t next = 0;
  p.max_seq_rows = 0;
  for (int64_t k = 0; k < B; ++k) {
    const int64_t b = order[k];
    seq_begin[k] = next;
    for (int64_t r = b * L; r < (b + 1) * L; ++r)
      if (kept_row(p, b, r)) new_row[r] = next++;
    p.max_seq_rows = std::max<int64_t>(p.max_seq_rows, next - seq_begin[k]);
  }
  seq_begin[B] = next;
  auto compact_rows = [&](auto& v) {
    auto out = v;
    out.resize(next);
    for (int64_t r = 0; r < B * L; ++r) if (new_row[r] >= 0) out[new_row[r]] = v[r];
    v = std::move(out);
  };
  compact_rows(p.pos1d);
  compact_rows(p.pos_x);
  compact_rows(p.pos_y);
  compact_rows(p.key_valid);
  for (auto& r : p.cls_row) r = new_row[r];
  // Text tokens: keep the real ones, in order.
  size_t n = 0;
  for (size_t i = 0; i < p.text_row.size(); ++i) {
    const int32_t r = new_row[p.text_row[i]];
    if (r < 0) continue;
    p.text_row[n] = r;
    p.token_ids[n] = p.token_ids[i];
    p.position_ids[n] = p.position_ids[i];
    p.token_type_ids[n] = p.token_type_ids[i];
    for (int k = 0; k < 4; ++k) p.boxes[4 * n + k] = p.boxes[4 * i + k];
    ++n;
  }
  for (auto* v : {&p.text_row, &p.token_ids, &p.position_ids, &p.token_type_ids}) v->resize(n);
  p.boxes.resize(4 * n);
  p.seq_begin = std::move(seq_begin);
  p.padded_row = std::move(new_row);
  p.packed = true;
}

}  // namespace layoutrt
