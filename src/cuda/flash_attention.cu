// Fused relative-bias flash attention for F16 / BF16 activations: the tensor-core twin of src/cpu/attention.cpp.
//
// What it computes (AttentionArgs, ops/backend.h; spec traps 3, 5, 7, 8): for sequence b (rows seq_begin[b] ..
// seq_begin[b+1]), head h, query i, over keys j of the same sequence with key_valid[j] = 1:
//   s_ij = (q_i · k_j) / √d + (bias1d[h][p_j − p_i] + (bias_x[h][x_j − x_i] + bias_y[h][y_j − y_i])) / √d
//   ctx_i = Σ_j softmax_j(s_ij) · v_j            → out[row i, h·d .. h·d + d) in the activation dtype.
// As in the CPU twin, the 2D tables are used only together with the 1D table (transformers adds the spatial bias only
// with the 1D bias), and a query whose every key is masked gets ctx = 0 (the twin's accumulator stays zero).
//
// Grid / block. grid = (⌈max_seq_len / 64⌉ query tiles, num_heads, num_seqs); block = 128 threads = 4 warps (the
// lookup path and kCached4W) or 64 threads = 2 warps (kCached2W; see Variant).
// CTA (t, h, b) owns query rows seq_begin[b] + [64t, 64t + 64) ∩ sequence b (it exits at once when the tile starts
// past the sequence's end, so padding in max_seq_len costs nothing), and loops over the key tiles of ITS sequence only
// (variable lengths through cumulative offsets: packed batches waste no work). Warp w owns the 16-row strips
// [16·(w·S + i), +16) of the tile, i < S (S = 1, or 2 for kCached2W): Q·Kᵀ and P·V are mma.sync.m16n8k16 (F16/BF16
// in, FP32 accumulate), each K/V fragment feeding the S strips' mmas, so the online softmax needs only quad shuffles
// (a row lives in the 4 lanes of an mma quad). P never leaves registers: the
// QKᵀ accumulator fragment of two 8-key n-tiles is exactly the A fragment of one 16-key k-step of P·V.
//
// Shared memory (dynamic; row stride d + 8 elements, so the 8 row addresses of an ldmatrix hit 8 distinct 16-byte
// bank groups — padding instead of an XOR swizzle because it works for every d that is a multiple of 8):
//   sQ    [64][d+8]            the query tile (cp.async; rows past the end zero-filled), ldmatrix'd into A fragments
//                              per k-step of every key tile (not held in registers: the register cap); stages the output
//   sK,sV [2][BN][d+8] each    double-buffered key/value tiles (cp.async.cg, 16-byte chunks); rows of masked or
//                              out-of-range keys are zero-filled, so a non-finite V in a masked row cannot leak (0·NaN)
//   sMeta [3][BN] int4         per key {p1d, x, y, valid}; three stages: tile t is being used, tile t+1's validity
//                              drives its cp.async zero-fill, tile t+2's is prefetched into registers during tile t
//   tables ~n1 + 2·n2 floats   this head's rows of bias1d, bias_x, bias_y (n = 2·max_dist + 1), FP32 (modes 1, 2)
//   bias  [2][BN/32][256] uint4  mode 3: the key tile's bias-cache blocks, double-buffered beside K/V (cp.async)
// BN = 64 keys for d ≤ 64, 32 for d = 128 (keeps the CTA under the 99 KB opt-in limit of sm_86/sm_89); kCached2W: 32.
// Engine sizes (max_dist_1d = max(T, 197) = 512, max_dist_2d = 1023): tables 20 KB; d = 64: 68 KB per CTA.
// Registers (ptxas, CUDA 13, sm_90, no spills): lookup d = 32: 153, d = 64: 168, d = 128: 167 under
// __launch_bounds__(128, 3) — three CTAs per SM on sm_90 (smem 3 × 68 KB fits its 227 KB), two on sm_80; kCached4W
// d = 64: 154; kCached2W d = 64: 162 under (64, 5).
//
// Pipeline per key tile t: issue cp.async of K/V tile t+1 (other buffer) and the plain loads of tile t+2's metadata;
// S = bias (three table lookups per score, FP32), S += Q·Kᵀ (ldmatrix K; starting the accumulator at the bias keeps
// the lookups' registers off the live mma fragments); S ·= log2(e)/√d, masked → −∞; online softmax in FP32 (running
// row max and sum, max-subtracted, ex2.approx; a fully masked prefix keeps max −∞ and is handled without NaN);
// O = O·corr + P·V (P rounded to the dtype, ldmatrix.trans V); store tile t+2's metadata; wait for tile t+1;
// __syncthreads. Epilogue: O / l (0 when l = 0), rounded to the dtype, staged through the warp's own rows of sQ and
// written with 16-byte stores.
//
// Contract kept from AttentionArgs: every sequence is at most max_seq_len rows (the grid covers max_seq_len).
//
// Reads: qkv rows of sequence b (q of its tile; k, v of all its keys; head h only), pos1d / pos_x / pos_y /
// key_valid of those rows, seq_begin[b..b+1], head h's bias rows. Writes: only `out` rows of its tile that lie inside
// the sequence, columns [h·d, h·d + d): rows outside every sequence are never touched. No scratch, no atomics.
//
// Two ways to add the relative biases (LAYOUTRT_ATTENTION_BIAS=cache|lookup), measured on an H100 (fp16, B = 32,
// T = 512 + 197 visual, 12 heads, d = 64; bench/results/2026-11-24-h100.md):
//  - lookup (bias_mode 1, 2): every layer looks each score's bias up in the head's FP32 tables by distance (three
//    int32 positions + a key-valid byte per key row, the tables in shared memory). No extra memory, but three lookups
//    and six clamps per score in every layer: 0.597 ms per layer-call vs. 0.298 ms without biases (83 vs 166 TFLOP/s).
//  - cache (bias_mode 3, FP16/BF16 plans, d ≤ 64; the default): flash_prepare_bias adds the three biases once per
//    forward into F16 64 × 32 blocks laid out in the mma fragment order, −∞ for masked keys (453 MB at B = 32: one
//    0.36 ms kernel), and all 12 layers stream their blocks with cp.async beside K/V: 0.327 ms per layer-call as
//    first measured, 0.292 with kCached2W, the scale fused into the exponent's FMA and no mask pass. The biases are
//    the encoder's, not a layer's, so the once-per-forward sum is exact up to the F16 rounding of the bias sum
//    (≤ 2⁻¹¹ relative). Engine forward (bench/results/2026-11-24-h100-bias-cost.md, -flash-shape.md): attention stage
//    6.40 → 3.85 ms, forward 14.10 → 11.56 ms at B = 32; 1.08 → 0.89 ms at B = 1.
// On compute capability 9.0 at d = 64 the cache is read by the wgmma kernel of src/cuda_sm90/flash_attention_wgmma.cu
// instead (same arithmetic, same cache; 0.229 vs 0.289 ms per layer-call at B = 32; see cache_variant).
// Mixed plans keep the biases FP32 (their policy) and look them up; LAYOUTRT_BIAS_CACHE_MB (default 2048) caps the
// cache's workspace, beyond which the lookup path runs.
//
// Guards: positions index the tables through distances clamped to [−max_dist, max_dist]; valid inputs (the engine
// clamps boxes and builds tables covering every distance) never hit the clamp, invalid ones cannot read out of bounds.
#include "cuda/flash_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/device_info.h"
#include "cuda/flash_attention_sm90.h"
#include "cuda/flash_common.cuh"
#include "cuda/flash_tail.h"
#include "cuda/kernel_util.cuh"

