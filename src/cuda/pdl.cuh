// Device side of programmatic dependent launch (host side: device_info.h pdl_enabled / launch_kernel).
#pragma once

namespace layoutrt::cuda {

// Programmatic dependent launch (device_info.h pdl_enabled): wait for the kernel before this one to complete and
// flush its writes (a no-op when not launched that way), and let the kernel after this one launch now.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// A hint for a kernel that waits (pdl_wait): up to four byte ranges, e.g. the weights of the GEMMs after it, to pull
// into L2 while it waits. Each range 16-byte aligned, a multiple of 16 bytes; nullptr / 0: none.
struct L2Hint {
  static constexpr int kRanges = 4;
  const char* p[kRanges] = {};
  unsigned long long n[kRanges] = {};
};

// This CTA's share of [p, p + bytes) (gridDim.x consecutive shares, 16-byte multiples), prefetched into L2 with
// cp.async.bulk.prefetch.L2 (sm_90 and up; nothing before): no completion, no ordering, no effect on results.
__device__ __forceinline__ void l2_prefetch_range(const char* p, unsigned long long bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (bytes == 0) return;
  const unsigned long long per = ((bytes + gridDim.x - 1) / gridDim.x + 15) & ~15ull;
  const unsigned long long end = min(bytes, (blockIdx.x + 1ull) * per);
  for (unsigned long long at = blockIdx.x * per; at < end; at += 16384) {
    const unsigned size = static_cast<unsigned>(min(16384ull, end - at));
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p + at), "r"(size) : "memory");
  }
#endif
}
// The hint's ranges, by the CTA's first thread.
__device__ __forceinline__ void l2_prefetch_share(const L2Hint& h) {
  if (threadIdx.x != 0) return;
#pragma unroll
  for (int i = 0; i < L2Hint::kRanges; ++i) l2_prefetch_range(h.p[i], h.n[i]);
}

}  // namespace layoutrt::cuda
