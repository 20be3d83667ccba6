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
                                                     "ping_128x128_c2x1", "coop_128x192_e128x64", "coop_128x144_r"};
static_assert(kConfigNames[sm90::kConfigs - 1] != nullptr, "a configuration of gemm_sm90_call.h's kConfigs unnamed");

constexpr bool same_name(const char* a, const char* b) { return *a == *b && (*a == '\0' || same_name(a + 1, b + 1)); }
// The configurations sm90_gemm_default_config picks from.
constexpr int kPing128x192 = 2, kCoop128x192E64 = 4, kCoop128x144R = 5;
static_assert(same_name(kConfigNames[kPing128x192], "ping_128x192") &&
                  same_name(kConfigNames[kCoop128x192E64], "coop_128x192_e128x64") &&
                  same_name(kConfigNames[kCoop128x144R], "coop_128x144_r"),
              "sm90_gemm_default_config's indices out of step with kConfigNames");

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
// 2026-12-01-h200-pingpong-gelu.md, 2026-12-02-h200-wgmma-144.md): ping-pong 128 × 192 at two or more waves of
// 256 × 128 tiles (it beat the cooperative 256 × 128 tile at every M from 4324 to 11344 timed on an H200); below that
// whichever of the cooperative 128 × 144 (register epilogue) and 128 × 192 (128 × 64 epilogue subtiles) tiles fills
// its waves better (M = 709, N = 3072: 6 × 22 = 132 tiles of 128 × 144, one full wave, 9.44 vs 10.29 us; M = 1024:
// 176 vs 128 tiles, 15.6 vs 10.8 us); 128 × 144 on a tie (M = 512: 8.4 vs 10.2 us).
int sm90_gemm_default_config(int64_t M, int64_t N) {
  int sms = device_attribute<cudaDevAttrMultiProcessorCount>();
  if (sms <= 0) sms = 132;
  auto tiles = [&](int64_t tm, int64_t tn) { return ((M + tm - 1) / tm) * ((N + tn - 1) / tn); };
  if (tiles(256, 128) >= 2 * int64_t{sms}) return kPing128x192;
  // The fraction of the SMs' tile slots a tile count fills over its waves.
  auto fill = [&](int64_t t) { return static_cast<double>(t) / static_cast<double>(((t + sms - 1) / sms) * sms); };
  return fill(tiles(128, 144)) >= fill(tiles(128, 192)) ? kCoop128x144R : kCoop128x192E64;
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