namespace layoutrt::cuda {
namespace {

using namespace flash;

constexpr int kKvStages = 2;
constexpr int kMetaStages = 3;
// Kernel variants. Lookup (modes 0-2): four warps, one 16-row strip each, BN = 64 (d ≤ 64) / 32 (d = 128); the
// table lookups need the registers. Cached (mode 3, d ≤ 64), two shapes reading the same cache:
//  - kCached4W: four warps × one strip, BN = 64 — more CTAs and warps where the grid is small (B = 1, 8);
//  - kCached2W: two warps × two strips, BN = 32 — every K/V fragment loaded from shared memory feeds two mmas and the
//    two strips' dependency chains interleave: 9 % faster per layer at B = 32, but half the warps per CTA.
// launch() picks kCached2W when the grid fills the GPU about three times over (bench/results/2026-11-24-h100.md).
// Tried and dropped: 32-row CTAs (2 warps × 1 strip) for B = 1, to spread 288 CTAs instead of 144 over the 132 SMs —
// 0.393 vs 0.364 ms for the attention stage at B = 1 (each CTA still walks every key tile: the critical path is the
// key loop). Split keys (FP32 partials per split, merged by a second kernel) were tried too: attention stage at B = 1
// 0.423 ms unsplit vs 0.415 / 0.423 / 0.447 with 2 / 3 / 4 splits, and the split bookkeeping slowed the unsplit
// kernel by ~3 % at every batch — dropped (bench run of 2026-11-24, same H100).
// kCachedWG: the Hopper wgmma kernel (src/cuda_sm90/flash_attention_wgmma.cu), one warpgroup × 64 query rows.
enum Variant : int { kLookup = 0, kCached4W = 1, kCached2W = 2, kCachedWG = 3 };

template <int D, int kVariant>
struct KernelShape {
  static constexpr bool kUsesCache = kVariant != kLookup;
  static constexpr int kStrips = kVariant == kCached2W ? 2 : 1;
  static constexpr int kWarps = kBlockM / (16 * kStrips);
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockN = kVariant == kCached2W ? 32 : (D <= 64 ? 64 : 32);
  // Three CTAs (12 warps) per SM cap registers at 168 (lookup d = 64: 167-168, no spills) and fit sm_90's shared
  // memory (lookup: 68 KB per CTA at engine table sizes; two on sm_80). kCached2W (64 threads, 37 KB): five.
  static constexpr int kMinCtas = kVariant == kCached2W ? 5 : 3;
};

template <int D, int kVariant>
constexpr size_t tile_smem_bytes() {
  constexpr int BN = KernelShape<D, kVariant>::kBlockN, kStride = D + 8;
  return sizeof(uint16_t) * (size_t{kBlockM} * kStride + size_t{2 * kKvStages} * BN * kStride) +
         sizeof(int4) * size_t{kMetaStages} * BN;
}

__device__ __forceinline__ int clamp_index(int i, int hi) { return min(max(i, 0), hi); }

// Key metadata of row j (sequence-relative) of the CTA's sequence: {p1d, x, y, valid}; all zero past the end.
__device__ __forceinline__ int4 load_key_meta(const FlashParams& p, int seq0, int L, int j) {
  int4 m = make_int4(0, 0, 0, 0);
  if (j < L) {
    const int row = seq0 + j;
    m.w = p.key_valid[row] != 0;
    if (p.bias_mode == 1 || p.bias_mode == 2) m.x = p.pos1d[row];
    if (p.bias_mode == 2) {
      m.y = p.pos_x[row];
      m.z = p.pos_y[row];
    }
  }
  return m;
}

// The bias half of the scores, written into the QKᵀ accumulator BEFORE the mma (so the bias loads never overlap the
// live mma fragments: this keeps the kernel under the register budget), and the per-column validity bits.
// Thread (g, tq) holds rows g (elements 0, 1) and g + 8 (elements 2, 3), columns 8j + 2tq + {0, 1} of n-tile j.
// The bias sum keeps the CPU twin's order b1 + (bx + by).
template <int MODE, int BN>
__device__ __forceinline__ uint32_t init_scores_with_bias(float (&s)[BN / 8][4], const int4* meta, const int (&q1)[2],
                                                          const int (&qx)[2], const int (&qy)[2], const float* t1,
                                                          const float* tx, const float* ty, int hi1, int hi2,
                                                          int tq) {
  static_assert(BN / 4 <= 32, "one validity bit per column of this thread");
  uint32_t valid = 0;
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int4 km = meta[8 * j + 2 * tq + e];
      valid |= static_cast<uint32_t>(km.w != 0) << (2 * j + e);
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float bias = 0.f;
        if constexpr (MODE >= 1) {
          bias = t1[clamp_index(km.x + q1[rr], hi1)];
          if constexpr (MODE == 2) bias += tx[clamp_index(km.y + qx[rr], hi2)] + ty[clamp_index(km.z + qy[rr], hi2)];
        }
        s[j][2 * rr + e] = bias;
      }
    }
  }
  return valid;
}

// Shared floats reserved for one table of n floats (table_async's slack for 16-byte copies, whole 16 bytes).
__host__ __device__ constexpr int table_area_floats(int n) { return n > 0 ? (n + 6) / 4 * 4 : 0; }
// Starts the copy of n floats from src (4-byte aligned) into the 16-byte aligned shared `area` of
// table_area_floats(n) floats with cp.async — 16-byte copies where src allows, 4-byte ones for the ragged ends (the
// per-head rows of the tables are not 16-byte aligned) — and returns where its element 0 lands (area + src's offset
// in its 16 bytes, so that the 16-byte pieces line up). Every copy of the loop is in flight at once: a loop of plain
// loads and shared stores waited one round of global-memory latency per iteration (the cache kernel, H200, B = 1,
// from the kernel timeline: 15.9 us; 16.8 with 4-byte copies only; 22.0 before). The caller commits, waits and
// synchronises before reading.
__device__ __forceinline__ const float* table_async(float* area, const float* src, int n) {
  const int shift = static_cast<int>((reinterpret_cast<uintptr_t>(src) >> 2) & 3);
  float* table = area + shift;
  const int lead = min(n, (4 - shift) & 3), mid = (n - lead) / 4, items = n - 3 * mid;
  for (int i = threadIdx.x; i < items; i += blockDim.x) {
    const bool chunk = i >= lead && i < lead + mid;
    const int e = i < lead ? i : (chunk ? lead + 4 * (i - lead) : i + 3 * mid);
    if (chunk)
      cp_async_16(smem_u32(table + e), src + e, true);
    else
      cp_async_4(smem_u32(table + e), src + e);
  }
  return table;
}

// This head's rows of the bias tables (modes 1 and 2) into shared memory from `area` on (table_area_floats(n1),
// then twice table_area_floats(n2) floats); t1, tx, ty: where they land. The copies are asynchronous (table_async).
struct HeadTables {
  const float *t1, *tx, *ty;
};
__device__ __forceinline__ HeadTables load_head_tables(const FlashParams& p, int h, float* area) {
  HeadTables t{area, area, area};
  float* ax = area + table_area_floats(p.n1);
  float* ay = ax + table_area_floats(p.n2);
  if (p.bias_mode == 1 || p.bias_mode == 2) t.t1 = table_async(area, p.bias1d + int64_t{h} * p.n1, p.n1);
  if (p.bias_mode == 2) {
    t.tx = table_async(ax, p.bias_x + int64_t{h} * p.n2, p.n2);
    t.ty = table_async(ay, p.bias_y + int64_t{h} * p.n2, p.n2);
  }
  return t;
}

