// Relative-bias flash attention on Hopper's warpgroup MMAs (wgmma, sm_90a): the bias-cache path (bias mode 3) of
// src/cuda/flash_attention.cu at head_dim 64, computing exactly what its mma.sync kernels compute (see the header
// comment there: scores = q·k + the cached F16 bias block, −∞ for masked keys, online softmax in FP32, P rounded to
// the activation dtype, ctx = Σ p·v / Σ p, 0 when every key is masked).
//
// Why a second kernel: on an H100 the mma.sync kernels reach ~170 TFLOP/s (0.29 ms per layer-call at B = 32,
// T = 512 + 197): each 16 × 8 × 16 mma needs its fragments ldmatrix'd from shared memory by the warp, and the issue
// slots for ldmatrix + mma + the softmax compete. wgmma reads both operands of Q·Kᵀ and the V operand of P·V straight
// from shared memory through descriptors, a warpgroup (4 warps, 64 query rows) issuing one 64 × 64 × 16 MMA per
// instruction, so the warps' issue slots are left to the softmax and the copies.
//
// Grid / block: the same grid as the mma.sync kernels, (⌈max_seq_len / 64⌉ query tiles, heads, sequences); one
// warpgroup (128 threads) per CTA owns 64 query rows (kSplit = 1), or kSplit = 2 warpgroups share them, warpgroup w
// taking key tiles w, w + 2, ... with its own K/V buffers, running max and sum, merged through shared memory at the end
// (split-KV inside the CTA: for grids of at most two CTAs per SM, e.g. B = 1 at L = 709: 144 CTAs on 132 SMs, where one
// warpgroup per SM walking all 12 key tiles leaves the SM's tensor cores mostly idle); warp w holds rows 16w .. 16w +
// 15 of every accumulator (the wgmma D fragment of a warp is the mma.sync m16n8 C fragment repeated over the n-tiles,
// so the bias-cache blocks, the online softmax and the S → P register reuse are the shared ones of flash_common.cuh).
// CTAs past their sequence's end exit at once (variable lengths: padding costs nothing).
//
// Shared memory (1024-byte aligned, 40 KB + alignment slack: four CTAs per SM): Q [64 rows], K [2][64 keys],
// V [2][64 keys], each row 64 elements = 128 bytes in the 128-byte swizzle (16-byte chunk c of row r at chunk
// c ⊕ (r mod 8)), written by cp.async (rows of masked or out-of-range keys zero-filled: a NaN in a masked V row cannot
// leak through 0 · NaN). The bias blocks skip shared memory: they are stored in mma fragment order, so each lane
// loads its four 16-byte pieces of the next key tile straight into registers (streaming loads, one tile ahead).
// Descriptors: Q and K are K-major (head dims contiguous), V is MN-major for P·V (its N = head dims contiguous,
// K = keys strided): 8-row groups 1024 bytes apart (the stride byte offset) in both; a k16 step advances Q/K by
// 32 bytes within the swizzled row and V by 16 rows (2048 bytes).
//
// Per key tile t: wait for tile t's copies, fence them to the async proxy, barrier; issue tile t+1's copies (other
// buffer, masked by the key-valid bytes loaded in the previous iteration) and the loads of tile t+2's key-valid bytes;
// S = bias pieces (F16 → FP32), then load tile t+1's pieces; S += Q·Kᵀ (4 SS wgmma, m64n64k16); online softmax; O ·=
// corr where a row's max moved; O += P·V (4 RS wgmma: P from the S registers rounded to the dtype, V from shared
// memory). Epilogue: O / l rounded, staged in the (swizzled) Q tile, 16-byte stores of the rows inside the sequence.
//
// Measured on an H100 (fp16, B = 32, L = 709, 12 heads; ms per layer-call, the test's timing): bias blocks through
// shared memory (cp.async beside K/V, three CTAs per SM) 0.263; in registers (four CTAs per SM) 0.229 — kept; 3- and
// 4-stage K/V pipelines 0.251 / slower (fewer CTAs per SM); S(t+1) = Q·K(t+1)ᵀ issued before the softmax of tile t
// (intra-warpgroup overlap, 163 registers: three CTAs per SM) 0.268. The mma.sync kernels: 0.289 (2 warps × 2 strips),
// 0.317 (4 warps). Split-KV (two warpgroups per CTA), H200, fp16 forward at B = 1: 0.763 / 0.761 ms vs 0.794 / 0.792
// with one warpgroup (two runs each; the attention stage 0.235 vs 0.261 ms for 12 layers); at B = 2 and 4 (288 / 576
// CTAs) two warpgroups are slower (1.096 vs 1.065, 1.722 vs 1.716 ms), so only grids of at most two CTAs per SM split.
// An L2 prefetch of the bias blocks two tiles ahead changed nothing measurable (B = 1 0.763 both, B = 32 10.16 vs 10.10
// ms) and was dropped. Grid-level split-KV on top (three one-warpgroup CTAs per query tile at B = 1, each a third of
// the key tiles, the last to arrive merging the partials from a global workspace in part order; H200, 2026-12-01): the
// kernel 15.8 vs 16.9 us per layer (ncu, graphs off) but the forward 0.714 vs 0.709 ms (two or three warpgroups per
// query tile across CTAs: 0.748 – 0.776 ms) — not kept. At B = 1 this kernel is not limited by one CTA's serial walk
// over the key tiles: a third of the walk per CTA bought 7 %. Key-valid bytes loaded one iteration before they mask the
// copies (the hottest stall was their compare right after the load: bench/results/2026-12-01-h200-attention-stalls.md),
// H200, one call against the previous kernel: attention stage at B = 32 2.412 vs 2.605 ms, B = 8 0.690 vs 0.766, B = 1
// 0.222 vs 0.239; the forward B = 32 9.829 vs 9.995 ms. Two CTA shapes measured against this one and not kept (H200,
// 2026-12-01, bench/results/2026-12-01-h200-lanes.md; code on branches wip/attention-two-query-tiles and
// wip/attention-persistent): two warpgroups owning 128 query rows and sharing every K/V tile (CTA-wide barrier per key
// tile, two CTAs per SM): attention stage B = 32 2.885 vs 2.381 ms; persistent CTAs walking query tiles of several
// sequences with the next tile's Q, K/V, key-valid bytes and bias prefetched across the boundary: 3.23 vs 2.68 ms. Four
// independent one-warpgroup CTAs per SM hide each other's start-up better than either. Three K/V stages for the
// two-warpgroup shape (each warpgroup's tiles prefetched two ahead, 105 KB per CTA, still two CTAs per SM; H200,
// 2026-12-02, bench/results/2026-12-02-h200-stages-splitk.md): B = 1 0.687 vs 0.687 ms — not kept (branch
// wip/stages-splitk-embed-lanes). Four warpgroups per CTA at B = 1 (three key tiles each, one CTA per SM, the partial
// query tile's key tiles run by the full tiles' CTAs after their walk; H200, 2026-12-03,
// bench/results/2026-12-03-h200-split4-plain.md): the kernel 17.2 vs 14.8 us per call, the forward 0.682 vs 0.640 ms —
// not kept (branch wip/attn-split4): a shorter walk per warpgroup is not what B = 1 lacks.
//
// Tail split (two warpgroups, FlashParams::tail_units; chosen in flash_attention.cu tail_units): at B = 1, L = 709 the
// grid is 12 heads × 12 query tiles, the 12th holding 5 rows. 132 full-tile CTAs fill the 132 SMs of an H100 / H200 one
// each; the 12 partial-tile CTAs land as second CTAs on 12 SMs, which then run four warpgroups of six key tiles each
// and finish last: the kernel 15.7 us at L = 709 vs 11.2 at L = 704 (11 full tiles; ncu, H200, 2026-12-02), the forward
// 0.680 vs 0.647 ms. With the split the grid is one-dimensional, the full tiles first (one per SM), then per (sequence,
// head) ⌈key tiles / 2⌉ unit CTAs whose warpgroups each take one key tile (LAYOUTRT_FLASH_TAIL_TILES: n, and ⌈key tiles
// / 2n⌉ CTAs) of the partial query tile (its own copy of the Q rows, one K/V buffer), leave the unnormalised partial in
// the global workspace ([value][thread], the in-CTA merge's layout), fence, and count in; the warpgroup that brings the
// count to the number of partials resets it and folds them in key-tile order (deterministic): first every partial's row
// max and sum (one row per thread, all loads issued at once), then the output column pairs. H200, fp16 forward at B =
// 1, one call: 0.656 / 0.655 ms vs 0.677 / 0.677 without (LAYOUTRT_FLASH_TAIL=0), the kernel 13.7 vs 15.4 us; two or
// three key tiles per unit warpgroup (LAYOUTRT_FLASH_TAIL_TILES, fewer unit CTAs but a longer serial walk) 0.671 /
// 0.688 ms. First versions: folding one partial after the other (a round of L2 latency each) 14.9 us; loads behind a
// per-tile branch, 18.1 us.
//
// Inline tail (FlashParams::tail_inline; chosen in flash_attention.cu tail_plan for one sequence whose partial tile has
// at most 16 rows, e.g. B = 1, L = 709): no extra CTAs. The grid is the full tiles' (132 CTAs at B = 1, one per SM);
// warpgroup g of query tile q also runs key tile g + 2q (where it exists) for the partial tile's first 16 rows: its
// walk is rotated to start at that tile, and each of its four warps computes a 16 × 16 strip (16 rows × keys 16w ..
// 16w + 15) with mma.sync on ldmatrix'd fragments of the K / V tiles already in shared memory — a sixteenth of the
// tile's tensor work — its scores and softmax while the tile's Q·Kᵀ wgmmas are in flight, its P·V while the P·V ones
// are, and leaves (O, max, partial sum) in shared memory. A ninth warp per CTA (the fold warp, 288 threads, one CTA
// per SM: no 128-register cap) waits for the CTA's strips at a named barrier the warpgroups only arrive at, merges
// them, publishes one partial per CTA in the tail workspace and counts in; the last of a (sequence, head)'s ⌈key
// tiles / 2⌉ CTAs folds them in CTA order, beside the walks. H200, fp16 forward at B = 1 (2026-12-04,
// bench/results/2026-12-04-h200-inline-tail.md): 0.609 – 0.610 ms (three runs) vs 0.616 (two) with the unit CTAs
// (LAYOUTRT_FLASH_TAIL_INLINE=0) in one call; 0.595 – 0.598 with no tail work at all and 0.602 – 0.605
// with the strips but no merge or fold (wrong rows, timing only). So the strips cost ~0.5 us per launch (the phase
// trace: their warpgroups' first key tile 3.57 vs 3.02 us into the launch), and the fold warp's merge and publication
// ~0.4 us although they run beside the walk (the trace: the next key tile of those CTAs 0.5 us longer; not
// explained), the final fold ~0.2 us. A first fold (one partial per key tile in the unit layout, a merge loop of
// dependent shared loads, three rounds of L2 loads) ended at ~10.5 us of the launch's ~11.6, on the critical path:
// 0.613 ms.
//
// Launched early (the inline form only; its own kernel name, flash_wgmma_inline_kernel): in one-lane forwards the CUDA
// backend moves its programmatic edge from the QKV GEMM (cuBLASLt, which never triggers) to that GEMM's launch
// completion (graphs.cu, backend_cuda.cu early_filter), so its CTAs become resident as the GEMM's CTAs leave their SMs
// — one per SM, which its 288 threads × 160 registers enforce — and each reads the sequence offsets, its first two key
// tiles' key-valid bytes and its first bias pieces (all written before the GEMM began) before its PDL wait. H200, fp16,
// T = 512, one call (bench/results/2026-12-04-h200-early-attention.md): B = 1 0.599 / 0.600 ms vs 0.610 / 0.608 with
// the edge as captured; the same early reads without the early launch had gained nothing (2026-12-03-h200-ln-l2-
// prefetch.md). The one-warpgroup form (B ≥ 2) launched so: B = 2 0.963 vs 0.908 ms — not done.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/device_info.h"
#include "cuda/flash_attention_sm90.h"
#include "cuda/flash_common.cuh"
#include "cuda/flash_tail.h"
#include "cuda/pdl.cuh"

