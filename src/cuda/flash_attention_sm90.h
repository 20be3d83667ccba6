// Hopper flash attention on warpgroup MMAs (wgmma, sm_90a; src/cuda_sm90/flash_attention_wgmma.cu), called by
// flash_attention.cu for the bias-cache path (bias mode 3) at head_dim 64 on compute capability 9.0.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <vector>

namespace layoutrt::cuda {
namespace flash {
struct FlashParams;
}

// Whether this build has the wgmma kernel (sm_90a objects are built with the CUTLASS units; see CMakeLists.txt).
bool sm90_flash_built();
// Dynamic shared memory of one CTA (bytes, including the 1024-byte alignment slack of the swizzled tiles) with
// `split` warpgroups (1 or 2) per 64 query rows.
size_t sm90_flash_smem_bytes(int split);
// Launches the kernel on grid (⌈max_seq_len / 64⌉, heads, sequences) for bias mode 3, head_dim 64, F16 (bf16 =
// false) or BF16 activations, with split = 1 or 2 warpgroups sharing each CTA's key tiles (split-KV inside the CTA,
// for small grids). The caller checked the arguments (flash_attention.cu's unsupported_reason) and the device
// (compute capability 9.0). Throws (LRT_CUDA) when the launch fails.
void sm90_flash_attention(const flash::FlashParams& p, dim3 grid, bool bf16, int split, cudaStream_t stream);

// Phase trace of the kernel (diagnostics, recorded only in builds configured with -DLAYOUTRT_ATTENTION_TRACE=ON; see
// scripts/attention_trace.py). While on, thread 0 of every warpgroup of every launch writes one record of
// kAttentionTraceFields 64-bit values: its id (attention_trace_id), SM, the %globaltimer ns at start and end, and the
// SM's clock64 at start, after the PDL wait, after the prologue (the first copies waited for where two warpgroups
// share Q), when the first key tile is visible, after each of the first kAttentionTraceTiles key tiles of its walk,
// after the walk, and at the end (for the tail split's unit warpgroups: start, prologue, end only; for the inline
// tail's fold warp, recorded as a unit of warpgroup 2: start, PDL wait, strips handed over (prologue), the merge's
// factors (first tile), counted in (tile 0), end). Fields never reached stay 0.
constexpr int kAttentionTraceTiles = 6;
enum AttentionTraceField : int {
  kTraceId,
  kTraceSm,
  kTraceStartNs,
  kTraceStart,
  kTracePdlWait,
  kTracePrologue,
  kTraceFirstTile,
  kTraceTile0,
  kTraceWalkEnd = kTraceTile0 + kAttentionTraceTiles,
  kTraceEnd,
  kTraceEndNs,
  kAttentionTraceFields
};
// Query tile, head, sequence (16 bits each), warpgroup (8 bits) and whether it is a tail-split unit (bit 56).
__host__ __device__ constexpr unsigned long long attention_trace_id(int qt, int h, int b, int wg, bool unit) {
  return static_cast<unsigned long long>(qt & 0xffff) | (static_cast<unsigned long long>(h & 0xffff) << 16) |
         (static_cast<unsigned long long>(b & 0xffff) << 32) | (static_cast<unsigned long long>(wg & 0xff) << 48) |
         (static_cast<unsigned long long>(unit ? 1 : 0) << 56);
}
// The id's parts again.
struct AttentionTraceId {
  int qt, h, b, wg;
  bool unit;
};
constexpr AttentionTraceId attention_trace_id_parts(unsigned long long id) {
  return {static_cast<int>(id & 0xffff), static_cast<int>((id >> 16) & 0xffff), static_cast<int>((id >> 32) & 0xffff),
          static_cast<int>((id >> 48) & 0xff), ((id >> 56) & 1) != 0};
}
// Whether this build records the trace (the two calls below do nothing / return nothing otherwise).
bool attention_trace_built();
// On: the record count is reset and the kernels launched from now on (also replayed graphs) record; off: they stop.
// Both synchronous with the device (cudaMemcpyToSymbol).
void attention_trace_enable(bool on);
// The records written since the trace was last turned on (kAttentionTraceFields values each, in arrival order).
std::vector<unsigned long long> attention_trace_read();
// The records as CSV: a header line, then one line per record (the id decoded into qt, h, b, wg, unit).
std::string attention_trace_csv(const std::vector<unsigned long long>& records);

}  // namespace layoutrt::cuda