// Table offsets of this thread's two query rows (g and g + 8 of 16-row strip `strip` of the tile at q0): max_dist −
// position, so that key position + offset = distance + max_dist = the table index.
__device__ __forceinline__ void query_table_offsets(const FlashParams& p, int seq0, int L, int q0, int strip, int g,
                                                    int (&q1)[2], int (&qx)[2], int (&qy)[2]) {
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int i = q0 + 16 * strip + g + 8 * rr;
    int pr = 0, xr = 0, yr = 0;
    if (i < L) {
      const int row = seq0 + i;
      if (p.bias_mode == 1 || p.bias_mode == 2) pr = p.pos1d[row];
      if (p.bias_mode == 2) {
        xr = p.pos_x[row];
        yr = p.pos_y[row];
      }
    }
    q1[rr] = p.max_dist_1d - pr;
    qx[rr] = p.max_dist_2d - xr;
    qy[rr] = p.max_dist_2d - yr;
  }
}

// Masked or out-of-range keys (validity bits from init_scores_with_bias) → −∞. The scale log2(e)/√d is applied
// later, fused into the exponent's FMA (see the online softmax).
template <int BN>
__device__ __forceinline__ void mask_scores(float (&s)[BN / 8][4], uint32_t valid) {
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const bool ok = (valid >> (2 * j + (e & 1))) & 1u;
      s[j][e] = ok ? s[j][e] : -INFINITY;
    }
}

// kVariant: see Variant (each its own instantiation and shape, so no path's registers count against another).
template <class T, int D, int kVariant>
__global__ void __launch_bounds__(KernelShape<D, kVariant>::kThreads, KernelShape<D, kVariant>::kMinCtas)
    flash_attention_kernel(const FlashParams p) {
  using Shape = KernelShape<D, kVariant>;
  constexpr int BN = Shape::kBlockN;
  constexpr int NT = Shape::kThreads;
  constexpr int MS = Shape::kStrips;  // 16-row strips per warp
  constexpr bool cached = Shape::kUsesCache;
  constexpr int kStride = D + 8;    // shared row stride in elements (16-byte multiple: D % 8 == 0)
  constexpr int kChunks = D / 8;    // 16-byte chunks per row
  static_assert(D % 16 == 0 && BN % 16 == 0, "mma tiling");
  static_assert((BN * kChunks) % NT == 0 && (kBlockM * kChunks) % NT == 0 && (16 * kChunks) % 32 == 0,
                "copy loops have a fixed trip count");
  static_assert(NT % kChunks == 0, "a thread copies the same chunk column of every row it copies");
  static_assert(NT >= BN, "one thread per key row loads the metadata");

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;  // mma quad row / thread-in-quad
  const int h = blockIdx.y, b = blockIdx.z;
  const int seq0 = p.seq_begin[b];
  const int L = p.seq_begin[b + 1] - seq0;
  const int q0 = blockIdx.x * kBlockM;
  // Whole CTA: past this sequence's end, or past the queries anything reads (no barrier reached yet).
  if (q0 >= L || (p.query_rows && q0 >= p.query_rows[b])) return;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + kBlockM * kStride;
  T* sV = sK + kKvStages * BN * kStride;
  int4* sMeta = reinterpret_cast<int4*>(sV + kKvStages * BN * kStride);
  constexpr int kTileU4 = BN / kCacheKeys * kCacheBlockU4;  // mode 3: one key tile's cache blocks
  uint4* sBias = reinterpret_cast<uint4*>(sMeta + kMetaStages * BN);  // mode 3: [kKvStages][kTileU4]
  float* sTables = reinterpret_cast<float*>(sBias + (cached ? kKvStages * kTileU4 : 0));

  const int H = p.hidden;
  const int64_t ld = 3 * int64_t{H};
  const T* gQ = head_q<T>(p, seq0, h, D);
  const T* gK = gQ + H, *gV = gQ + 2 * int64_t{H};
  const int num_tiles = (L + BN - 1) / BN;
  const uint4* gBias =
      cached ? p.bias_cache + cache_block(b, h, gridDim.y, blockIdx.x, 0, p.q_tiles, p.k_blocks) : nullptr;

  // K/V tile `tile` into buffer `buf`; a key row is copied only when its metadata (stage `ms`) says valid (which
  // implies in range), else zero-filled. Row 0 of the sequence is a safe dummy source address for zero-fills.
  // Addresses: the tile's first row (one 64-bit product per tile) plus this thread's 32-bit offset within the tile
  // (rows r0 + it · kRowsPerIt; BN · 3H < 2³¹ elements by the launch check).
  constexpr int kRowsPerIt = NT / kChunks;
  const int r0 = tid / kChunks, c0 = tid % kChunks;
  const int kv_off0 = r0 * static_cast<int>(ld) + c0 * 8;
  const int kv_step = kRowsPerIt * static_cast<int>(ld);
  auto load_kv = [&](int tile, int buf, int ms) {
    const int4* meta = sMeta + ms * BN;
    const uint32_t k_dst = smem_u32(sK + buf * BN * kStride + r0 * kStride + c0 * 8);
    const uint32_t v_dst = smem_u32(sV + buf * BN * kStride + r0 * kStride + c0 * 8);
    const int64_t tile_off = int64_t{tile} * BN * ld;
    const T* k_tile = gK + tile_off;
    const T* v_tile = gV + tile_off;
#pragma unroll
    for (int it = 0; it < BN * kChunks / NT; ++it) {
      const bool ok = meta[r0 + it * kRowsPerIt].w != 0;
      const int off = kv_off0 + it * kv_step;
      const uint32_t dst = sizeof(T) * it * kRowsPerIt * kStride;
      cp_async_16(k_dst + dst, ok ? k_tile + off : gK, ok);
      cp_async_16(v_dst + dst, ok ? v_tile + off : gV, ok);
    }
    if constexpr (cached) {
      {  // the tile's blocks, contiguous in the cache and in shared memory
        const uint4* src = gBias + int64_t{tile} * kTileU4;
#pragma unroll
        for (int v = 0; v < kTileU4 / NT; ++v)
          cp_async_16(smem_u32(sBias + buf * kTileU4 + v * NT + tid), src + v * NT + tid, true);
      }
    }
  };

  // ---- prologue: Q tile, metadata of key tiles 0 and 1, this head's bias rows, then K/V tile 0 ----
  {
    const int nq = min(kBlockM, L - q0);
#pragma unroll
    for (int it = 0; it < kBlockM * kChunks / NT; ++it) {
      const int i = tid + it * NT, r = i / kChunks, c = i % kChunks;
      const bool in = r < nq;
      cp_async_16(smem_u32(sQ + r * kStride + c * 8), gQ + int64_t{in ? q0 + r : q0} * ld + c * 8, in);
    }
    cp_async_commit();
  }
  if (tid < BN) {
    sMeta[tid] = load_key_meta(p, seq0, L, tid);
    if (num_tiles > 1) sMeta[BN + tid] = load_key_meta(p, seq0, L, BN + tid);
  }
  const HeadTables tab = load_head_tables(p, h, sTables);
  const float *sTab1 = tab.t1, *sTabX = tab.tx, *sTabY = tab.ty;
  int q1[MS][2], qx[MS][2], qy[MS][2];
#pragma unroll
  for (int mi = 0; mi < MS; ++mi) query_table_offsets(p, seq0, L, q0, warp * MS + mi, g, q1[mi], qx[mi], qy[mi]);
  __syncthreads();  // metadata of tile 0 visible to every loader thread
  load_kv(0, 0, 0);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();

  float o[MS][D / 8][4];
#pragma unroll
  for (int mi = 0; mi < MS; ++mi)
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[mi][n][0] = o[mi][n][1] = o[mi][n][2] = o[mi][n][3] = 0.f;
  float row_max[MS][2], row_sum[MS][2];  // of the unscaled scores; this thread's partial sums (quad-reduced at the end)
#pragma unroll
  for (int mi = 0; mi < MS; ++mi) {
    row_max[mi][0] = row_max[mi][1] = -INFINITY;
    row_sum[mi][0] = row_sum[mi][1] = 0.f;
  }
  const int hi1 = 2 * p.max_dist_1d, hi2 = 2 * p.max_dist_2d;

  int ms = 0;  // metadata stage of tile t
  for (int t = 0; t < num_tiles; ++t) {
    const int kv_buf = t & 1;
    const int ms1 = ms == kMetaStages - 1 ? 0 : ms + 1;    // stage of tile t+1
    const int ms2 = ms1 == kMetaStages - 1 ? 0 : ms1 + 1;  // stage of tile t+2
    if (t + 1 < num_tiles) {
      load_kv(t + 1, kv_buf ^ 1, ms1);
      cp_async_commit();
    }
    const bool prefetch = t + 2 < num_tiles && tid < BN;
    int4 next_meta = make_int4(0, 0, 0, 0);
    if (prefetch) next_meta = load_key_meta(p, seq0, L, (t + 2) * BN + tid);

    // S = bias (see init_scores_with_bias), then S += Q · Kᵀ. ldmatrix.x4 on K rows: keys 0-7 × dims 0-7,
    // keys 0-7 × dims 8-15 (b0b1, b2b3 of n-tile 2np), keys 8-15 × dims 0-7, keys 8-15 × dims 8-15 (n-tile 2np + 1).
    // Each K fragment feeds the mmas of all MS strips of the warp.
    const int4* meta = sMeta + ms * BN;
    float s[MS][BN / 8][4];
    uint32_t valid = 0;  // per key: the same for every strip
#pragma unroll
    for (int mi = 0; mi < MS; ++mi) {
      if constexpr (cached)
        init_scores_cached<BN>(s[mi], sBias + kv_buf * kTileU4, warp * MS + mi, lane);
      else if (p.bias_mode == 2)
        valid = init_scores_with_bias<2, BN>(s[mi], meta, q1[mi], qx[mi], qy[mi], sTab1, sTabX, sTabY, hi1, hi2, tq);
      else if (p.bias_mode == 1)
        valid = init_scores_with_bias<1, BN>(s[mi], meta, q1[mi], qx[mi], qy[mi], sTab1, sTabX, sTabY, hi1, hi2, tq);
      else
        valid = init_scores_with_bias<0, BN>(s[mi], meta, q1[mi], qx[mi], qy[mi], sTab1, sTabX, sTabY, hi1, hi2, tq);
    }
    const T* kb = sK + kv_buf * BN * kStride;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      // Q fragments (A operand) of head dims [16kk, 16kk + 16), re-read from sQ every tile rather than held in
      // registers across the loop: fewer registers at the P·V peak for one extra ldmatrix per strip and k-step.
      // ldmatrix.x4 matrices: strip rows 0-7 / 8-15 × dims 0-7 / 8-15, in a0a1, a2a3, a4a5, a6a7 order.
      uint32_t qf[MS][4];
#pragma unroll
      for (int mi = 0; mi < MS; ++mi)
        ldmatrix_x4(qf[mi], smem_u32(sQ + (16 * (warp * MS + mi) + (lane & 7) + ((lane >> 3) & 1) * 8) * kStride +
                                     kk * 16 + (lane >> 4) * 8));
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        uint32_t r[4];
        ldmatrix_x4(r, smem_u32(kb + (np * 16 + (lane & 7) + (lane >> 4) * 8) * kStride + kk * 16 +
                                ((lane >> 3) & 1) * 8));
#pragma unroll
        for (int mi = 0; mi < MS; ++mi) {
          mma_16816<T>(s[mi][2 * np], qf[mi], r[0], r[1]);
          mma_16816<T>(s[mi][2 * np + 1], qf[mi], r[2], r[3]);
        }
      }
    }
    if constexpr (!cached) {
#pragma unroll
      for (int mi = 0; mi < MS; ++mi) mask_scores<BN>(s[mi], valid);
    }

    // Online softmax (FP32; see online_softmax_step). Rescale O only when some row of the warp has a new max (later
    // key tiles rarely move it).
    float corr[MS][2];
    bool rescale = false;
