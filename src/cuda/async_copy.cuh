// Small PTX wrappers for asynchronous copies into shared memory (cp.async, sm_80+): used by the flash attention
// kernels (through flash_common.cuh) and by the LayerNorm + head kernel (layernorm.cu), which stages the head's
// weights before its PDL wait. Device code only; include from .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace layoutrt::cuda {

// The shared-memory address (32-bit, .shared window) of a generic pointer into shared memory.
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte async copy global → shared; fill = false writes 16 zero bytes and reads nothing (src-size 0).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool fill) {
  const int src_bytes = fill ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
// 4-byte async copy global → shared (for arrays without 16-byte alignment: every load of a loop in flight at once).
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

}  // namespace layoutrt::cuda
