// Host-side queries shared by the CUDA sources: cached attributes of the current device, pointer alignment.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

namespace layoutrt::cuda {

// Attribute kAttr of the current device, cached per device (0 when it cannot be queried; the error is cleared).
template <cudaDeviceAttr kAttr>
inline int device_attribute() {
  static std::atomic<int> cache[64];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  if (dev < 0 || dev >= 64) return 0;
  const int cached = cache[dev].load(std::memory_order_relaxed);  // value + 1; 0: not queried yet
  if (cached > 0) return cached - 1;
  int v = 0;
  if (cudaDeviceGetAttribute(&v, kAttr, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  cache[dev].store(v + 1, std::memory_order_relaxed);
  return v;
}

// Whether the current device is compute capability 9.0 (Hopper: the sm_90a kernels of src/cuda_sm90 run there only).
inline bool device_is_sm90() {
  return device_attribute<cudaDevAttrComputeCapabilityMajor>() == 9 &&
         device_attribute<cudaDevAttrComputeCapabilityMinor>() == 0;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace layoutrt::cuda
