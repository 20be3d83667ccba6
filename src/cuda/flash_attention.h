// Fused relative-bias flash attention (F16 / BF16 activations, tensor cores, FP32 online softmax): a faster twin of
// src/cpu/attention.cpp for the shapes it supports. The CUDA backend's attention() calls flash_attention() when
// flash_attention_supported() says yes and its general kernel (attention.cu) otherwise. Host-only header.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "ops/backend.h"

namespace layoutrt::cuda {

// True when flash_attention() can compute `a` on the current device: qkv and out F16 or BF16 (the same dtype),
// 16-byte aligned, device views; head_dim 32, 64 or 128; F32 bias tables of the documented shapes (bias_x and bias_y
// both or neither); and the CTA's shared memory (tiles + the head's bias rows) within the device's opt-in limit.
bool flash_attention_supported(const AttentionArgs& a);

// Dynamic shared memory one CTA of flash_attention() uses for `a` (tiles + bias tables), for occupancy reasoning.
size_t flash_attention_smem_bytes(const AttentionArgs& a);

// AttentionArgs semantics (ops/backend.h), exactly as the CPU twin: writes only `out` rows that belong to a sequence,
// columns [h·d, h·d + d) for every head. Throws kInternal when !flash_attention_supported(a). Asynchronous on
// `stream`. a.scratch is read only with a bias cache: past the cache, flash_tail_bytes(...) there (counters zeroed
// by flash_prepare_bias) let the wgmma kernel split a partial last query tile over extra CTAs (the tail split;
// tail_ok = false forbids it: launches on concurrent streams sharing the scratch).
void flash_attention(const AttentionArgs& a, cudaStream_t stream, bool tail_ok = true);

// Bytes the tail split needs after the bias cache for num_seqs sequences (arrival counters and one partial per
// (sequence, head, 64-key tile)), and what a workspace should reserve for every batch the automatic choice splits on
// the current device (at most one full-tile CTA per SM: a few MB).
size_t flash_tail_bytes(int64_t num_seqs, int64_t max_seq_len, int num_heads);
size_t flash_tail_reserve_bytes();
// Which form of the tail split flash_attention(a, stream, tail_ok) would launch now: "inline" (the full tiles' CTAs
// compute the partial tile as mma.sync strips), "units" (extra CTAs) or "none" (reads the same environment).
const char* flash_tail_form(const AttentionArgs& a, bool tail_ok = true);

// The precomputed-bias alternative (AttentionArgs::bias_cache). Bytes of the F16 bias blocks of num_seqs sequences of
// at most max_seq_len rows: num_seqs · heads · ⌈max_seq_len/64⌉² · 8 KB; 0 where the cache does not apply (head_dim
// other than 32 or 64).
size_t flash_bias_cache_bytes(int64_t num_seqs, int64_t max_seq_len, int num_heads, int head_dim);

// When `a` has the 1D and 2D tables, flash_attention_supported(a), and a.scratch (device, 16-byte aligned) holds
// flash_bias_cache_bytes(...): queues the kernel that writes every block into a.scratch, sets a.bias_cache to it and
// returns true; flash_attention() then reads the blocks instead of looking the tables up. Otherwise clears
// a.bias_cache and returns false. The blocks stay valid while the metadata and tables of `a` do (one forward).
bool flash_prepare_bias(AttentionArgs& a, cudaStream_t stream);

// Whether the bias-cache path can run on the Hopper wgmma kernel here (built with the sm_90a objects, the current
// device of compute capability 9.0, head_dim 64). LAYOUTRT_FLASH_SHAPE=4w|2w|wg forces a cached kernel shape; wg
// where this is false falls back to the automatic choice. LAYOUTRT_FLASH_SPLIT=1|2 forces the wgmma kernel's
// warpgroups per 64 query rows (default: 2 for grids of at most two CTAs per SM, else 1).
bool flash_wgmma_available(int head_dim);

}  // namespace layoutrt::cuda
