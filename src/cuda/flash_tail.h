// The attention tail split's rule (src/cuda/flash_attention.cu tail_units, src/cuda_sm90/flash_attention_wgmma.cu):
// plain arithmetic on the grid's shape, host-only and free of CUDA so the CPU tests check it.
#pragma once

#include <cstdint>

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

}  // namespace layoutrt::cuda