namespace layoutrt::cuda {
namespace {

using namespace flash;

// Phase trace (diagnostics; CMake option LAYOUTRT_ATTENTION_TRACE, off by default — the kernel then has none of it):
// thread 0 of each warpgroup of each launch while the trace is on takes a record (flash_attention_sm90.h's
// AttentionTraceField) and stamps it at the walk's phase boundaries with clock64 (its SM's cycles) and, at start and
// end, %globaltimer (ns, comparable across SMs). Records past kTraceMaxRecords are dropped.
#if defined(LAYOUTRT_ATTENTION_TRACE)
constexpr int kTraceMaxRecords = 16384;
__device__ unsigned long long g_trace[kTraceMaxRecords * kAttentionTraceFields];
__device__ unsigned g_trace_count;
__device__ unsigned g_trace_on;
__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ unsigned long long* trace_record(int tid) {
  if (!g_trace_on || tid != 0) return nullptr;
  const unsigned n = atomicAdd(&g_trace_count, 1u);
  if (n >= kTraceMaxRecords) return nullptr;
  unsigned long long* rec = g_trace + size_t{n} * kAttentionTraceFields;
  unsigned sm;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
  rec[kTraceSm] = sm;
  rec[kTraceStartNs] = global_ns();
  rec[kTraceStart] = clock64();
  return rec;
}
#define LRT_TRACE(rec, field)                     \
  do {                                            \
    if (rec) (rec)[field] = clock64();            \
  } while (0)
#define LRT_TRACE_END(rec)                        \
  do {                                            \
    if (rec) {                                    \
      (rec)[kTraceEnd] = clock64();               \
      (rec)[kTraceEndNs] = global_ns();           \
    }                                             \
  } while (0)
#else
#define LRT_TRACE(rec, field) \
  do {                        \
  } while (0)
#define LRT_TRACE_END(rec) \
  do {                     \
  } while (0)
#endif

constexpr int kD = 64;                                              // head_dim
constexpr int kBN = 64;                                             // keys per tile
constexpr int kThreads = 128;                                       // one warpgroup
constexpr int kTileBytes = 64 * kD * 2;                             // 64 rows of 128 bytes
constexpr int kBiasTileU4 = kBN / kCacheKeys * kCacheBlockU4;       // one key tile's cache blocks (uint4)
static_assert(kBlockM == 64 && kThreads == 2 * kBlockM, "one warpgroup, 16 query rows per warp");

// Shared memory: Q, then per warpgroup two buffers each of K and V (the key tile in use and the next one). Two
// buffers, not more: occupancy beats depth here (H100, fp16, B = 32 L = 709: 0.229 ms per layer-call with two, four
// CTAs per SM, vs 0.251 with three, three CTAs per SM; B = 1 and 8 the same or slower with three or four).
constexpr int kOffQ = 0;
constexpr int kOffKV = kOffQ + kTileBytes;
constexpr int kKVBytes = 4 * kTileBytes;  // one warpgroup's K [2], V [2]
template <int kSplit>
constexpr int smem_alloc() {
  return kOffKV + kSplit * kKVBytes + 1024;  // + slack to align the base to 1024
}
// Per warpgroup merged into warpgroup 0 at the end: 32 O accumulators, 2 row maxima, 2 partial row sums per thread.
constexpr int kMergeFloats = 36;
static_assert(kMergeFloats * kThreads * 4 <= kKVBytes, "the merge area fits in a warpgroup's K/V buffers");
static_assert(kMergeFloats * kThreads == kTailUnitFloats, "a tail unit's partial is the merge area's layout");
// Register cap 128 either way: four CTAs of one warpgroup (41 KB each) or two of two warpgroups (73 KB) per SM.
template <int kSplit>
constexpr int min_ctas() {
  return 4 / kSplit;
}
// The inline tail (FlashParams::tail_inline; two warpgroups): a ninth warp per CTA merges and folds the strips'
// partials. Shared memory past the two warpgroups' K/V: the partial tile's first 16 Q rows (swizzled like a tile), a
// slice [kMergeFloats][32] per strip warp (warp w of warpgroup g: slice 4g + w).
constexpr int kInlineThreads = 2 * kThreads + 32;
constexpr int kInlineRows = kInlineTailRows;         // rows of the partial tile a strip covers (flash_tail.h)
constexpr int kInlineMaxParts = kInlineTailMaxParts;  // CTAs with strips per (sequence, head): ⌈key tiles / 2⌉
constexpr int kSliceFloats = kMergeFloats * 32;
constexpr int kOffTailQ = kOffKV + 2 * kKVBytes;
constexpr int kOffSlices = kOffTailQ + kInlineRows * 128;
constexpr int smem_alloc_inline() { return kOffSlices + 8 * kSliceFloats * 4 + 1024; }

// 16-byte streaming load (read once: no L1 allocation).
__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Byte offset of 16-byte chunk `chunk` of row `row` in a tile of 128-byte rows, 128-byte swizzle.
__device__ __forceinline__ uint32_t swz128(int row, int chunk) {
  return static_cast<uint32_t>(row * 128 + ((chunk ^ (row & 7)) << 4));
}

// Shared-memory matrix descriptor of a 1024-byte-aligned tile of 128-byte rows in the 128-byte swizzle: start address
// (16-byte units, bits 0-13), leading byte offset 1 (unused by swizzled layouts whose rows hold the whole K / N
// extent), stride byte offset 1024 (8 rows), layout type 1 = SWIZZLE_128B (bits 62-63).
__device__ __forceinline__ uint64_t tile_desc(uint32_t smem_addr) {
  return uint64_t{(smem_addr & 0x3FFFFu) >> 4} | (uint64_t{1} << 16) | (uint64_t{1024 >> 4} << 32) |
         (uint64_t{1} << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Generic-proxy writes (cp.async, st.shared) → visible to wgmma's (async proxy) reads after the next barrier.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving reads or writes of accumulator registers across an asynchronous wgmma.
__device__ __forceinline__ void fence_regs(float (&r)[8][4]) {
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(r[j][e])::"memory");
}

#define LRT_WG_D32                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
  "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define LRT_WG_DOUT(d)                                                                                  \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),             \
      "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),         \
      "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),         \
      "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),         \
      "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),         \
      "+f"(d[7][2]), "+f"(d[7][3])

// d[64 × 64] += A[64 × 16] · B[16 × 64], both from shared memory; A and B K-major (no transpose).
template <class T>
__device__ __forceinline__ void wgmma_ss(float (&d)[8][4], uint64_t desc_a, uint64_t desc_b) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " LRT_WG_D32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : LRT_WG_DOUT(d)
                 : "l"(desc_a), "l"(desc_b), "r"(1));
  } else {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " LRT_WG_D32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : LRT_WG_DOUT(d)
                 : "l"(desc_a), "l"(desc_b), "r"(1));
  }
}

