// y = GELU(x · Wᵀ + b) in one kernel on Hopper (sm_90a): a CUTLASS 3 TMA + wgmma GEMM whose epilogue adds the F32
// bias and applies transformers' exact erf GELU in FP32 (cutlass::epilogue::thread::GELU<float> is
// 0.5·v·(1 + erf(v/√2)); GELU_taylor would be the tanh form), rounding once to F16/BF16. It replaces cuBLASLt's plain
// GEMM + the bias/GELU pass of elementwise.cu (cuBLASLt's own GELU epilogue is the tanh approximation), saving the
// [rows, 3072] write + read + write of the FFN's intermediate activations.
//
// Layouts (row-major torch tensors): x [M, K] = A row-major; W [N, K] = B column-major (K × N); y [M, N] = D
// row-major; bias [N] per column of D. No source C (beta = 0).
//
// Built only when the CUTLASS headers are found (CMake: LAYOUTRT_CUTLASS_DIR, scripts/get_cutlass.sh) and only for
// sm_90a; linear.cu calls it for F16/BF16 GELU linears on compute capability 9.0 and falls back to the two-pass path
// wherever it declines (returns false).
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda/device_info.h"
#include "cuda/gemm_sm90.h"
#include "cuda_sm90/bias_gelu_gemm.cuh"

namespace layoutrt::cuda {
namespace {

// Which configuration runs, or −1 to decline. Measured on an H100 (fp16 forward at T = 512 + 197, FFN stage of 12
// layers; bench/results/2026-11-24-h100-fused-gelu.md): the cooperative 256 × 128 kernel (two consumer warp groups
// per tile, both then run the epilogue) beats cuBLASLt + the GELU pass at B = 32 (5.12 vs 5.66 ms) and B = 8 (1.55 vs
// 1.59). Below two waves of 256 × 128 tiles (B ≤ 3 at L = 709) the cooperative 128 × 192 kernel runs (M = 709:
// 6 × 16 = 96 tiles, one wave): H200, fp16 forward at B = 1 0.746 ms vs 0.763 with the two-pass path and 0.758 with
// ping-pong 64 × 128; B = 2 1.051 vs 1.065 (the FFN stage 0.383 vs 0.452 ms at B = 1). LAYOUTRT_SM90_GEMM=pingpong
// selects the ping-pong kernels (each warp group owns a tile; its epilogue overlaps the other's mainloop) and
// coop192 the 128 × 192 kernel, for every M; read per call.
int config_for(int M, int N) {
  const char* env = std::getenv("LAYOUTRT_SM90_GEMM");
  const bool pingpong = env && std::strcmp(env, "pingpong") == 0;
  if (env && std::strcmp(env, "coop192") == 0) return sm90::kCoopSmall;
  int sms = device_attribute<cudaDevAttrMultiProcessorCount>();
  if (sms <= 0) sms = 132;
  const int64_t large_m = pingpong ? 128 : 256, tiles = int64_t{(M + large_m - 1) / large_m} * ((N + 127) / 128);
  const bool large = tiles >= 2 * sms;
  if (pingpong) return large ? sm90::kPingpongLarge : sm90::kPingpongSmall;
  return large ? sm90::kCoopLarge : sm90::kCoopSmall;
}

bool is_sm90() {
  return device_attribute<cudaDevAttrComputeCapabilityMajor>() == 9 &&
         device_attribute<cudaDevAttrComputeCapabilityMinor>() == 0;
}

}  // namespace

bool sm90_fused_gemm_built() { return true; }

bool sm90_linear_bias_gelu(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y,
                           cudaStream_t stream) {
  if (!is_sm90()) return false;
  if (x.dtype != w.dtype || y.dtype != x.dtype || (x.dtype != DType::kF16 && x.dtype != DType::kBF16)) return false;
  if (!bias.defined() || bias.dtype != DType::kF32) return false;
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  if (M <= 0 || N <= 0 || K <= 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || K % 8 != 0 || N % 8 != 0)
    return false;
  if (!aligned16(x.data) || !aligned16(w.data) || !aligned16(y.data) || !aligned16(bias.data)) return false;
  const int m = static_cast<int>(M), n = static_cast<int>(N), k = static_cast<int>(K);
  const int config = config_for(m, n);
  if (config < 0) return false;
  return x.dtype == DType::kF16 ? sm90::run_f16(config, x.data, w.data, bias.as<float>(), y.data, m, n, k, stream)
                                : sm90::run_bf16(config, x.data, w.data, bias.as<float>(), y.data, m, n, k, stream);
}

}  // namespace layoutrt::cuda
