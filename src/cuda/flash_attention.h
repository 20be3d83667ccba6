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

// AttentionArgs semantics (ops/backend.h), exactly as the CPU twin: needs no scratch (a.scratch is ignored), writes
// only `out` rows that belong to a sequence, columns [h·d, h·d + d) for every head. Throws kInternal when
// !flash_attention_supported(a). Asynchronous on `stream`.
void flash_attention(const AttentionArgs& a, cudaStream_t stream);

}  // namespace layoutrt::cuda
