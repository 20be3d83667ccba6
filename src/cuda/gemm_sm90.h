// Hopper-only fused dense layer (CUTLASS, sm_90a): y = GELU_erf(x · Wᵀ + bias) in one kernel, in configurations that
// linear.cu times per shape (cuBLASLt has no exact-GELU epilogue). Host-only header.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "ops/tensor_view.h"

namespace layoutrt::cuda {

// Whether this build has the Hopper kernels (CUTLASS headers found at configure time).
bool sm90_fused_gemm_built();
// The configurations: count and stable names (recorded in plans), e.g. "coop_256x128_c2x1".
int sm90_gemm_config_count();
const char* sm90_gemm_config_name(int config);
int sm90_gemm_config_by_name(const std::string& name);  // −1 when unknown
// Whether the fused kernel takes these operands: built, device of compute capability 9.0, x [M, K] / W [N, K] /
// y [M, N] one dtype F16 or BF16, K and N multiples of 8, bias F32 [N], every pointer 16-byte aligned. Throws nothing.
bool sm90_gemm_applies(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y);
// y = GELU_erf(x · Wᵀ + bias) in configuration `config`, FP32 accumulate and epilogue, one rounding, for operands that
// sm90_gemm_applies takes. Returns false, having launched nothing, where that configuration cannot implement the
// problem (CUTLASS's can_implement). Throws nothing.
bool sm90_linear_bias_gelu(int config, const TensorView& x, const TensorView& w, const TensorView& bias,
                           const TensorView& y, cudaStream_t stream);
// The configuration when nothing is timed (LAYOUTRT_GEMM_TUNE=0, or first met inside a graph capture).
int sm90_gemm_default_config(int64_t M, int64_t N);

}  // namespace layoutrt::cuda
