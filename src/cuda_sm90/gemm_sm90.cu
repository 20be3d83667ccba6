// Dispatch of the Hopper fused GEMM + bias + GELU (gemm_sm90.cuh): configuration names, the operand checks, dtypes.
// Built only when the CUTLASS headers are found (CMake: LAYOUTRT_CUTLASS_DIR, scripts/get_cutlass.sh) and only for
// sm_90a; linear.cu times the configurations for F16/BF16 GELU linears wherever sm90_gemm_applies.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "cuda/device_info.h"
#include "cuda/gemm_sm90.h"
#include "cuda_sm90/gemm_sm90_call.h"

namespace layoutrt::cuda {
namespace {

// In the order of sm90::run_config's cases.
constexpr const char* kConfigNames[sm90::kConfigs] = {"coop_256x128_c2x1", "coop_128x192", "ping_128x192",
                                                     "ping_128x128_c2x1", "coop_128x192_e128x64"};
static_assert(kConfigNames[sm90::kConfigs - 1] != nullptr, "a configuration of gemm_sm90_call.h's kConfigs unnamed");

// run_config<kElem, config> for a run-time configuration index (each instantiated in its own translation unit).
template <sm90::Elem kElem, int... kConfig>
bool run_index(int config, const sm90::GemmCall& c, std::integer_sequence<int, kConfig...>) {
  bool ran = false;
  (void)((config == kConfig && (ran = sm90::run_config<kElem, kConfig>(c), true)) || ...);
  return ran;
}

}  // namespace

bool sm90_fused_gemm_built() { return true; }

int sm90_gemm_config_count() { return sm90::kConfigs; }

const char* sm90_gemm_config_name(int config) {
  return config >= 0 && config < sm90::kConfigs ? kConfigNames[config] : "?";
}

int sm90_gemm_config_by_name(const std::string& name) {
  for (int i = 0; i < sm90::kConfigs; ++i)
    if (name == kConfigNames[i]) return i;
  return -1;
}

// Measured on an H100 / H200 (bench/results/2026-11-24-h100-fused-gelu.md, 2026-12-01-h200-split-coop192.md,
// 2026-12-01-h200-pingpong-gelu.md): ping-pong 128 × 192 at two or more waves of 256 × 128 tiles (it beat the
// cooperative 256 × 128 tile at every M from 4324 to 11344 timed on an H200), the cooperative 128 × 192 tile below
// (M = 709, N = 3072: 6 × 16 tiles, one wave).
int sm90_gemm_default_config(int64_t M, int64_t N) {
  int sms = device_attribute<cudaDevAttrMultiProcessorCount>();
  if (sms <= 0) sms = 132;
  const int64_t tiles = ((M + 255) / 256) * ((N + 127) / 128);
  return tiles >= 2 * int64_t{sms} ? 2 : 1;
}

bool sm90_gemm_applies(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& y) {
  if (!device_is_sm90()) return false;
  if (x.rank != 2 || w.rank != 2 || y.rank != 2 || !bias.defined() || bias.rank != 1) return false;
  if (x.dtype != w.dtype || y.dtype != x.dtype || (x.dtype != DType::kF16 && x.dtype != DType::kBF16)) return false;
  if (bias.dtype != DType::kF32) return false;
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  if (M <= 0 || N <= 0 || K <= 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || K % 8 != 0 || N % 8 != 0)
    return false;
  return aligned16(x.data) && aligned16(w.data) && aligned16(y.data) && aligned16(bias.data);
}

bool sm90_linear_bias_gelu(int config, const TensorView& x, const TensorView& w, const TensorView& bias,
                           const TensorView& y, cudaStream_t stream) {
  if (config < 0 || config >= sm90::kConfigs) return false;
  sm90::GemmCall c;
  c.x = x.data;
  c.w = w.data;
  c.bias = bias.as<float>();
  c.y = y.data;
  c.M = static_cast<int>(x.dim(0));
  c.N = static_cast<int>(w.dim(0));
  c.K = static_cast<int>(x.dim(1));
  c.sm_count = device_attribute<cudaDevAttrMultiProcessorCount>();
  c.stream = stream;
  constexpr auto configs = std::make_integer_sequence<int, sm90::kConfigs>{};
  return x.dtype == DType::kF16 ? run_index<sm90::Elem::kF16>(config, c, configs)
                                : run_index<sm90::Elem::kBF16>(config, c, configs);
}

}  // namespace layoutrt::cuda
