// Error checking for CUDA runtime / cuBLAS(Lt) calls: every failure becomes a layoutrt::Error (kCuda, or kOutOfMemory
// for allocation failures) naming the call, the file:line and the driver's message. Host-only header.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "layoutrt/error.h"

namespace layoutrt::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  const ErrorCode code = e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kCuda;
  throw_error(code, what, " failed at ", file, ":", line, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

[[noreturn]] inline void throw_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  const ErrorCode code = s == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::kOutOfMemory : ErrorCode::kCuda;
  throw_error(code, what, " failed at ", file, ":", line, ": cuBLAS status ", static_cast<int>(s), " (",
              cublasLtGetStatusString(s), ")");
}

// Whether `stream` is being captured into a CUDA graph (allocations, stream creation and timing must not happen then).
bool stream_capturing(cudaStream_t stream);

// Set LAYOUTRT_CUDA_SYNC_CHECK=1 to synchronise after every kernel launch (pins an asynchronous fault on its kernel).
bool sync_check_enabled();

}  // namespace layoutrt::cuda

#define LRT_CUDA(call)                                                                   \
  do {                                                                                   \
    cudaError_t lrt_e_ = (call);                                                         \
    if (lrt_e_ != cudaSuccess) ::layoutrt::cuda::throw_cuda(lrt_e_, #call, __FILE__, __LINE__); \
  } while (0)

#define LRT_CUBLAS(call)                                                                     \
  do {                                                                                       \
    cublasStatus_t lrt_s_ = (call);                                                          \
    if (lrt_s_ != CUBLAS_STATUS_SUCCESS) ::layoutrt::cuda::throw_cublas(lrt_s_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch errors always; execution errors too when LAYOUTRT_CUDA_SYNC_CHECK=1.
#define LRT_CUDA_LAUNCHED(name)                                                                     \
  do {                                                                                              \
    LRT_CUDA(cudaGetLastError());                                                                   \
    if (::layoutrt::cuda::sync_check_enabled()) LRT_CUDA(cudaDeviceSynchronize());                  \
  } while (0)
