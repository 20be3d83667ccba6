// The BF16 instantiations of the Hopper fused GEMM + bias + GELU (see gemm_sm90.cuh).
#include "cuda_sm90/gemm_sm90.cuh"

namespace layoutrt::cuda::sm90 {

bool run_bf16(int config, const GemmCall& c) { return run_config<cutlass::bfloat16_t>(config, c); }

}  // namespace layoutrt::cuda::sm90