// d[64 × 64] += A[64 × 16] · B[16 × 64]: A from registers (the m16k16 fragment of each warp's 16 rows), B from shared
// memory MN-major (transposed).
template <class T>
__device__ __forceinline__ void wgmma_rs(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc_b) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " LRT_WG_D32
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : LRT_WG_DOUT(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
  } else {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " LRT_WG_D32
                 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : LRT_WG_DOUT(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
  }
}

// Warpgroup-local barrier (named barrier 1 + wg over its 128 threads); the whole CTA's when there is one warpgroup.
template <int kSplit>
__device__ __forceinline__ void wg_barrier(int wg) {
  static_assert(kSplit <= 2, "barrier ids 1 and 2");
  if constexpr (kSplit == 1)
    __syncthreads();
  else if (wg == 0)
    asm volatile("bar.sync 1, 128;\n" ::: "memory");
  else
    asm volatile("bar.sync 2, 128;\n" ::: "memory");
}

// Folds another warpgroup's partial of the same query rows, value v (the [value][thread] index of kMergeFloats) read
// by load(v), into this thread's (o, row_max, row_sum): both sides move to the common max (a side that saw only masked
// keys holds O = 0, sum = 0, max −∞ and adds nothing; see max_shift_factor).
template <class Load>
__device__ __forceinline__ void merge_partial(float (&o)[8][4], float (&row_max)[2], float (&row_sum)[2],
                                              const Load& load, float scale) {
  float f0[2], f1[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const float m1 = load(32 + rr);
    const float m_new = fmaxf(row_max[rr], m1);
    const float m_scaled = scaled_max(m_new, scale);
    f0[rr] = max_shift_factor(row_max[rr], m_new, m_scaled, scale);
    f1[rr] = max_shift_factor(m1, m_new, m_scaled, scale);
    row_max[rr] = m_new;
    row_sum[rr] = row_sum[rr] * f0[rr] + load(34 + rr) * f1[rr];
  }
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] = o[n][e] * f0[e >> 1] + load(4 * n + e) * f1[e >> 1];
}

// One key tile of the walk, after S holds the tile's bias block: S += Q·Kᵀ (4 SS wgmma, m64n64k16; +32 bytes per k16
// step of Q and K), the online-softmax step (O rescaled where a row's max moved), O += P·V (4 RS wgmma: P from the S
// registers rounded to T, V from shared memory, +16 rows = 2048 bytes per k16 step).
// `beside_qk` runs while the Q·Kᵀ wgmmas are in flight (it must not touch s), `beside_pv` while the P·V ones are (it
// must not touch o).
template <class T, class BesideQK, class BesidePV>
__device__ __forceinline__ void tile_step(float (&s)[8][4], float (&o)[8][4], float (&row_max)[2], float (&row_sum)[2],
                                          uint64_t desc_q, uint64_t desc_k, uint64_t desc_v, float scale_log2,
                                          const BesideQK& beside_qk, const BesidePV& beside_pv) {
  fence_regs(s);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) wgmma_ss<T>(s, desc_q + 2 * kk, desc_k + 2 * kk);
  wgmma_commit();
  beside_qk();
  wgmma_wait_all();
  fence_regs(s);
  float corr[2];
  if (__any_sync(0xffffffffu, online_softmax_step(s, row_max, row_sum, corr, scale_log2))) rescale_rows(o, corr);
  uint32_t a[kBN / 16][4];
#pragma unroll
  for (int kk = 0; kk < kBN / 16; ++kk) p_fragment<T>(s, kk, a[kk]);
  fence_regs(o);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kBN / 16; ++kk) wgmma_rs<T>(o, a[kk], desc_v + 128 * kk);
  wgmma_commit();
  beside_pv();
  wgmma_wait_all();
  // P's registers are read by the wgmmas until the wait: kept live to here, so beside_pv cannot be given them.
#pragma unroll
  for (int kk = 0; kk < kBN / 16; ++kk)
    asm volatile("" : "+r"(a[kk][0]), "+r"(a[kk][1]), "+r"(a[kk][2]), "+r"(a[kk][3])::"memory");
  fence_regs(o);
}

