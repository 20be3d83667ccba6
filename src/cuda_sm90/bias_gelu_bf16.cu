// The BF16 instantiations of the Hopper fused GEMM + bias + GELU (see bias_gelu_gemm.cuh).
#include "cuda_sm90/bias_gelu_gemm.cuh"

namespace layoutrt::cuda::sm90 {

bool run_bf16(int config, const void* x, const void* w, const float* bias, void* y, int M, int N, int K,
              cudaStream_t stream) {
  return run_config<cutlass::bfloat16_t>(config, x, w, bias, y, M, N, K, stream);
}

}  // namespace layoutrt::cuda::sm90
