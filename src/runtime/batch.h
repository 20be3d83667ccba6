// Host-side preparation of one batch: validated inputs turned into the row layout of ops/backend.h.
#pragma once

#include <cstdint>
#include <vector>

#include "layoutrt/engine.h"
#include "model/config.h"

namespace layoutrt {

struct PreparedBatch {
  int64_t batch = 0;
  int64_t text_len = 0;       // T: text rows per sequence (0 without text)
  int64_t visual_len = 0;     // V: visual rows per sequence (0 without pixel_values)
  int64_t seq_len() const { return text_len + visual_len; }  // L of the padded layout
  int64_t rows() const { return seq_begin.empty() ? 0 : seq_begin.back(); }
  int64_t max_seq_rows = 0;   // longest sequence in rows (L unless packed)
  bool packed = false;

  // Text tokens that enter the encoder: all batch*T of them in the padded layout (token (b, t) is row b*L + t), only
  // the attention_mask=1 ones when packed.
  std::vector<int32_t> text_row, token_ids, position_ids, token_type_ids, boxes;
  // For each position of the padded layout (batch * L), its row, or -1 when packing dropped it.
  std::vector<int32_t> padded_row;
  // Per row.
  std::vector<int32_t> pos1d, pos_x, pos_y;
  std::vector<uint8_t> key_valid;
  std::vector<int32_t> seq_begin;  // batch + 1
  std::vector<int32_t> cls_row;    // batch: row of the visual CLS token
  // Packed with lanes (pack_batch): lane i takes sequences [lane_seq_begin[i], lane_seq_begin[i + 1]); empty: the
  // forward splits the sequences at the row boundaries nearest equal rows.
  std::vector<int32_t> lane_seq_begin;
  Tensor pixels;                   // [B, C, S, S] F32 (converted if needed), undefined without visual rows
};

// Validates (throws layoutrt::Error naming input, index and value) and prepares. `max_box` is the largest accepted
// box coordinate (1000, or less when the 2D tables are smaller).
PreparedBatch prepare_batch(const LayoutLMv3Config& c, const ModelInfo& info, const Inputs& in);

// Padding-free layout: drops text rows with attention_mask 0 and renumbers the rest, sequence by sequence (seq_begin
// becomes the cumulative row offsets in that order, so its index is no longer the batch index; cls_row, text_row and
// padded_row map every batch position to its row). Everything a kept row computes is unchanged. The order, by
// LAYOUTRT_PACK_ORDER: "lanes" (default) deals the sequences, longest first, to `lanes` groups of about equal rows
// (each to the group with the fewest rows so far), the groups one after the other, each longest first, and records
// them in lane_seq_begin for the forward's lanes (with lanes = 1: longest first); "longest": longest first over the
// whole batch, the lanes then split at the row boundary nearest equal rows; "input": the batch's order, same split.
void pack_batch(PreparedBatch& p, int lanes = 1);
// The rows pack_batch keeps (visual rows and text rows with attention_mask 1), for choosing the lane count first.
int64_t packed_rows(const PreparedBatch& p);

// The visual tokens' boxes for the 2D bias (transformers' create_visual_bbox): CLS [1, 1, 999, 999], then patch (r, c)
// of the n x n grid [1000c/n, 1000r/n, 1000(c+1)/n, 1000(r+1)/n] with truncating integer division. [V][4].
std::vector<std::array<int32_t, 4>> visual_token_boxes(int patches_per_side);

}  // namespace layoutrt