// One warpgroup of a tail unit (tail split): the partial (O, row max, partial row sum per thread, unnormalised) of
// key tiles part·n .. part·n + n − 1 (n = p.tail_tiles) for the pair's partial query tile — rows q0 .. q0 + nq − 1,
// nq < 64 — left in p.tail_ws in the in-CTA merge's [value][thread] layout. The warpgroup that brings the pair's count
// of partials to ⌈num_tiles / n⌉ folds all of them in key-tile order (the same result whichever warpgroup it is),
// writes the nq rows and resets the count.
// Its shared memory: K buffer 0 and V buffer 0 of its own K/V area (kv_base / kv_smem), the Q rows in K buffer 1; the
// fold's factors in K buffer 0 once the wgmma reads are done.
template <class T, class LoadValid, class ValidBits, class LoadKV, class LoadBias>
__device__ __forceinline__ void tail_unit(const FlashParams& p, int part, int num_tiles, int pair, int h, int seq0,
                                          int nq, int q0, const T* gQ, uint32_t kv_base, unsigned char* kv_smem, int wg,
                                          const LoadValid& load_valid, const ValidBits& valid_bits,
                                          const LoadKV& load_kv, const LoadBias& load_bias) {
  __shared__ unsigned last[2];  // per warpgroup: this one merges
  const int kt0 = part * p.tail_tiles, parts = (num_tiles + p.tail_tiles - 1) / p.tail_tiles;
  if (kt0 >= num_tiles) return;
  const int kt_end = min(num_tiles, kt0 + p.tail_tiles);
  const int tid = static_cast<int>(threadIdx.x) % kThreads, r0 = tid >> 3, c0 = tid & 7;
  const int64_t ld = 3 * int64_t{p.hidden};
  const uint32_t q_smem = kv_base + kTileBytes;
#pragma unroll
  for (int it = 0; it < 4; ++it) {
    const int r = r0 + 16 * it;
    const bool in = r < nq;
    cp_async_16(q_smem + swz128(r, c0), gQ + int64_t{in ? q0 + r : q0} * ld + c0 * 8, in);
  }
  float o[8][4];
#pragma unroll
  for (int n = 0; n < 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
  const uint64_t desc_q = tile_desc(q_smem), desc_k = tile_desc(kv_base), desc_v = tile_desc(kv_base + 2 * kTileBytes);
  for (int kt = kt0; kt < kt_end; ++kt) {  // one buffer: each tile's copies wait (p.tail_tiles is small)
    if (kt > kt0) wg_barrier<2>(wg);        // every warp's wgmma reads of the previous tile are complete
    uint8_t raw[4];
    load_valid(kt, raw);
    load_kv(kt, 0, valid_bits(raw));
    cp_async_commit();
    uint4 bias[kBN / 16];
    load_bias(kt, bias);
    cp_async_wait_all();
    fence_proxy_async();
    wg_barrier<2>(wg);

    float s[8][4];
    scores_from_bias<kBN>(s, bias);
    tile_step<T>(s, o, row_max, row_sum, desc_q, desc_k, desc_v, p.scale_log2, [] {}, [] {});
  }

  constexpr int64_t kUnit = kTailUnitFloats;
  float* mine = p.tail_ws + (int64_t{pair} * p.q_tiles + part) * kUnit + tid;
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) __stcg(mine + (4 * n + e) * kThreads, o[n][e]);
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    __stcg(mine + (32 + rr) * kThreads, row_max[rr]);
    __stcg(mine + (34 + rr) * kThreads, row_sum[rr]);
  }
  __threadfence();  // this thread's partial is visible device-wide before the count says so
  wg_barrier<2>(wg);
  if (tid == 0) last[wg] = atomicAdd(p.tail_count + pair, 1u) == static_cast<unsigned>(parts - 1) ? 1u : 0u;
  wg_barrier<2>(wg);
  if (last[wg] == 0) return;
  __threadfence();
  if (tid == 0) p.tail_count[pair] = 0u;  // for the next launch (stream-ordered after this one)

  // The fold, every load of a step issued at once (a merge of one partial after the other waited on 12 rounds of L2
  // latency: the kernel 14.9 vs 15.9 us without the split, H200 B = 1). Step 1, thread r < nq for row r: each
  // partial's max m_t and row sum l_t (the sum of its quad's four partial sums), their common max M, the factors f_t =
  // 2^(m_t·s − M·s) (0 for a tile of masked keys only) and 1 / Σ f_t·l_t, into shared memory. Step 2, every thread
  // for pairs of output columns: Σ f_t·O_t (in key-tile order) / Σ f_t·l_t. Element (row r, column c) of a partial is
  // value 4·(c / 8) + 2·((r mod 16) / 8) + (c mod 2) of thread 32·(r / 16) + 4·(r mod 8) + (c mod 8) / 2 (the wgmma D
  // fragment, as stored above).
  // Loads are issued unconditionally from a clamped tile index (tiles past parts re-read the last one and are
  // masked afterwards): a load behind a per-tile branch, its result used in that iteration, waited a round each.
  float* fac = reinterpret_cast<float*>(kv_smem);  // [kTailMaxKeyTiles][64] (the warpgroup's K/V, read no more)
  float* inv_den = fac + kTailMaxKeyTiles * kBlockM;
  const float* all = p.tail_ws + int64_t{pair} * p.q_tiles * kUnit;
  if (tid < nq) {
    const int r = tid, th = 32 * (r >> 4) + 4 * (r & 7), vr = (r >> 3) & 1;
    float m[kTailMaxKeyTiles], l[kTailMaxKeyTiles][4];
#pragma unroll
    for (int t = 0; t < kTailMaxKeyTiles; ++t) {
      const float* u = all + min(t, parts - 1) * kUnit;
      m[t] = __ldcg(u + (32 + vr) * kThreads + th);
#pragma unroll
      for (int q = 0; q < 4; ++q) l[t][q] = __ldcg(u + (34 + vr) * kThreads + th + q);
    }
    float M = -INFINITY;
#pragma unroll
    for (int t = 0; t < kTailMaxKeyTiles; ++t) M = t < parts ? fmaxf(M, m[t]) : M;
    const float m_scaled = scaled_max(M, p.scale_log2);
    float den = 0.f;
#pragma unroll
    for (int t = 0; t < kTailMaxKeyTiles; ++t) {
      const float f = t < parts ? max_shift_factor(m[t], M, m_scaled, p.scale_log2) : 0.f;
      fac[t * kBlockM + r] = f;
      den += t < parts ? f * ((l[t][0] + l[t][1]) + (l[t][2] + l[t][3])) : 0.f;
    }
    inv_den[r] = den > 0.f ? 1.f / den : 0.f;
  }
  wg_barrier<2>(wg);
  T* out = static_cast<T*>(p.out);
  const int H = p.hidden;
  for (int i = tid; i < nq * (kD / 2); i += kThreads) {
    const int r = i / (kD / 2), c = 2 * (i % (kD / 2));
    const int th = 32 * (r >> 4) + 4 * (r & 7) + ((c & 7) >> 1), v = 4 * (c >> 3) + 2 * ((r >> 3) & 1);
    float x0[kTailMaxKeyTiles], x1[kTailMaxKeyTiles];
#pragma unroll
    for (int t = 0; t < kTailMaxKeyTiles; ++t) {
      const float* u = all + min(t, parts - 1) * kUnit;
      x0[t] = __ldcg(u + v * kThreads + th);
      x1[t] = __ldcg(u + (v + 1) * kThreads + th);
    }
    float a0 = 0.f, a1 = 0.f;
#pragma unroll
    for (int t = 0; t < kTailMaxKeyTiles; ++t) {
      const float f = fac[t * kBlockM + r];  // 0 past parts
      a0 += f * x0[t];
      a1 += f * x1[t];
    }
    *reinterpret_cast<uint32_t*>(out + int64_t{seq0 + q0 + r} * H + int64_t{h} * kD + c) =
        pack2<T>(a0 * inv_den[r], a1 * inv_den[r]);
  }
}