#pragma unroll
    for (int mi = 0; mi < MS; ++mi)
      rescale |= online_softmax_step(s[mi], row_max[mi], row_sum[mi], corr[mi], p.scale_log2);
    if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
      for (int mi = 0; mi < MS; ++mi) rescale_rows(o[mi], corr[mi]);
    }

    // O += P · V. P's A fragment for keys [16kk, 16kk + 16) is the S accumulator of n-tiles 2kk and 2kk + 1.
    // ldmatrix.x4.trans on V rows: keys 0-7 / 8-15 × dims 0-7 (b0b1, b2b3 of dim-tile 2dp), then × dims 8-15.
    // Each V fragment feeds the mmas of all MS strips.
    const T* vb = sV + kv_buf * BN * kStride;
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[MS][4];
#pragma unroll
      for (int mi = 0; mi < MS; ++mi) p_fragment<T>(s[mi], kk, a[mi]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t r[4];
        ldmatrix_x4_trans(r, smem_u32(vb + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kStride + dp * 16 +
                                      (lane >> 4) * 8));
#pragma unroll
        for (int mi = 0; mi < MS; ++mi) {
          mma_16816<T>(o[mi][2 * dp], a[mi], r[0], r[1]);
          mma_16816<T>(o[mi][2 * dp + 1], a[mi], r[2], r[3]);
        }
      }
    }

    if (prefetch) sMeta[ms2 * BN + tid] = next_meta;  // stage ms2 was last read in iteration t − 1
    cp_async_wait_all();
    __syncthreads();
    ms = ms1;
  }

  // ---- epilogue: normalise, round, stage in the warp's own sQ rows, 16-byte stores of the rows inside the sequence
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int mi = 0; mi < MS; ++mi) {
    const int strip = warp * MS + mi;
    float inv[2];
    inverse_row_sums(row_sum[mi], inv);
    T* sO = sQ + 16 * strip * kStride;
    __syncwarp();
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
#pragma unroll
      for (int rr = 0; rr < 2; ++rr)
        *reinterpret_cast<uint32_t*>(sO + (g + 8 * rr) * kStride + n * 8 + 2 * tq) =
            pack2<T>(o[mi][n][2 * rr] * inv[rr], o[mi][n][2 * rr + 1] * inv[rr]);
    }
    __syncwarp();
    const int row0 = q0 + 16 * strip;
#pragma unroll
    for (int it = 0; it < 16 * kChunks / 32; ++it) {
      const int i = lane + 32 * it, r = i / kChunks, c = i % kChunks;
      if (row0 + r < L)
        *reinterpret_cast<uint4*>(out + int64_t{seq0 + row0 + r} * H + int64_t{h} * D + c * 8) =
            *reinterpret_cast<const uint4*>(sO + r * kStride + c * 8);
    }
  }
}

