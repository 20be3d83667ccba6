// Hopper-only fused dense layers (CUTLASS, sm_90a), used by linear.cu where they apply.
#pragma once

#include <cuda_runtime.h>

#include "ops/tensor_view.h"

namespace layoutrt::cuda {

// y = GELU_erf(x · Wᵀ + bias): x [M, K], W [N, K], y [M, N] F16 or BF16 (one dtype), bias F32 [N]; FP32 accumulate
// and epilogue, one rounding. Returns false, having launched nothing, where it does not apply: built without CUTLASS,
// device not compute capability 9.0, dtypes, K or N not multiples of 8, pointers not 16-byte aligned, M too small to
// gain (see config_for in gemm_bias_gelu.cu), or CUTLASS's can_implement declines. Throws nothing.
bool sm90_linear_bias_gelu(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y,
                           cudaStream_t stream);
// Whether this build has the Hopper kernels (CUTLASS headers found at configure time).
bool sm90_fused_gemm_built();

}  // namespace layoutrt::cuda