// ---- The inline tail (FlashParams::tail_inline) -----------------------------------------------------------------
// Named barriers of the inline kernel: 3 hands the strips to the fold warp (the 256 compute threads arrive, the fold
// warp waits), 4 is the compute threads' CTA barrier (the fold warp takes no part in the walk's).
__device__ __forceinline__ void strips_arrive() {
  asm volatile("bar.arrive 3, %0;\n" ::"n"(kInlineThreads) : "memory");
}
__device__ __forceinline__ void strips_wait() { asm volatile("bar.sync 3, %0;\n" ::"n"(kInlineThreads) : "memory"); }
template <bool kInline>
__device__ __forceinline__ void compute_sync() {
  if constexpr (kInline)
    asm volatile("bar.sync 4, %0;\n" ::"n"(2 * kThreads) : "memory");
  else
    __syncthreads();
}

// Which of a (sequence, head)'s key tiles the inline tail gives to whom: warpgroup g of full-tile CTA q takes key
// tile g + 2q (its first tile, its walk rotated to start there) when that exists; the strips of a CTA are merged into
// one partial, so ⌈key tiles / 2⌉ CTAs leave one each.
struct InlineTail {
  int full, rows, tiles, parts;  // full query tiles, rows of the partial tile (0: none), key tiles, CTAs with strips
  bool fits;  // the host's rule (flash_tail.h) holds for this sequence, or it has no partial tile (nothing to do)
  __device__ explicit InlineTail(int L)
      : full(L / kBlockM),
        rows(L - full * kBlockM),
        tiles((L + kBN - 1) / kBN),
        parts((tiles + 1) / 2),
        fits(rows == 0 || flash_inline_tail_fits(1, false, L)) {}
  __device__ bool strips(int q, int g) const { return rows > 0 && g + 2 * q < tiles; }
};

// One warp's strip: rows 0 .. 15 of the partial query tile (Q in q_tail, zero past its rows) against keys 16w ..
// 16w + 15 of a key tile in shared memory (k_tile / v_tile: swizzled 128-byte rows), its bias piece `bias` (n-tiles 0
// and 1 of the slice; −∞ for masked keys). mma.sync m16n8k16 on ldmatrix'd fragments, in two halves that run beside
// the tile's two wgmma groups: scores (S = bias + Q·Kᵀ, 8 mmas) and the softmax of these 16 keys into P's fragment;
// then O = P·V (8 mmas) and (O, row max, partial row sum) into `slice` ([value][lane], the merge area's layout for
// one warp).
struct TailStrip {
  uint32_t a[4];
  float row_max[2], row_sum[2];

  template <class T>
  __device__ __forceinline__ void scores(uint32_t q_tail, uint32_t k_tile, const uint4& bias, int w, int lane,
                                         float scale_log2) {
    float s[2][4];
    const uint4 u[1] = {bias};
    scores_from_bias<16>(s, u);
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t qf[4], kf[4];
      // Q: rows 0-7 / 8-15 × dims 16kk + 0-7 / 8-15 (a0a1, a2a3, a4a5, a6a7); K: keys 0-7 × dims 0-7, 8-15 (b0b1 of
      // n-tile 0), keys 8-15 × the same (n-tile 1).
      ldmatrix_x4(qf, q_tail + swz128((lane & 7) + ((lane >> 3) & 1) * 8, 2 * kk + (lane >> 4)));
      ldmatrix_x4(kf, k_tile + swz128(16 * w + (lane & 7) + (lane >> 4) * 8, 2 * kk + ((lane >> 3) & 1)));
      mma_16816<T>(s[0], qf, kf[0], kf[1]);
      mma_16816<T>(s[1], qf, kf[2], kf[3]);
    }
    row_max[0] = row_max[1] = -INFINITY;
    row_sum[0] = row_sum[1] = 0.f;
    float corr[2];
    online_softmax_step(s, row_max, row_sum, corr, scale_log2);
    p_fragment<T>(s, 0, a);
  }

  template <class T>
  __device__ __forceinline__ void values(uint32_t v_tile, int w, int lane, float* slice) const {
#pragma unroll
    for (int dp = 0; dp < kD / 16; ++dp) {
      // V: keys 0-7 / 8-15 × dims 16dp + 0-7 (b0b1, b2b3 of dim-tile 2dp), then × dims 8-15 (dim-tile 2dp + 1).
      uint32_t vf[4];
      ldmatrix_x4_trans(vf, v_tile + swz128(16 * w + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * dp + (lane >> 4)));
      float o0[4] = {0.f, 0.f, 0.f, 0.f}, o1[4] = {0.f, 0.f, 0.f, 0.f};
      mma_16816<T>(o0, a, vf[0], vf[1]);
      mma_16816<T>(o1, a, vf[2], vf[3]);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        slice[(4 * (2 * dp) + e) * 32 + lane] = o0[e];
        slice[(4 * (2 * dp + 1) + e) * 32 + lane] = o1[e];
      }
    }
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      slice[(32 + rr) * 32 + lane] = row_max[rr];
      slice[(34 + rr) * 32 + lane] = row_sum[rr];
    }
  }
};

// The fold warp of an inline-tail CTA (q, h, b): waits for the CTA's strips, merges them (warpgroup 0's four, then
// warpgroup 1's, each in key order) into one partial, publishes it in p.tail_ws at part q and counts in; the last of
// the (sequence, head)'s parts resets the count and folds all parts in CTA order (deterministic) into the partial
// tile's rows. It runs beside the walk (the warpgroups only arrive at barrier 3 after their strips and go on), so its
// chain must end before the walk does: the merge issues its shared-memory loads together (the factors first, then
// every value of every slice), a part is stored compact (O row-major [16][64], then (max, row sum) per row), and the
// fold loads everything a lane needs in one round.
// Part layout (floats): O[r][c] at 64r + c, max at kPartML + 2r, row sum at kPartML + 2r + 1 (rows r < 16).
constexpr int kPartML = kInlineRows * kD;
template <class T>
__device__ __forceinline__ void inline_tail_fold(const FlashParams& p, unsigned char* smem, int q, int h, int b,
                                                 int seq0, int L, int lane) {
  const InlineTail tail(L);
  // No strips in this CTA, or a shape the host's rule excludes (the compute threads trap): they do not arrive.
  if (!tail.fits || !tail.strips(q, 0)) return;
#if defined(LAYOUTRT_ATTENTION_TRACE)
  unsigned long long* const rec = trace_record(lane);
  if (rec) rec[kTraceId] = attention_trace_id(q, h, b, 2, true);
#endif
  LRT_TRACE(rec, kTracePdlWait);
  strips_wait();
  LRT_TRACE(rec, kTracePrologue);

  // Merge: rows g, g + 8 of this lane, 8 or 4 slices (predicated, unrolled: every load of a phase in flight at once).
  const float* slices = reinterpret_cast<const float*>(smem + kOffSlices) + lane;
  const int n_slices = tail.strips(q, 1) ? 8 : 4;
  float f[8][2], row_max[2], row_sum[2];
  {
    float m[8][2];
#pragma unroll
    for (int sl = 0; sl < 8; ++sl)
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) m[sl][rr] = sl < n_slices ? slices[sl * kSliceFloats + (32 + rr) * 32] : -INFINITY;
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float M = -INFINITY;
#pragma unroll
      for (int sl = 0; sl < 8; ++sl) M = fmaxf(M, m[sl][rr]);
      const float m_scaled = scaled_max(M, p.scale_log2);
      row_max[rr] = M;
      row_sum[rr] = 0.f;
#pragma unroll
      for (int sl = 0; sl < 8; ++sl) {
        f[sl][rr] = sl < n_slices ? max_shift_factor(m[sl][rr], M, m_scaled, p.scale_log2) : 0.f;
        row_sum[rr] += sl < n_slices ? f[sl][rr] * slices[sl * kSliceFloats + (34 + rr) * 32] : 0.f;
      }
    }
  }
  // The row sums of the quad (each lane held a partial one), then O: value (n, e) of row g + 8·(e / 2), column
  // 8n + 2·(lane mod 4) + (e mod 2).
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    row_sum[rr] += __shfl_xor_sync(0xffffffffu, row_sum[rr], 1);
    row_sum[rr] += __shfl_xor_sync(0xffffffffu, row_sum[rr], 2);
  }
  LRT_TRACE(rec, kTraceFirstTile);
  const int pair = b * p.heads + h, g = lane >> 2, tq = lane & 3;
  float* part = p.tail_ws + (int64_t{pair} * p.q_tiles + q) * kTailUnitFloats;
