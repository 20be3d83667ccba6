// Host-side queries shared by the CUDA sources: cached attributes of the current device, pointer alignment.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <utility>

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

// A run-time switch that is on unless the environment variable `name` is "0".
inline bool switch_on(const char* name) {
  const char* e = std::getenv(name);
  return !(e && e[0] == '0' && e[1] == '\0');
}

// Programmatic dependent launch (PDL): on devices of compute capability 9.0 and up, the forward's own kernels (the
// LayerNorms, the wgmma attention, the CUTLASS FFN GEMM, the visual rows) are launched with
// cudaLaunchAttributeProgrammaticStreamSerialization, so each may be scheduled while the kernel before it in the stream
// still runs; each waits (griddepcontrol.wait: pdl_wait in pdl.cuh, CUTLASS's wait_on_dependent_grids) before reading
// anything the kernel before it may still write (what was written before that kernel began may be read earlier: the
// attention's metadata and bias cache, the visual rows' parameters) and before any early exit, and lets the next one
// launch early (pdl_trigger).
// LAYOUTRT_PDL=0 launches them plainly (A/B timing, tests); read at every launch, so a test may switch it.
// H200, bench/results/2026-12-02-h200-pdl.md: B = 1 −7 to −14 us in four A/B pairs over two calls (0.643 / 0.639 vs
// 0.650 / 0.648 ms); B = 8 and 32 −1.2 to −3 % in one call, within ±0.7 % in the other. In one-lane forwards the
// LayerNorms' programmatic edges behind cuBLASLt GEMMs fire at the GEMM's launch completion (graphs.cu; B = 1 −10 –
// 12 us), and so do the inline-tail attention's and the visual rows' (backend_cuda.cu early_filter; B = 1 −14 –
// 18 us with im2col beside the text embedding, bench/results/2026-12-04-h200-early-attention.md). Not kept (H200,
// 2026-12-03, bench/results/2026-12-03-h200-pdl-launch-order.md): every programmatic edge moved so (B = 1 +11 – 13 us,
// B = 8 +11 %); cuBLASLt's kernels as programmatic dependents — they do not wait (changed outputs).
inline bool pdl_enabled() {
  return switch_on("LAYOUTRT_PDL") && device_attribute<cudaDevAttrComputeCapabilityMajor>() >= 9;
}

// kernel<<<grid, block, smem, stream>>>(args...), with the programmatic-serialization attribute where pdl_enabled().
template <class... KArgs, class... Args>
inline cudaError_t launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                 Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace layoutrt::cuda
