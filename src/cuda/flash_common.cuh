// Shared by the flash attention kernels (src/cuda/flash_attention.cu: mma.sync, sm_80+; src/cuda_sm90/
// flash_attention_wgmma.cu: wgmma, sm_90a): the kernel parameters, the bias cache's block layout, and the small PTX
// wrappers both use (with async_copy.cuh's). Device code only; include from .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/async_copy.cuh"

namespace layoutrt::cuda::flash {

constexpr int kBlockM = 64;  // query rows per CTA

// Bias modes: 0 none, 1 bias1d only, 2 bias1d + bias_x + bias_y (the CPU twin's has1d / has2d logic), 3 the mode-2
// bias read from the precomputed cache (flash_prepare_bias) instead of looked up.
struct FlashParams {
  const void* qkv;
  void* out;
  const int32_t* seq_begin;
  const int32_t* query_rows;      // optional: queries of sequence b past query_rows[b] are skipped (AttentionArgs)
  const int32_t* pos1d;
  const int32_t* pos_x;
  const int32_t* pos_y;
  const uint8_t* key_valid;
  const float* bias1d;
  const float* bias_x;
  const float* bias_y;
  int n1, n2;                     // table lengths 2·max_dist + 1 (0 when the table is unused)
  int max_dist_1d, max_dist_2d;
  int hidden;                     // H = heads · d
  int bias_mode;
  float scale_log2;               // log2(e) / √d
  const uint4* bias_cache;        // mode 3: F16 blocks, kCacheBlockU4 uint4 per (sequence, head, query tile, key block)
  int q_tiles, k_blocks;          // mode 3: ⌈max_seq_len / 64⌉, 2 · ⌈max_seq_len / 64⌉ (the cache's strides)
  int cache_groups;               // bias_cache_kernel: CTAs per query tile, each writing a share of the key blocks
  // Tail split of the wgmma kernel (two warpgroups, mode 3; src/cuda_sm90/flash_attention_wgmma.cu): 0 = off. Else
  // the grid is one-dimensional: the full 64-row query tiles of every (sequence, head) first (tail_q_main =
  // ⌊max_seq_len / 64⌋ per pair), then tail_units CTAs per pair whose warpgroups each take tail_tiles key tiles of the
  // pair's last, partial query tile; tail_ws holds their partials (kMergeFloats · 128 floats per (pair, key tile), q_tiles
  // key tiles per pair), tail_count one arrival counter per pair (0 between launches).
  int tail_units, tail_q_main, tail_tiles, heads, seqs;  // tail_tiles: key tiles per tail warpgroup
  // The inline form of the tail split instead (1; tail_units 0): one sequence, a partial tile of at most 16 rows,
  // computed as 16-row mma.sync strips by the full tiles' own warpgroups (flash_attention_wgmma.cu); the grid is the
  // full tiles', tail_ws / tail_count as above (one partial per CTA that has strips).
  int tail_inline;
  float* tail_ws;
  unsigned* tail_count;
};
// Floats of one warpgroup's partial (O accumulators, row maxima, partial row sums per thread) in the wgmma kernel, and
// the most 64-key tiles a tail-split sequence may have (the fold keeps a factor per tile and row in shared memory).
constexpr int kTailUnitFloats = 36 * 128;
constexpr int kTailMaxKeyTiles = 16;

// The bias cache: blocks of 64 queries × kCacheKeys keys as F16, per (sequence, head, query tile, key block), the key
// blocks of a query tile consecutive, 2 · ⌈L / 64⌉ of them (a 64-key tile reads two; past L they hold −∞). Inside a
// block, piece (uint4) (strip · 2 + v) · 32 + lane holds n-tiles 2v and 2v + 1 of the S fragment of `lane` in 16-row
// strip `strip` (s[2v][0..3], s[2v + 1][0..3]): the layout depends only on which fragment a lane of a strip owns, so
// both cached kernel shapes read it, and a warp's 32 lanes read 512 consecutive bytes (conflict-free).
constexpr int kCacheKeys = 32;
constexpr int kCacheBlockU4 = kBlockM * kCacheKeys * 2 / 16;
__host__ __device__ constexpr int64_t cache_block(int64_t b, int64_t h, int64_t heads, int64_t qt, int64_t kb,
                                                  int64_t q_tiles, int64_t k_blocks) {
  return (((b * heads + h) * q_tiles + qt) * k_blocks + kb) * kCacheBlockU4;
}
// Piece of n-tile pair vp (n-tiles 2vp, 2vp + 1 of a BN-key tile) of `lane` in `strip`, from the tile's first block.
__device__ __forceinline__ int cache_piece(int strip, int vp, int lane) {
  return (vp >> 1) * kCacheBlockU4 + (strip * 2 + (vp & 1)) * 32 + lane;
}

// Head h's q of row seq0 in the packed activations qkv [rows, 3H] (its k at + H, its v at + 2H; rows 3H apart).
template <class T>
__device__ __forceinline__ const T* head_q(const FlashParams& p, int seq0, int h, int d) {
  return static_cast<const T*>(p.qkv) + int64_t{seq0} * 3 * p.hidden + int64_t{h} * d;
}

// ---- PTX wrappers (sm_80+; cp.async and smem_u32: async_copy.cuh) ---------------------------------------------------
// ldmatrix .x4: four 8 × 8 matrices of 16-bit elements, lanes 8i .. 8i + 7 giving the row addresses of matrix i;
// r[i] holds this lane's two elements of matrix i (the .trans form: of its transpose).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c += a · b, m16n8k16, row.col, FP32 accumulate.
template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats → one 32-bit register of two T (lo in the low half: the lower column index), round to nearest even.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

// 2^x (ex2.approx: ~2 ulp; 2^-inf = +0, which the masking relies on).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Mode 3: a key tile's bias pieces of this lane (see cache_piece; u[v] = piece v), widened to FP32 into the score
// accumulator. The blocks already hold −∞ for masked and out-of-range keys (bias_cache_kernel), so no validity bits are
// needed.
template <int BN>
__device__ __forceinline__ void scores_from_bias(float (&s)[BN / 8][4], const uint4 (&u)[BN / 16]) {
#pragma unroll
  for (int v = 0; v < BN / 16; ++v) {
    const uint32_t w[4] = {u[v].x, u[v].y, u[v].z, u[v].w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[k]));
      s[2 * v + (k >> 1)][2 * (k & 1)] = f.x;
      s[2 * v + (k >> 1)][2 * (k & 1) + 1] = f.y;
    }
  }
}