#pragma unroll
  for (int n = 0; n < 8; ++n) {
    float o[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float a = 0.f;
#pragma unroll
      for (int sl = 0; sl < 8; ++sl)
        a += sl < n_slices ? f[sl][e >> 1] * slices[sl * kSliceFloats + (4 * n + e) * 32] : 0.f;
      o[e] = a;
    }
    __stcg(reinterpret_cast<float2*>(part + g * kD + 8 * n + 2 * tq), make_float2(o[0], o[1]));
    __stcg(reinterpret_cast<float2*>(part + (g + 8) * kD + 8 * n + 2 * tq), make_float2(o[2], o[3]));
  }
  if (tq == 0) {
    __stcg(reinterpret_cast<float2*>(part + kPartML + 2 * g), make_float2(row_max[0], row_sum[0]));
    __stcg(reinterpret_cast<float2*>(part + kPartML + 2 * (g + 8)), make_float2(row_max[1], row_sum[1]));
  }
  __threadfence();  // this lane's part is visible device-wide before the count says so
  __syncwarp();
  unsigned last = 0;
  if (lane == 0) last = atomicAdd(p.tail_count + pair, 1u) == static_cast<unsigned>(tail.parts - 1) ? 1u : 0u;
  LRT_TRACE(rec, kTraceTile0);
  if (__shfl_sync(0xffffffffu, last, 0) == 0) {
    LRT_TRACE_END(rec);
    return;
  }
  __threadfence();
  if (lane == 0) p.tail_count[pair] = 0u;  // for the next launch (stream-ordered after this one)

  // The fold: lane = (columns 4c .. 4c + 3, c = lane mod 16) × (rows of parity lane / 16), kFoldRows of its rows per
  // round, every part's O quad and (max, sum) of those rows loaded at once (parts past tail.parts re-read the last and
  // are masked); out = Σ f_t · O_t / Σ f_t · l_t with f_t = 2^(m_t·s − M·s), in part order.
  constexpr int kFoldRows = 3;
  const float* all = p.tail_ws + int64_t{pair} * p.q_tiles * kTailUnitFloats;
  const int c4 = 4 * (lane & 15), parity = lane >> 4, parts = tail.parts, rows = tail.rows;
  T* out = static_cast<T*>(p.out) + int64_t{seq0 + tail.full * kBlockM} * p.hidden + int64_t{h} * kD + c4;
  for (int r0 = parity; r0 < rows; r0 += 2 * kFoldRows) {
    float4 x[kFoldRows][kInlineMaxParts];
    float2 ml[kFoldRows][kInlineMaxParts];
#pragma unroll
    for (int i = 0; i < kFoldRows; ++i) {
      const int r = min(r0 + 2 * i, rows - 1);
#pragma unroll
      for (int t = 0; t < kInlineMaxParts; ++t) {
        const float* u = all + min(t, parts - 1) * kTailUnitFloats;
        x[i][t] = __ldcg(reinterpret_cast<const float4*>(u + r * kD + c4));
        ml[i][t] = __ldcg(reinterpret_cast<const float2*>(u + kPartML + 2 * r));
      }
    }
#pragma unroll
    for (int i = 0; i < kFoldRows; ++i) {
      const int r = r0 + 2 * i;
      if (r >= rows) break;
      float M = -INFINITY;
#pragma unroll
      for (int t = 0; t < kInlineMaxParts; ++t) M = t < parts ? fmaxf(M, ml[i][t].x) : M;
      const float m_scaled = scaled_max(M, p.scale_log2);
      float den = 0.f, a[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int t = 0; t < kInlineMaxParts; ++t) {
        const float ft = t < parts ? max_shift_factor(ml[i][t].x, M, m_scaled, p.scale_log2) : 0.f;
        den += ft * ml[i][t].y;
        a[0] += ft * x[i][t].x;
        a[1] += ft * x[i][t].y;
        a[2] += ft * x[i][t].z;
        a[3] += ft * x[i][t].w;
      }
      const float inv = den > 0.f ? 1.f / den : 0.f;
      *reinterpret_cast<uint2*>(out + int64_t{r} * p.hidden) =
          make_uint2(pack2<T>(a[0] * inv, a[1] * inv), pack2<T>(a[2] * inv, a[3] * inv));
    }
  }
  LRT_TRACE_END(rec);
}

