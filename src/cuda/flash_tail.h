// The attention tail split's rule (src/cuda/flash_attention.cu tail_units, src/cuda_sm90/flash_attention_wgmma.cu):
// plain arithmetic on the grid's shape, free of CUDA so the CPU tests check it (the inline form's rule is also
// compiled for the device, where the kernel checks the shape it runs on against it).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LRT_TAIL_HOST_DEVICE __host__ __device__
#else
#define LRT_TAIL_HOST_DEVICE
#endif

namespace layoutrt::cuda {

// Unit CTAs per (sequence, head) pair when the split runs: two warpgroups each, tiles_per_wg key tiles per warpgroup,
// over the ⌈max_seq_len / 64⌉ key tiles.
inline int64_t flash_tail_units_for(int64_t max_seq_len, int64_t tiles_per_wg) {
  const int64_t k_tiles = (max_seq_len + 63) / 64;
  return (k_tiles + 2 * tiles_per_wg - 1) / (2 * tiles_per_wg);
}

// Unit CTAs per (sequence, head) pair for the two-warpgroup wgmma kernel's partial last query tile, or 0 for no split.
// pairs = sequences × heads, sms = the device's multiprocessors, tiles_per_wg = key tiles per unit warpgroup. Split
// only where it moves work off doubled-up SMs: the unsplit grid (all query tiles, partial one included) exceeds one CTA
// per SM, its full tiles alone fit one per SM, and the units fit beside them (a second CTA per SM).
inline int64_t flash_tail_units_rule(int64_t max_seq_len, int64_t pairs, int64_t sms, int64_t tiles_per_wg) {
  constexpr int64_t kTile = 64;
  if (max_seq_len <= 0 || pairs <= 0 || sms <= 0 || tiles_per_wg <= 0 || max_seq_len % kTile == 0) return 0;
  const int64_t q_main = max_seq_len / kTile, q_tiles = q_main + 1;
  const int64_t units = flash_tail_units_for(max_seq_len, tiles_per_wg);
  if (q_main == 0 || q_tiles * pairs <= sms || q_main * pairs > sms || (q_main + units) * pairs > 2 * sms) return 0;
  return units;
}

// The inline form of the split (src/cuda_sm90/flash_attention_wgmma.cu, FlashParams::tail_inline): the partial tile's
// rows run as 16-row strips of the full tiles' own warpgroups, warpgroup g of full tile q taking key tile g + 2q, and
// a fold warp per CTA merges them into one part; the last of ⌈key tiles / 2⌉ parts folds. It applies to one sequence
// (whose length is then max_seq_len) without query_rows, a partial tile of 1 .. kInlineTailRows rows, and parts ≤ full
// tiles (every key tile has a warpgroup) and ≤ kInlineTailMaxParts (the fold's register arrays: L ≤ 768).
constexpr int kInlineTailRows = 16;
constexpr int kInlineTailMaxParts = 6;
LRT_TAIL_HOST_DEVICE inline bool flash_inline_tail_fits(int64_t num_seqs, bool has_query_rows, int64_t max_seq_len) {
  constexpr int64_t kTile = 64;
  if (num_seqs != 1 || has_query_rows || max_seq_len <= 0) return false;
  const int64_t full = max_seq_len / kTile, rows = max_seq_len % kTile;
  const int64_t parts = ((max_seq_len + kTile - 1) / kTile + 1) / 2;
  return rows >= 1 && rows <= kInlineTailRows && parts <= full && parts <= kInlineTailMaxParts;
}

}  // namespace layoutrt::cuda