// The bias cache (mode 3): CTA (query tile, head, sequence) writes the blocks of its query tile against every key tile
// of its sequence, with exactly the lookups and summation order of init_scores_with_bias<2> (FP32), rounded once to
// F16 (saturating at ±65504; NaN stays NaN), with −∞ for masked and out-of-range keys (so the attention kernel needs
// no validity bits on this path). Blocks of tiles past a sequence's end are never written nor read.
// Four warps, warp w computing strip w's fragments (the layout of cache_piece), one key block (kCacheKeys) at a time.
// The metadata of all the CTA's keys is loaded into shared memory at the start, with the head's tables, behind one
// barrier: the walk over the key blocks then has no global load and no barrier of its own (it loaded one block's
// metadata per step behind two barriers; H200, B = 1, from the kernel timeline: 22.0 vs 23.6 us, the forward the same
// within noise — the kernel runs beside the embeddings; bench/results/2026-12-03-h200-kernel-timeline.md).
constexpr int kCacheThreads = 128;
// Bytes of the cache kernel's dynamic shared memory before the key metadata: the tables, rounded up to 16.
__host__ __device__ constexpr size_t cache_meta_offset(int n1, int n2) {
  return sizeof(float) * (size_t(table_area_floats(n1)) + 2 * size_t(table_area_floats(n2)));
}
// Key blocks per CTA: a query tile's num_blocks key blocks over `groups` CTAs.
__host__ __device__ constexpr int cache_blocks_per_group(int num_blocks, int groups) {
  return (num_blocks + groups - 1) / groups;
}
__global__ void __launch_bounds__(kCacheThreads) bias_cache_kernel(const FlashParams p) {
  constexpr int BN = kCacheKeys;
  static_assert(kCacheThreads == 2 * kBlockM && kCacheThreads >= BN, "one strip per warp; one thread per key row");
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;
  const int h = blockIdx.y, b = blockIdx.z;
  const int seq0 = p.seq_begin[b];
  const int L = p.seq_begin[b + 1] - seq0;
  const int groups = p.cache_groups > 1 ? p.cache_groups : 1;
  const int q_tile = static_cast<int>(blockIdx.x) / groups, group = static_cast<int>(blockIdx.x) % groups;
  const int q0 = q_tile * kBlockM;
  if (q0 >= L) return;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  int4* sMeta = reinterpret_cast<int4*>(smem_raw + cache_meta_offset(p.n1, p.n2));
  const int num_blocks = 2 * ((L + 63) / 64);  // whole 64-key tiles: the last block may lie entirely past L (−∞)
  const int per_group = cache_blocks_per_group(num_blocks, groups);
  const int kb0 = group * per_group, kb_end = min(num_blocks, kb0 + per_group);
  const HeadTables tab = load_head_tables(p, h, reinterpret_cast<float*>(smem_raw));
  const float *sTab1 = tab.t1, *sTabX = tab.tx, *sTabY = tab.ty;
  // The keys' metadata, kMetaBatch loads per thread in flight before their stores (B = 8: six rounds of latency
  // one after the other when loaded and stored key by key).
  constexpr int kMetaBatch = 4;
  const int n_meta = (kb_end - kb0) * BN;
  for (int i0 = 0; i0 < n_meta; i0 += kMetaBatch * kCacheThreads) {
    int4 m[kMetaBatch];
#pragma unroll
    for (int u = 0; u < kMetaBatch; ++u) {
      const int i = i0 + u * kCacheThreads + tid;
      m[u] = i < n_meta ? load_key_meta(p, seq0, L, kb0 * BN + i) : make_int4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kMetaBatch; ++u)
      if (const int i = i0 + u * kCacheThreads + tid; i < n_meta) sMeta[i] = m[u];
  }
  int q1[2], qx[2], qy[2];
  query_table_offsets(p, seq0, L, q0, warp, g, q1, qx, qy);
  const int hi1 = 2 * p.max_dist_1d, hi2 = 2 * p.max_dist_2d;
  uint4* out =
      const_cast<uint4*>(p.bias_cache) + cache_block(b, h, gridDim.y, q_tile, 0, p.q_tiles, p.k_blocks);
  auto to_half2 = [](float lo, float hi) {  // −∞ is the mask and stays −∞; NaN stays NaN
    auto sat = [](float x) {
      return x > 65504.f ? 65504.f : (x < -65504.f && x != -INFINITY ? -65504.f : x);
    };
    return pack2<__half>(sat(lo), sat(hi));
  };
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();  // the tables and the metadata are in shared memory
  for (int kb = kb0; kb < kb_end; ++kb) {
    float s[BN / 8][4];
    mask_scores<BN>(s, init_scores_with_bias<2, BN>(s, sMeta + (kb - kb0) * BN, q1, qx, qy, sTab1, sTabX, sTabY, hi1,
                                                     hi2, tq));
#pragma unroll
    for (int v = 0; v < BN / 16; ++v)
      out[int64_t{kb} * kCacheBlockU4 + cache_piece(warp, v, lane)] =
          make_uint4(to_half2(s[2 * v][0], s[2 * v][1]), to_half2(s[2 * v][2], s[2 * v][3]),
                     to_half2(s[2 * v + 1][0], s[2 * v + 1][1]), to_half2(s[2 * v + 1][2], s[2 * v + 1][3]));
  }
}

// ---- host side ---------------------------------------------------------------------------------------------------

// The table mode of `a` (0, 1, 2), ignoring the cache.
int table_mode_of(const AttentionArgs& a) {
  if (!a.bias1d.defined()) return 0;  // the CPU twin adds the 2D bias only together with the 1D bias
  return a.bias_x.defined() ? 2 : 1;
}

int bias_mode_of(const AttentionArgs& a) {
  const int mode = table_mode_of(a);
  return mode == 2 && a.bias_cache.defined() ? 3 : mode;
}

// The cache's geometry: ⌈L / 64⌉ query tiles, and per query tile 2 · ⌈L / 64⌉ key blocks of kCacheKeys (whole 64-key
// tiles of kCached4W; the last block may lie entirely past L).
int64_t cache_q_tiles(int64_t max_seq_len) { return ceil_div(max_seq_len, kBlockM); }
int64_t cache_k_blocks(int64_t max_seq_len) { return 2 * int64_t{ceil_div(max_seq_len, 64)}; }
void set_cache_strides(FlashParams& p, int64_t max_seq_len) {
  p.q_tiles = static_cast<int>(cache_q_tiles(max_seq_len));
  p.k_blocks = static_cast<int>(cache_k_blocks(max_seq_len));
}
// CTAs of a grid of 64-row query tiles × heads × sequences (the attention and cache kernels' unsplit grids).
int64_t tile_ctas(const AttentionArgs& a) { return cache_q_tiles(a.max_seq_len) * a.num_heads * a.num_seqs; }

// Which cached shape runs (see Variant): the wgmma kernel wherever it is available (compute capability 9.0, d = 64;
// H100, fp16, B = 32, T = 512 + 197: 0.229 ms per layer-call vs 0.289 for kCached2W, and faster at every batch:
// bench/results/2026-11-25-h100-wgmma.md); elsewhere kCached2W once the grid (64-row query tiles × heads × sequences)
// covers about three full waves of the GPU at its five CTAs per SM, kCached4W below (B ≤ 8 at L = 709 on an H100).
// LAYOUTRT_FLASH_SHAPE=4w|2w|wg forces one (tests, A/B timing; read on every call).
int cache_variant(const AttentionArgs& a) {
  if (const char* env = std::getenv("LAYOUTRT_FLASH_SHAPE")) {
    if (std::strcmp(env, "4w") == 0) return kCached4W;
    if (std::strcmp(env, "2w") == 0) return kCached2W;
    if (std::strcmp(env, "wg") == 0 && flash_wgmma_available(a.head_dim)) return kCachedWG;
  }
  if (flash_wgmma_available(a.head_dim)) return kCachedWG;
  const int64_t sms = device_attribute<cudaDevAttrMultiProcessorCount>();
  return sms > 0 && tile_ctas(a) >= 3 * 5 * sms ? kCached2W : kCached4W;
}

// The kernel variant flash_attention(a) launches.
int variant_of(const AttentionArgs& a) { return bias_mode_of(a) == 3 ? cache_variant(a) : kLookup; }