// The kernels' body. kInline: the inline tail's form (two warpgroups + the fold warp, one CTA per SM; the grid is the
// full tiles').
template <class T, int kSplit, bool kInline>
__device__ __forceinline__ void flash_wgmma_body(const FlashParams& p) {
  static_assert(!kInline || kSplit == 2, "the inline tail runs with two warpgroups");
  const int wg = kSplit == 1 ? 0 : static_cast<int>(threadIdx.x) / kThreads;
  const int tid = static_cast<int>(threadIdx.x) % kThreads, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;
  if constexpr (kInline) {
    if (wg == 2) {  // the fold warp
      pdl_wait();
      pdl_trigger();
      extern __shared__ __align__(16) unsigned char smem_raw[];
      const uint32_t raw = smem_u32(smem_raw);
      const int b = blockIdx.z, seq0 = p.seq_begin[b];
      inline_tail_fold<T>(p, smem_raw + (((raw + 1023u) & ~1023u) - raw), blockIdx.x, blockIdx.y, b, seq0,
                          p.seq_begin[b + 1] - seq0, lane);
      return;
    }
  }
#if defined(LAYOUTRT_ATTENTION_TRACE)
  unsigned long long* const rec = trace_record(tid);
#endif
  // Before any read of what earlier kernels wrote. The inline form waits later: it first reads what was written before
  // the kernel before it began (the sequence offsets, key-valid bytes and bias cache), so that a launch resident early
  // (graphs.cu) has them in flight while that kernel ends.
  if constexpr (!kInline) {
    pdl_wait();
    pdl_trigger();
    LRT_TRACE(rec, kTracePdlWait);
  }
  // Tail split (kSplit = 2, p.tail_units > 0; see the header comment): a one-dimensional grid, the full query tiles of
  // every (sequence, head) first, then the tail units. Otherwise (query tile, head, sequence) = blockIdx.
  const bool tail_mode = kSplit == 2 && !kInline && p.tail_units > 0;
  int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, unit = -1;
  if (tail_mode) {
    const int64_t flat = blockIdx.x, mains = int64_t{p.tail_q_main} * p.heads * p.seqs;
    int64_t pair;
    if (flat < mains) {
      qt = static_cast<int>(flat % p.tail_q_main);
      pair = flat / p.tail_q_main;
    } else {
      unit = static_cast<int>((flat - mains) % p.tail_units);
      pair = (flat - mains) / p.tail_units;
    }
    h = static_cast<int>(pair % p.heads);
    b = static_cast<int>(pair / p.heads);
  }
  const int heads = tail_mode ? p.heads : static_cast<int>(gridDim.y);
#if defined(LAYOUTRT_ATTENTION_TRACE)
  if (rec) rec[kTraceId] = attention_trace_id(qt, h, b, wg, unit >= 0);
#endif
  const int seq0 = p.seq_begin[b];
  const int L = p.seq_begin[b + 1] - seq0;
  // The rows anything reads: the sequence's, or its first query_rows (AttentionArgs::query_rows).
  const int Lq = p.query_rows ? min(L, p.query_rows[b]) : L;
  if (tail_mode) {
    // A main CTA takes a full tile of those rows; the units take the partial tile past the last full one, if any.
    const int full = Lq / kBlockM;
    if (unit < 0 ? qt >= full : Lq - full * kBlockM <= 0) return;
    if (unit >= 0) qt = full;
  } else if (qt * kBlockM >= L || (p.query_rows && qt * kBlockM >= p.query_rows[b])) {
    return;  // whole CTA: past this sequence's end, or past the queries anything reads (AttentionArgs::query_rows)
  }
  const int q0 = qt * kBlockM;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  unsigned char* smem = smem_raw + (base - raw);

  const int H = p.hidden;
  const int64_t ld = 3 * int64_t{H};
  const T* gQ = head_q<T>(p, seq0, h, kD);
  const T* gK = gQ + H, *gV = gQ + 2 * int64_t{H};
  const int num_tiles = (L + kBN - 1) / kBN;
  const uint4* gBias = p.bias_cache + cache_block(b, h, heads, qt, 0, p.q_tiles, p.k_blocks);

  const uint32_t kv_base = base + kOffKV + wg * kKVBytes;  // this warpgroup's K [2], V [2]
  // This warpgroup's key tiles: wg, wg + kSplit, ...; i-th of them in buffer i mod 2.
  const int my_tiles = num_tiles > wg ? (num_tiles - wg + kSplit - 1) / kSplit : 0;
  // Copies: thread tid moves chunk c0 of rows r0 + 16·it (it < 4) of every 64-row tile.
  const int r0 = tid >> 3, c0 = tid & 7;
  // The key-valid bytes of rows r0 + 16·it of key tile `tile` (0 past the sequence's end), loaded one iteration before
  // valid_bits turns them into the copy mask: consumed at once, their global-load latency stalled every iteration
  // (ncu stall sampling, H200: the comparison was the kernel's hottest instruction, 9 % of samples at B = 32).
  auto load_valid = [&](int tile, uint8_t (&raw)[4]) {
#pragma unroll
    for (int it = 0; it < 4; ++it) {
      const int j = tile * kBN + r0 + 16 * it;
      raw[it] = j < L ? p.key_valid[seq0 + j] : uint8_t{0};
    }
  };
  auto valid_bits = [](const uint8_t (&raw)[4]) {  // bit it: row r0 + 16·it is a valid key of the sequence
    uint32_t bits = 0;
#pragma unroll
    for (int it = 0; it < 4; ++it)
      if (raw[it] != 0) bits |= 1u << it;
    return bits;
  };
  auto load_kv = [&](int tile, int buf, uint32_t bits) {
    const int64_t row0 = int64_t{tile} * kBN;
#pragma unroll
    for (int it = 0; it < 4; ++it) {
      const int r = r0 + 16 * it;
      const bool ok = (bits >> it) & 1u;
      const int64_t off = (row0 + r) * ld + c0 * 8;
      const uint32_t dst = swz128(r, c0);
      cp_async_16(kv_base + buf * kTileBytes + dst, ok ? gK + off : gK, ok);
      cp_async_16(kv_base + (2 + buf) * kTileBytes + dst, ok ? gV + off : gV, ok);
    }
  };
  // The bias pieces of this lane for key tile `tile`, straight into registers (they are in fragment order).
  auto load_bias = [&](int tile, uint4 (&u)[kBN / 16]) {
    const uint4* src = gBias + int64_t{tile} * kBiasTileU4;
#pragma unroll
    for (int v = 0; v < kBN / 16; ++v) u[v] = ld_stream(src + cache_piece(warp, v, lane));
  };

  if constexpr (kSplit == 2 && !kInline) {
    if (tail_mode && unit >= 0) {
      LRT_TRACE(rec, kTracePrologue);
      tail_unit<T>(p, unit * kSplit + wg, num_tiles, b * heads + h, h, seq0, Lq - q0, q0, gQ, kv_base,
                   smem + kOffKV + wg * kKVBytes, wg, load_valid, valid_bits, load_kv, load_bias);
      LRT_TRACE_END(rec);
      return;
    }
  }

  // The i-th key tile of this warpgroup's walk. The inline tail rotates the walk to start at the tile of its strips.
  int rot = 0;
  auto tile_at = [&](int i) {
    if constexpr (kInline) {
      const int j = i + rot;
      return wg + kSplit * (j >= my_tiles ? j - my_tiles : j);
    } else {
      return wg + kSplit * i;
    }
  };
  bool strips = false, cta_strips = false;
  uint4 strip_bias = make_uint4(0, 0, 0, 0);
  uint8_t raw0[4], raw_next[4] = {0, 0, 0, 0};  // key-valid bytes of the first tile and of the tile issued next
  uint4 bias[kBN / 16];  // tile t's bias pieces, loaded during the warpgroup's previous iteration
  if constexpr (kInline) {
    const InlineTail tail(L);
    if (!tail.fits) __trap();  // the host chose this form for another shape
    strips = tail.strips(qt, wg);
    cta_strips = tail.strips(qt, 0);
    rot = my_tiles > 0 ? qt % my_tiles : 0;
    if (strips) {  // this warp's bias piece of the partial tile's rows 0 .. 15 against the strips' key tile
      const uint4* tb = p.bias_cache + cache_block(b, h, heads, tail.full, 0, p.q_tiles, p.k_blocks);
      strip_bias = ld_stream(tb + int64_t{wg + 2 * qt} * kBiasTileU4 + cache_piece(0, warp, lane));
    }
    if (my_tiles > 0) {
      load_valid(tile_at(0), raw0);
      load_bias(tile_at(0), bias);
    }
    if (my_tiles > 1) load_valid(tile_at(1), raw_next);
    pdl_wait();
    pdl_trigger();
    LRT_TRACE(rec, kTracePdlWait);
    if (cta_strips && wg == 0) {  // the partial tile's first 16 Q rows (zero past its rows)
      const int r = tid >> 3, q_row = tail.full * kBlockM + r;
      const bool in = r < tail.rows;
      cp_async_16(base + kOffTailQ + swz128(r, c0), gQ + int64_t{in ? q_row : 0} * ld + c0 * 8, in);
    }
  }

  {  // prologue: the Q tile (rows past the end zero-filled; warpgroup 0) and each warpgroup's first key tile
    const int nq = min(kBlockM, L - q0);
    if (wg == 0) {
#pragma unroll
      for (int it = 0; it < 4; ++it) {
        const int r = r0 + 16 * it;
        const bool in = r < nq;
        cp_async_16(base + kOffQ + swz128(r, c0), gQ + int64_t{in ? q0 + r : q0} * ld + c0 * 8, in);
      }
    }
    if (my_tiles > 0) {
      if constexpr (!kInline) load_valid(tile_at(0), raw0);
      load_kv(tile_at(0), 0, valid_bits(raw0));
    }
    cp_async_commit();
  }
  if constexpr (!kInline) {
    if (my_tiles > 1) load_valid(tile_at(1), raw_next);
    if (my_tiles > 0) load_bias(tile_at(0), bias);
  }
  if constexpr (kSplit > 1) {  // Q (copied by warpgroup 0) visible to every warpgroup
    cp_async_wait_all();
    fence_proxy_async();
    compute_sync<kInline>();
  }
  LRT_TRACE(rec, kTracePrologue);

  float o[8][4];
#pragma unroll
  for (int n = 0; n < 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
  const uint64_t desc_q = tile_desc(base + kOffQ);

  if constexpr (kInline) {
    if (cta_strips && my_tiles == 0) strips_arrive();
  }
  for (int i = 0; i < my_tiles; ++i) {
    const int buf = i & 1, t = tile_at(i);
    cp_async_wait_all();  // tile t (and, at i = 0, Q) has landed
    fence_proxy_async();
    wg_barrier<kSplit>(wg);  // visible to the warpgroup's wgmma; the other buffer (previous tile) is no longer read
    if (i == 0) LRT_TRACE(rec, kTraceFirstTile);
    if (i + 1 < my_tiles) {
      load_kv(tile_at(i + 1), buf ^ 1, valid_bits(raw_next));
      cp_async_commit();
    }
    if (i + 2 < my_tiles) load_valid(tile_at(i + 2), raw_next);

    // S = bias block, then S += Q · Kᵀ.
    float s[8][4];
    scores_from_bias<kBN>(s, bias);
    if (i + 1 < my_tiles) load_bias(tile_at(i + 1), bias);
    const uint32_t k_smem = kv_base + buf * kTileBytes, v_smem = kv_base + (2 + buf) * kTileBytes;
    TailStrip strip;
    tile_step<T>(
        s, o, row_max, row_sum, desc_q, tile_desc(k_smem), tile_desc(v_smem), p.scale_log2,
        [&] {
          if constexpr (kInline) {
            if (i == 0 && strips) strip.scores<T>(base + kOffTailQ, k_smem, strip_bias, warp, lane, p.scale_log2);
          }
        },
        [&] {
          if constexpr (kInline) {
            if (i == 0 && strips)
              strip.values<T>(v_smem, warp, lane,
                              reinterpret_cast<float*>(smem + kOffSlices) + (4 * wg + warp) * kSliceFloats);
          }
        });
    if constexpr (kInline) {
      if (i == 0 && cta_strips) strips_arrive();  // the slices are written (or this warpgroup has none)
    }
    if (i < kAttentionTraceTiles) LRT_TRACE(rec, kTraceTile0 + i);
  }

  compute_sync<kInline>();  // every warp's last wgmma (reading Q, K, V) has completed
  LRT_TRACE(rec, kTraceWalkEnd);
  if constexpr (kSplit > 1) {
    // Merge: warpgroup w (1 .. kSplit − 1) leaves (O, max, partial sum) in warpgroup w − 1's K/V buffers, free once
    // every wgmma has completed ([value][thread], no bank conflicts); warpgroup 0 rescales both sides to the common
    // max (a side whose max is −∞ contributes 0) and adds.
    float* merge = reinterpret_cast<float*>(smem + kOffKV);
    if (wg > 0) {
      float* m = merge + (wg - 1) * (kKVBytes / 4) + tid;
#pragma unroll
      for (int n = 0; n < 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) m[(4 * n + e) * kThreads] = o[n][e];
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        m[(32 + rr) * kThreads] = row_max[rr];
        m[(34 + rr) * kThreads] = row_sum[rr];
      }
    }
    compute_sync<kInline>();
    if (wg > 0) {
      LRT_TRACE_END(rec);
      return;
    }
#pragma unroll
    for (int w = 1; w < kSplit; ++w) {
      const float* m = merge + (w - 1) * (kKVBytes / 4) + tid;
      merge_partial(o, row_max, row_sum, [m](int v) { return m[v * kThreads]; }, p.scale_log2);
    }
  }

  // Epilogue (warpgroup 0): normalise, round, stage in the swizzled Q tile (each warp its own 16 rows), 16-byte stores.
  float inv[2];
  inverse_row_sums(row_sum, inv);
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int r = 16 * warp + g + 8 * rr;
      *reinterpret_cast<uint32_t*>(smem + kOffQ + swz128(r, n) + 4 * tq) =
          pack2<T>(o[n][2 * rr] * inv[rr], o[n][2 * rr + 1] * inv[rr]);
    }
  __syncwarp();
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int it = 0; it < 4; ++it) {
    const int i = lane + 32 * it, r = 16 * warp + (i >> 3), c = i & 7;
    if (q0 + r < L)
      *reinterpret_cast<uint4*>(out + int64_t{seq0 + q0 + r} * H + int64_t{h} * kD + c * 8) =
          *reinterpret_cast<const uint4*>(smem + kOffQ + swz128(r, c));
  }
  LRT_TRACE_END(rec);
}
#undef LRT_TRACE
#undef LRT_TRACE_END

