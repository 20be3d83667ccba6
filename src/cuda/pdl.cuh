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

}  // namespace layoutrt::cuda