// Warpgroups per CTA of the wgmma kernel (split-KV inside the CTA): 2 when the grid gives at most two CTAs per SM
// (B = 1 at L = 709: 144 CTAs on 132 SMs), where one warpgroup per SM cannot keep its tensor cores busy; 1 otherwise
// (four one-warpgroup CTAs per SM). LAYOUTRT_FLASH_SPLIT=1|2 forces one (tests, A/B timing; read on every call).
int wg_split(const AttentionArgs& a) {
  if (const char* env = std::getenv("LAYOUTRT_FLASH_SPLIT")) {
    if (std::strcmp(env, "1") == 0) return 1;
    if (std::strcmp(env, "2") == 0) return 2;
  }
  const int64_t sms = device_attribute<cudaDevAttrMultiProcessorCount>();
  return sms > 0 && tile_ctas(a) <= 2 * sms ? 2 : 1;
}

// The tail split's area of the scratch, right after the bias cache of a.num_seqs sequences: one arrival counter per
// (sequence, head) pair (256-byte aligned), then a partial per (pair, key tile). Null pointers when a.scratch does not
// hold it.
struct TailArea {
  unsigned* count = nullptr;
  float* ws = nullptr;
};
size_t tail_count_bytes(int64_t pairs) { return static_cast<size_t>(ceil_div(pairs * 4, 256) * 256); }
TailArea tail_area(const AttentionArgs& a) {
  TailArea t;
  const size_t cache = flash_bias_cache_bytes(a.num_seqs, a.max_seq_len, a.num_heads, a.head_dim);
  const size_t need = flash_tail_bytes(a.num_seqs, a.max_seq_len, a.num_heads);
  if (cache == 0 || need == 0 || !a.scratch.defined() || a.scratch.nbytes() < cache + need) return t;
  char* base = static_cast<char*>(a.scratch.data) + cache;
  t.count = reinterpret_cast<unsigned*>(base);
  t.ws = reinterpret_cast<float*>(base + tail_count_bytes(int64_t{a.num_seqs} * a.num_heads));
  return t;
}

// Key tiles per tail warpgroup: LAYOUTRT_FLASH_TAIL_TILES=n (A/B timing), default 1.
int tail_tiles() {
  const char* env = std::getenv("LAYOUTRT_FLASH_TAIL_TILES");
  return env ? std::clamp(std::atoi(env), 1, kTailMaxKeyTiles) : 1;
}

// The tail split of the two-warpgroup wgmma kernel for `a` (units = 0: none; see flash_attention_wgmma.cu): unit CTAs
// per (sequence, head), key tiles per unit warpgroup, the workspace.
// With a partial last query tile (max_seq_len not a multiple of 64) the grid has one CTA per pair more than its full
// tiles: at B = 1, L = 709, 12 heads, 132 full-tile CTAs + 12 on a 132-SM GPU, so 12 SMs run two CTAs and the kernel
// takes ~1.4x as long as with the 132 alone (H200, ncu: 15.7 us at L = 709 vs 11.2 at L = 704). The split gives each
// pair's partial tile to ⌈key tiles / 2⌉ extra CTAs, one key tile per warpgroup, merged by the last to finish: they
// run beside the full tiles (two CTAs per SM) instead of after. Chosen where the full tiles fit one CTA per SM and
// the units a second, and only where the unsplit grid doubles up on some SM (flash_tail.h); LAYOUTRT_FLASH_TAIL=0
// turns it off, =1 forces it wherever the kernel runs two warpgroups (tests). Needs the tail area (tail_area) and no
// concurrent lanes (one set of counters).
// The inline form (TailPlan::inline_strips; flash_attention_wgmma.cu, FlashParams::tail_inline) where it applies
// (flash_tail.h flash_inline_tail_fits: B = 1 at T = 512, among others). LAYOUTRT_FLASH_TAIL_INLINE=0 keeps the unit
// CTAs (A/B timing); LAYOUTRT_FLASH_TAIL=inline forces the inline form wherever it applies (tests), the units
// elsewhere.
struct TailPlan {
  int units = 0, tiles = 1;
  bool inline_strips = false;
  TailArea area;
};
TailPlan tail_plan(const AttentionArgs& a, int split, bool allowed) {
  TailPlan t;
  if (split != 2 || !allowed || !a.bias_cache.defined()) return t;
  const char* env = std::getenv("LAYOUTRT_FLASH_TAIL");
  if (env && std::strcmp(env, "0") == 0) return t;
  if (ceil_div(a.max_seq_len, int64_t{64}) > kTailMaxKeyTiles) return t;  // the fold's shared-memory factors
  const int tiles = tail_tiles();
  const int64_t units =
      env && (std::strcmp(env, "1") == 0 || std::strcmp(env, "inline") == 0)
          ? flash_tail_units_for(a.max_seq_len, tiles)
          : flash_tail_units_rule(a.max_seq_len, int64_t{a.num_heads} * a.num_seqs,
                                  device_attribute<cudaDevAttrMultiProcessorCount>(), tiles);
  const TailArea area = tail_area(a);
  if (units == 0 || area.count == nullptr) return t;
  const char* inl = std::getenv("LAYOUTRT_FLASH_TAIL_INLINE");
  const bool inline_off = (inl && std::strcmp(inl, "0") == 0) || (env && std::strcmp(env, "1") == 0);
  if (!inline_off && flash_inline_tail_fits(a.num_seqs, a.query_rows != nullptr, a.max_seq_len)) {
    t.inline_strips = true;
    t.area = area;
    return t;
  }
  t.units = static_cast<int>(units);
  t.tiles = tiles;
  t.area = area;
  return t;
}

template <int D>
size_t tile_bytes_of(int variant) {
  switch (variant) {
    case kCached4W: return tile_smem_bytes<D, kCached4W>();
    case kCached2W: return tile_smem_bytes<D, kCached2W>();
    default: return tile_smem_bytes<D, kLookup>();
  }
}

// Dynamic shared memory of one CTA of `variant` for `a`: the Q/K/V/metadata tiles, plus the head's tables (modes 1,
// 2) or the double-buffered bias blocks of a key tile (mode 3).
size_t smem_bytes(const AttentionArgs& a, int variant) {
  if (variant == kCachedWG) return sm90_flash_smem_bytes(wg_split(a));
  size_t tiles = 0;
  switch (a.head_dim) {
    case 32: tiles = tile_bytes_of<32>(variant); break;
    case 64: tiles = tile_bytes_of<64>(variant); break;
    case 128: tiles = tile_smem_bytes<128, kLookup>(); break;
    default: return 0;
  }
  const int mode = bias_mode_of(a);
  if (mode == 3) return tiles + size_t{kKvStages} * (variant == kCached2W ? 1 : 2) * kCacheBlockU4 * sizeof(uint4);
  size_t n = 0;
  if (mode >= 1) n += size_t(table_area_floats(2 * a.max_dist_1d + 1));
  if (mode == 2) n += 2 * size_t(table_area_floats(2 * a.max_dist_2d + 1));
  return tiles + n * sizeof(float);
}

// The current device's opt-in shared memory per block (0 when it cannot be queried).
int max_smem_optin() { return device_attribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>(); }

bool f32_table_ok(const TensorView& t, int heads, int max_dist) {
  return t.dtype == DType::kF32 && t.device == Device::kCUDA && t.rank == 2 && t.dim(0) == heads &&
         t.dim(1) == 2 * int64_t{max_dist} + 1 && max_dist >= 0;
}