// The same from the key tile's blocks in shared memory (`tile`: its first block; BN / kCacheKeys blocks).
template <int BN>
__device__ __forceinline__ void init_scores_cached(float (&s)[BN / 8][4], const uint4* tile, int strip, int lane) {
  static_assert(BN % kCacheKeys == 0, "a key tile is whole cache blocks");
  uint4 u[BN / 16];
#pragma unroll
  for (int v = 0; v < BN / 16; ++v) u[v] = tile[cache_piece(strip, v, lane)];
  scores_from_bias<BN>(s, u);
}

// The running max m_new as the exponent's offset: m_new · scale, or 0 while every key so far is masked (m_new = −∞).
__device__ __forceinline__ float scaled_max(float m_new, float scale) {
  return (m_new == -INFINITY ? 0.f : m_new) * scale;
}
// The factor that moves sums and outputs accumulated against max m onto the new max m_new ≥ m (m_scaled =
// scaled_max(m_new)): 2^(m · scale − m_scaled), exactly 1 when the max did not move (the FMA's rounding residual must
// not leak into O), 0 when m = −∞ < m_new (nothing was accumulated: O = 0, sum = 0).
__device__ __forceinline__ float max_shift_factor(float m, float m_new, float m_scaled, float scale) {
  return m == m_new ? 1.f : exp2_approx(fmaf(m, scale, -m_scaled));
}

// One key tile's online-softmax step on one 16-row strip (FP32), in place: s holds the unscaled scores (bias + q·k)
// of this thread's rows g (elements 0, 1) and g + 8 (2, 3) of n-tiles 0 .. NT8 − 1 and becomes p = 2^(s · scale −
// m · scale) with m the new running row max (the scale is positive, so the max commutes with it: one FMA per score
// before the exp). A row whose keys so far are all masked keeps max −∞ and subtracts 0 instead, so p and the
// correction are 2^(−∞) = 0, never −∞ − (−∞) = NaN. corr[rr]: the factor for this row's running output and sum,
// exactly 1 when the max did not move (the FMA's rounding residual must not leak into O). Returns corr != 1 for a row.
template <int NT8>
__device__ __forceinline__ bool online_softmax_step(float (&s)[NT8][4], float (&row_max)[2], float (&row_sum)[2],
                                                    float (&corr)[2], float scale) {
  bool rescale = false;
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float mx = -INFINITY;
#pragma unroll
    for (int n = 0; n < NT8; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * rr], s[n][2 * rr + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(row_max[rr], mx);
    const float m_scaled = scaled_max(m_new, scale);
    corr[rr] = max_shift_factor(row_max[rr], m_new, m_scaled, scale);
    rescale |= corr[rr] != 1.f;
    row_max[rr] = m_new;
    float sum = 0.f;
#pragma unroll
    for (int n = 0; n < NT8; ++n) {
      s[n][2 * rr] = exp2_approx(fmaf(s[n][2 * rr], scale, -m_scaled));
      s[n][2 * rr + 1] = exp2_approx(fmaf(s[n][2 * rr + 1], scale, -m_scaled));
      sum += s[n][2 * rr] + s[n][2 * rr + 1];
    }
    row_sum[rr] = row_sum[rr] * corr[rr] + sum;
  }
  return rescale;
}

// O ·= corr per row (the accumulator fragment of D / 8 n-tiles, rows g and g + 8).
template <int DT8>
__device__ __forceinline__ void rescale_rows(float (&o)[DT8][4], const float (&corr)[2]) {
#pragma unroll
  for (int n = 0; n < DT8; ++n) {
    o[n][0] *= corr[0];
    o[n][1] *= corr[0];
    o[n][2] *= corr[1];
    o[n][3] *= corr[1];
  }
}

// P's A fragment (m16k16, row-major) for keys [16kk, 16kk + 16): the S accumulator of n-tiles 2kk and 2kk + 1,
// rounded to T.
template <class T, int NT8>
__device__ __forceinline__ void p_fragment(const float (&s)[NT8][4], int kk, uint32_t (&a)[4]) {
  a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
  a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
  a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// 1 / row sum of this thread's rows g, g + 8 (the quad's partial sums reduced); 0 when the sum is 0 (every key
// masked: ctx = 0, as the CPU twin).
__device__ __forceinline__ void inverse_row_sums(const float (&row_sum)[2], float (&inv)[2]) {
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float l = row_sum[rr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    inv[rr] = l > 0.f ? 1.f / l : 0.f;
  }
}

}  // namespace layoutrt::cuda::flash