#undef LRT_WG_D32
#undef LRT_WG_DOUT

template <class T, int kSplit>
__global__ void __launch_bounds__(kThreads* kSplit, min_ctas<kSplit>()) flash_wgmma_kernel(const FlashParams p) {
  flash_wgmma_body<T, kSplit, false>(p);
}
// The inline form under a name of its own: the CUDA backend's graphs launch it early by that name (backend_cuda.cu
// early_filter; see the header comment, "Launched early").
template <class T>
__global__ void __launch_bounds__(kInlineThreads, 1) flash_wgmma_inline_kernel(const FlashParams p) {
  flash_wgmma_body<T, 2, true>(p);
}

template <class T, int kSplit, bool kInline = false>
void launch(const FlashParams& p, dim3 grid, cudaStream_t stream) {
  void (*kernel)(const FlashParams);
  if constexpr (kInline)
    kernel = flash_wgmma_inline_kernel<T>;
  else
    kernel = flash_wgmma_kernel<T, kSplit>;
  constexpr int smem = kInline ? smem_alloc_inline() : smem_alloc<kSplit>();
  LRT_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  LRT_CUDA(launch_kernel(kernel, grid, dim3(kInline ? kInlineThreads : kThreads * kSplit), smem, stream, p));
}

template <class T>
void launch_split(const FlashParams& p, dim3 grid, int split, cudaStream_t stream) {
  if (split == 2 && p.tail_inline)
    launch<T, 2, true>(p, grid, stream);
  else if (split == 2)
    launch<T, 2>(p, grid, stream);
  else
    launch<T, 1>(p, grid, stream);
}

}  // namespace

bool sm90_flash_built() { return true; }

#if defined(LAYOUTRT_ATTENTION_TRACE)
bool attention_trace_built() { return true; }

void attention_trace_enable(bool on) {
  const unsigned v = on ? 1u : 0u, zero = 0;
  if (on) LRT_CUDA(cudaMemcpyToSymbol(g_trace_count, &zero, sizeof zero));
  LRT_CUDA(cudaMemcpyToSymbol(g_trace_on, &v, sizeof v));
}

std::vector<unsigned long long> attention_trace_read() {
  unsigned n = 0;
  LRT_CUDA(cudaMemcpyFromSymbol(&n, g_trace_count, sizeof n));
  n = n < kTraceMaxRecords ? n : kTraceMaxRecords;
  std::vector<unsigned long long> v(size_t{n} * kAttentionTraceFields);
  if (n > 0) LRT_CUDA(cudaMemcpyFromSymbol(v.data(), g_trace, v.size() * sizeof(unsigned long long)));
  return v;
}
#endif

size_t sm90_flash_smem_bytes(int split) { return split == 2 ? smem_alloc<2>() : smem_alloc<1>(); }

void sm90_flash_attention(const FlashParams& p, dim3 grid, bool bf16, int split, cudaStream_t stream) {
  if (bf16)
    launch_split<__nv_bfloat16>(p, grid, split, stream);
  else
    launch_split<__half>(p, grid, split, stream);
}

}  // namespace layoutrt::cuda