// What the layers share (shapes, sequence metadata, bias tables): checked alone by flash_prepare_bias, which runs
// before any layer's q/k/v exist.
const char* metadata_reason(const AttentionArgs& a) {
  if (a.head_dim != 32 && a.head_dim != 64 && a.head_dim != 128) return "head_dim is not 32, 64 or 128";
  if (a.num_heads < 1 || a.num_heads > 65535) return "num_heads out of range";
  if (a.num_seqs < 0 || a.num_seqs > 65535) return "num_seqs out of range (grid z)";
  if (a.max_seq_len < 0 || a.max_seq_len > (int64_t{1} << 30)) return "max_seq_len out of range";
  if (a.num_seqs > 0 && (a.seq_begin == nullptr || a.key_valid == nullptr)) return "seq_begin/key_valid missing";
  const int mode = table_mode_of(a);
  if (mode >= 1) {
    if (!f32_table_ok(a.bias1d, a.num_heads, a.max_dist_1d)) return "bias1d is not F32 [heads, 2*max_dist_1d+1]";
    if (a.pos1d == nullptr) return "pos1d missing";
  }
  if (mode == 2) {
    if (!a.bias_y.defined()) return "bias_x without bias_y";
    if (!f32_table_ok(a.bias_x, a.num_heads, a.max_dist_2d) || !f32_table_ok(a.bias_y, a.num_heads, a.max_dist_2d))
      return "bias_x/bias_y are not F32 [heads, 2*max_dist_2d+1]";
    if (a.pos_x == nullptr || a.pos_y == nullptr) return "pos_x/pos_y missing";
  }
  return nullptr;
}

// nullptr when supported, else why not.
const char* unsupported_reason(const AttentionArgs& a) {
  const DType t = a.qkv.dtype;
  if (t != DType::kF16 && t != DType::kBF16) return "qkv dtype is not F16/BF16";
  if (a.out.dtype != t) return "out dtype differs from qkv dtype";
  if (!a.qkv.defined() || !a.out.defined()) return "qkv/out undefined";
  if (a.qkv.device != Device::kCUDA || a.out.device != Device::kCUDA) return "qkv/out not on the device";
  if (!aligned16(a.qkv.data) || !aligned16(a.out.data)) return "qkv/out not 16-byte aligned";
  const int64_t H = int64_t{a.num_heads} * a.head_dim;
  if (a.qkv.rank == 2 && a.qkv.dim(1) != 3 * H) return "qkv is not [rows, 3H]";
  if (a.out.rank == 2 && a.out.dim(1) != H) return "out is not [rows, H]";
  if (3 * H * 64 >= (int64_t{1} << 31)) return "hidden size too large for 32-bit tile offsets";
  if (const char* why = metadata_reason(a)) return why;
  const int mode = table_mode_of(a);
  if (a.bias_cache.defined()) {
    if (mode != 2) return "bias_cache without the 1D and 2D tables";
    if (a.head_dim > 64) return "bias_cache with head_dim > 64";
    if (a.bias_cache.dtype != DType::kF16 || a.bias_cache.device != Device::kCUDA || !aligned16(a.bias_cache.data))
      return "bias_cache is not an aligned F16 device buffer";
    if (a.bias_cache.nbytes() < flash_bias_cache_bytes(a.num_seqs, a.max_seq_len, a.num_heads, a.head_dim))
      return "bias_cache smaller than this batch's blocks";
  }
  if (smem_bytes(a, variant_of(a)) > static_cast<size_t>(max_smem_optin()))
    return "shared memory (tiles + bias tables) exceeds the device";
  return nullptr;
}

// The sequence metadata and the bias tables of table mode `mode` (0: none, 1: 1D, 2: 1D + 2D) as kernel parameters.
FlashParams metadata_params(const AttentionArgs& a, int mode) {
  FlashParams p{};
  p.seq_begin = a.seq_begin;
  p.query_rows = a.query_rows;
  p.pos1d = a.pos1d;
  p.pos_x = a.pos_x;
  p.pos_y = a.pos_y;
  p.key_valid = a.key_valid;
  p.bias_mode = mode;
  p.bias1d = mode >= 1 ? a.bias1d.as<float>() : nullptr;
  p.bias_x = mode == 2 ? a.bias_x.as<float>() : nullptr;
  p.bias_y = mode == 2 ? a.bias_y.as<float>() : nullptr;
  p.n1 = mode >= 1 ? 2 * a.max_dist_1d + 1 : 0;
  p.n2 = mode == 2 ? 2 * a.max_dist_2d + 1 : 0;
  p.max_dist_1d = mode >= 1 ? a.max_dist_1d : 0;
  p.max_dist_2d = mode == 2 ? a.max_dist_2d : 0;
  return p;
}

// The attention kernels' grid: 64-row query tiles × heads × sequences.
dim3 tile_grid(const AttentionArgs& a) {
  return dim3(static_cast<unsigned>(ceil_div(a.max_seq_len, kBlockM)), static_cast<unsigned>(a.num_heads),
              static_cast<unsigned>(a.num_seqs));
}

template <class T, int D, int kVariant>
void launch_variant(const AttentionArgs& a, const FlashParams& p, cudaStream_t stream) {
  auto kernel = flash_attention_kernel<T, D, kVariant>;
  const size_t smem = smem_bytes(a, kVariant);
  if (smem > 48 * 1024)
    LRT_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<tile_grid(a), KernelShape<D, kVariant>::kThreads, smem, stream>>>(p);
  LRT_CUDA_LAUNCHED("flash_attention_kernel");
}

template <class T, int D>
void launch(const AttentionArgs& a, cudaStream_t stream, bool tail_ok) {
  FlashParams p = metadata_params(a, table_mode_of(a));
  p.qkv = a.qkv.data;
  p.out = a.out.data;
  p.bias_mode = bias_mode_of(a);
  p.hidden = a.num_heads * D;
  p.scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(D)));
  if (p.bias_mode == 3) {
    p.bias_cache = static_cast<const uint4*>(a.bias_cache.data);
    set_cache_strides(p, a.max_seq_len);
    p.n1 = p.n2 = 0;  // no tables in shared memory
  }
  // Cached variants only for d ≤ 64 (unsupported_reason); D = 128 never instantiates them.
  switch (variant_of(a)) {
    case kCachedWG: {
      const int split = wg_split(a);
      dim3 grid = tile_grid(a);
      const TailPlan t = tail_plan(a, split, tail_ok);
      if (t.inline_strips || t.units > 0) {  // either form: the workspace and the pairs' shape
        p.heads = a.num_heads;
        p.seqs = static_cast<int>(a.num_seqs);
        p.tail_count = t.area.count;
        p.tail_ws = t.area.ws;
      }
      if (t.inline_strips) {
        p.tail_inline = 1;
        grid.x = static_cast<unsigned>(a.max_seq_len / kBlockM);  // the full tiles; their CTAs run the partial one
      } else if (t.units > 0) {
        p.tail_units = t.units;
        p.tail_q_main = static_cast<int>(a.max_seq_len / kBlockM);
        p.tail_tiles = t.tiles;
        grid = dim3(static_cast<unsigned>((p.tail_q_main + int64_t{t.units}) * a.num_heads * a.num_seqs));
      }
      return sm90_flash_attention(p, grid, std::is_same_v<T, __nv_bfloat16>, split, stream);
    }
    case kCached2W: return launch_variant<T, D, D <= 64 ? kCached2W : kLookup>(a, p, stream);
    case kCached4W: return launch_variant<T, D, D <= 64 ? kCached4W : kLookup>(a, p, stream);
    default: return launch_variant<T, D, kLookup>(a, p, stream);
  }
}

template <class T>
void launch_dim(const AttentionArgs& a, cudaStream_t stream, bool tail_ok) {
  switch (a.head_dim) {
    case 32: launch<T, 32>(a, stream, tail_ok); break;
    case 64: launch<T, 64>(a, stream, tail_ok); break;
    case 128: launch<T, 128>(a, stream, tail_ok); break;
    default: break;  // excluded by unsupported_reason
  }
}

}  // namespace

#if !defined(LAYOUTRT_WITH_SM90_GEMM) || !defined(LAYOUTRT_ATTENTION_TRACE)
bool attention_trace_built() { return false; }
void attention_trace_enable(bool) {}
std::vector<unsigned long long> attention_trace_read() { return {}; }
#endif

std::string attention_trace_csv(const std::vector<unsigned long long>& records) {
  std::string out =
      "qt,h,b,wg,unit,sm,start_ns,start,pdl_wait,prologue,first_tile,tile0,tile1,tile2,tile3,tile4,tile5,walk_end,"
      "end,end_ns\n";
  static_assert(kAttentionTraceTiles == 6 && kAttentionTraceFields == 16, "the header names the fields");
  for (size_t r = 0; r + kAttentionTraceFields <= records.size(); r += kAttentionTraceFields) {
    const unsigned long long* x = records.data() + r;
    const AttentionTraceId id = attention_trace_id_parts(x[kTraceId]);
    out += std::to_string(id.qt) + ',' + std::to_string(id.h) + ',' + std::to_string(id.b) + ',' +
           std::to_string(id.wg) + ',' + std::to_string(id.unit ? 1 : 0);
    for (int k = kTraceSm; k < kAttentionTraceFields; ++k) out += ',' + std::to_string(x[k]);
    out += '\n';
  }
  return out;
}

#if !defined(LAYOUTRT_WITH_SM90_GEMM)
// Built without the sm_90a objects: the mma.sync kernels only.
bool sm90_flash_built() { return false; }
size_t sm90_flash_smem_bytes(int) { return 0; }
void sm90_flash_attention(const flash::FlashParams&, dim3, bool, int, cudaStream_t) {
  throw_error(ErrorCode::kInternal, "flash_attention: the wgmma kernel is not built");
}
#endif

bool flash_wgmma_available(int head_dim) {
  return head_dim == 64 && sm90_flash_built() && device_is_sm90();
}

bool flash_attention_supported(const AttentionArgs& a) { return unsupported_reason(a) == nullptr; }

size_t flash_attention_smem_bytes(const AttentionArgs& a) { return smem_bytes(a, variant_of(a)); }

size_t flash_bias_cache_bytes(int64_t num_seqs, int64_t max_seq_len, int num_heads, int head_dim) {
  if ((head_dim != 32 && head_dim != 64) || num_seqs <= 0 || max_seq_len <= 0 || num_heads <= 0) return 0;
  return static_cast<size_t>(num_seqs * num_heads * cache_q_tiles(max_seq_len) * cache_k_blocks(max_seq_len)) *
         kCacheBlockU4 * sizeof(uint4);
}

bool flash_prepare_bias(AttentionArgs& a, cudaStream_t stream) {
  a.bias_cache = TensorView();
  if (table_mode_of(a) != 2 || metadata_reason(a) != nullptr) return false;
  const size_t need = flash_bias_cache_bytes(a.num_seqs, a.max_seq_len, a.num_heads, a.head_dim);
  if (need == 0 || !a.scratch.defined() || a.scratch.device != Device::kCUDA || a.scratch.nbytes() < need ||
      !aligned16(a.scratch.data))
    return false;
  FlashParams p = metadata_params(a, 2);
  p.bias_cache = static_cast<const uint4*>(a.scratch.data);
  set_cache_strides(p, a.max_seq_len);
  // Small grids (B = 1: 144 CTAs on 132 SMs, each walking 24 key blocks): split each query tile's key blocks over up
  // to four CTAs, about three CTAs per SM. LAYOUTRT_CACHE_GROUPS=N forces N (A/B timing). H100, fp16 forward at B = 1:
  // 0.874 ms (auto: 3) vs 0.888 ms (1), two runs each.
  const int64_t ctas = tile_ctas(a);
  const int64_t sms = device_attribute<cudaDevAttrMultiProcessorCount>();
  int64_t groups = sms > 0 && ctas < 2 * sms ? ceil_div(3 * sms, ctas) : 1;
  if (const char* env = std::getenv("LAYOUTRT_CACHE_GROUPS")) groups = std::atoi(env);
  p.cache_groups = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({groups, 4, p.k_blocks})));
  // The tables, then the metadata of one CTA's keys (at most cache_blocks_per_group of the longest sequence's blocks).
  const size_t smem = cache_meta_offset(p.n1, p.n2) +
                      sizeof(int4) * kCacheKeys * size_t(cache_blocks_per_group(p.k_blocks, p.cache_groups));
  if (smem > static_cast<size_t>(max_smem_optin()))
    return false;  // sequences far longer than LayoutLMv3's: the attention looks the biases up instead
  if (smem > 48 * 1024)
    LRT_CUDA(cudaFuncSetAttribute(bias_cache_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(p.q_tiles * p.cache_groups),
                  static_cast<unsigned>(a.num_heads), static_cast<unsigned>(a.num_seqs));
  bias_cache_kernel<<<grid, kCacheThreads, smem, stream>>>(p);
  LRT_CUDA_LAUNCHED("bias_cache_kernel");
  a.bias_cache = TensorView(a.scratch.data, DType::kF16, Device::kCUDA, {static_cast<int64_t>(need / 2)});
  // The tail split's counters start at 0 in every forward (its merging CTA resets them after each launch; this keeps
  // a launch that never finished, e.g. an error mid-forward, from leaving a count behind). Only for grids where the
  // wgmma kernel runs two warpgroups, the only ones that can split.
  if (variant_of(a) == kCachedWG && wg_split(a) == 2)
    if (const TailArea area = tail_area(a); area.count != nullptr)
      LRT_CUDA(cudaMemsetAsync(area.count, 0, tail_count_bytes(int64_t{a.num_seqs} * a.num_heads), stream));
  return true;
}

void flash_attention(const AttentionArgs& a, cudaStream_t stream, bool tail_ok) {
  if (const char* why = unsupported_reason(a))
    throw_error(ErrorCode::kInternal, "flash_attention: unsupported arguments: ", why);
  if (a.num_seqs == 0 || a.max_seq_len == 0) return;
  if (a.qkv.dtype == DType::kF16)
    launch_dim<__half>(a, stream, tail_ok);
  else
    launch_dim<__nv_bfloat16>(a, stream, tail_ok);
}

const char* flash_tail_form(const AttentionArgs& a, bool tail_ok) {
  if (unsupported_reason(a) != nullptr || variant_of(a) != kCachedWG || a.head_dim != 64) return "none";
  const TailPlan t = tail_plan(a, wg_split(a), tail_ok);
  return t.inline_strips ? "inline" : t.units > 0 ? "units" : "none";
}

size_t flash_tail_bytes(int64_t num_seqs, int64_t max_seq_len, int num_heads) {
  if (num_seqs <= 0 || max_seq_len <= 0 || num_heads <= 0) return 0;
  const int64_t pairs = num_seqs * num_heads;
  return tail_count_bytes(pairs) + static_cast<size_t>(pairs * ceil_div(max_seq_len, int64_t{64})) *
                                       kTailUnitFloats * sizeof(float);
}

size_t flash_tail_reserve_bytes() {
  // The automatic choice (tail_plan) needs full tiles × pairs ≤ SMs with at least one full tile, and key tiles ≤ 2 ×
  // full tiles: at most SMs pairs and 2 · SMs partials.
  const int64_t sms = std::max(device_attribute<cudaDevAttrMultiProcessorCount>(), 1);
  return tail_count_bytes(sms) + static_cast<size_t>(2 * sms) * kTailUnitFloats * sizeof(float);
}

}  // namespace layoutrt::cuda
