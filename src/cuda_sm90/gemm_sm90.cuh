// y = GELU(x · Wᵀ + b) in one kernel on Hopper (sm_90a): CUTLASS 3 TMA + wgmma GEMMs whose epilogue adds the F32
// bias and applies transformers' exact erf GELU in FP32 (GeluPoly below: gelu_poly of src/cuda/gelu_poly.h, the erf
// GELU to ~2e-7 with fewer operations than CUTLASS's erff-based GELU<float>), rounding once to F16/BF16. They replace
// cuBLASLt's plain GEMM + the bias/GELU pass of elementwise.cu (cuBLASLt's own GELU epilogue is the tanh
// approximation), saving the [rows, 3072] write + read + write of the FFN's intermediate activations. linear.cu times
// the configurations per shape (like cuBLASLt's candidates) and records the winner in the plan by name.
//
// Measured and not kept (H200, 2026-12-01, bench/results/2026-12-01-h200-sm90-gemm.md): the same kernels with a plain
// or + bias epilogue, and CUTLASS's stream-K scheduler (128 × 128, 128 × 192, 128 × 256 tiles), timed beside cuBLASLt
// for every linear of the encoder at M = 196 … 22688: cuBLASLt won every plain / + bias shape but one (QKV at M = 709:
// stream-K 10.5 vs 11.5 us, yet the forward at B = 1 0.755 vs 0.734 ms: stream-K clears its barrier workspace with a
// memset before every launch, one more graph node per GEMM), stream-K never won the GELU shapes. For the GELU shapes
// also cooperative 128 × 144 and ping-pong 64 × 144 (132 and 264 tiles at M = 709: one full wave): 18.2 / 18.7 vs
// 13.5 us at M = 709 and about twice the time at large M. Ping-pong 64 × 128 and 128 × 128 lost on an H100
// (2026-11-24-h100-fused-gelu.md). Of the two kept, 128 × 192 wins from M = 709 to 22688 except at some row counts
// (M = 15015, 16177: 256 × 128, 141 vs 145 us) — hence timed per shape rather than a rule by M.
//
// Ping-pong (each consumer warp group a whole tile, one group's epilogue beside the other's main loop) with 128-row
// tiles, added 2026-12-01 (H200, bench/results/2026-12-01-h200-pingpong-gelu.md): 128 × 192 wins from M ≈ 4900 up
// (M = 11344, the B = 32 lane: 106.9 vs 108.1 us cooperative) and 128 × 128 (cluster 2 × 1) at some row counts
// (M = 512, 4324, 7476 – 8192: 73.1 vs 78.2 – 80.4 us at 7476); 64 × 256 never won and is not built. The GELU is still
// not hidden: the same kernels with an identity activation ran M = 11344 in 76.7 us (ping-pong 128 × 192, about
// cuBLASLt's 73 us for the FFN output linear of the same FLOPs) and 90.8 us (cooperative 128 × 192), so the epilogue's
// GELU costs ~17 (cooperative) to ~30 us (ping-pong) there.
//
// The epilogue, 2026-12-02 (H200, bench/results/2026-12-02-h200-epilogue.md). CUTLASS's LinCombPerColBiasEltAct
// spends two FFMA per element on alpha · acc and 0 · beta; the visitor tree GELU(acc + bias) below does not. Per kernel
// at M = 11344 (the B = 32 lane), in the A/B call (new vs the code before, both tuned in the same call): ping-pong
// 128 × 192 with the tree and 64 × 64 epilogue subtiles (half the store / barrier rounds of the auto 64 × 32) 97.8 vs
// 102.8 us; cooperative 128 × 192 (tree alone) 107.5 vs 107.0 — the tree's gain seen for it in the candidate call
// (104.3 vs 107.8) did not repeat, the subtiles are what helps ping-pong (99.8 vs 104.0 there). Cooperative 128 × 192
// with 128 × 64 subtiles wins M = 512 – 2836 by up to 3 % (709: 13.65 vs 13.71 us). Not kept: the polynomial as
// E(u²) + u · O(u²) (two chains of depth 6, so the ping-pong epilogue interleaves four): 107.1 vs 104.0 us.
//
// Thread-block clusters for the 128 × 192 cooperative tile (x or W tiles multicast by TMA to the cluster: 2 × 1, 1 × 2,
// 2 × 2; H200, 2026-12-02, bench/results/2026-12-02-h200-review-clusters.md), timed by the tuner beside these five at
// M = 512 … 11344: at M = 709 11.75 / 11.49 / 11.97 us vs 11.35 (coop_128x192_e128x64), at the B = 32 lane 197 – 222
// vs 181 us (ping_128x192); the 1 × 2 cluster won a few middle row counts (M = 2048, 2836) by 0.2 – 1 %. Not kept:
// the B = 1 GEMM is not bound by the L2 → SM traffic that multicast halves.
//
// What is left at M = 709 (B = 1; H200, 2026-12-02, bench/results/2026-12-02-h200-pdl.md, timed as graphs): cuBLASLt
// runs the same shape without bias / GELU in 7.25 us with 128 × 144 tiles (6 × 22 = 132 CTAs, one per SM), against
// 10.37 us for the best configuration here (96 CTAs). Why our 128 × 144 (above, automatic epilogue subtile) was slower
// than 128 × 192 even at M = 22688 is the open question.
//
// Layouts (row-major torch tensors): x [M, K] = A row-major; W [N, K] = B column-major (K × N); y [M, N] = D
// row-major; bias [N] per column of D. No source C.
//
// This header holds the kernel template and the configuration table; CMake generates one translation unit per dtype and
// configuration (bias_gelu_config.cu.in) that instantiates run_config, so they compile in parallel; gemm_sm90.cu
// dispatches through gemm_sm90_call.h. Built only when the CUTLASS headers are found (CMake: LAYOUTRT_CUTLASS_DIR,
// scripts/get_cutlass.sh) and only for sm_90a.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/epilogue/thread/activation.h"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"
#include "cuda/device_info.h"
#include "cuda/gelu_poly.h"
#include "cuda_sm90/gemm_sm90_call.h"

namespace layoutrt::cuda::sm90 {

using namespace cute;

// The epilogue's activation: gelu_poly (src/cuda/gelu_poly.h: the exact GELU to ~2e-7, a polynomial and one exp2
// instead of erff) on every FP32 element of a fragment.
template <class T>
struct GeluPoly {
  static const bool kIsHeavy = true;
  CUTLASS_HOST_DEVICE T operator()(T const& v) const { return T(gelu_poly(static_cast<float>(v))); }
};
template <class T, int N>
struct GeluPoly<cutlass::Array<T, N>> {
  static const bool kIsHeavy = true;
  CUTLASS_HOST_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& v) const {
    cutlass::Array<T, N> y;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) y[i] = T(gelu_poly(static_cast<float>(v[i])));
    return y;
  }
};

// EpilogueTile: the subtile the epilogue stores per round (CUTLASS's auto choice: 64 × 32 for ping-pong, 128 × 32 for
// cooperative 128-row tiles).
template <class Element, class TileShape, class ClusterShape, class MainloopSchedule, class EpilogueSchedule,
          class EpilogueTile = cutlass::epilogue::collective::EpilogueTileAuto>
struct BiasGeluGemm {
  static constexpr int kAlign = 128 / cutlass::sizeof_bits<Element>::value;  // 8 elements: 16-byte TMA rows
  using LayoutA = cutlass::layout::RowMajor;
  using LayoutB = cutlass::layout::ColumnMajor;
  using LayoutD = cutlass::layout::RowMajor;
  // GELU(acc + bias) as a visitor tree: the F32 bias row broadcast along M, one FADD and the GELU per element (CUTLASS's
  // LinCombPerColBiasEltAct, used before 2026-12-02, computes alpha · acc + beta · C + bias: two FFMA more per element
  // for alpha = 1 and the absent C; see the header comment for what that measured).
  using Bias = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, _1, int64_t>, 4>;
  using AccPlusBias = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::plus, float, float, cutlass::FloatRoundStyle::round_to_nearest>,
      cutlass::epilogue::fusion::Sm90AccFetch, Bias>;
  using Fusion = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<GeluPoly, Element, float, cutlass::FloatRoundStyle::round_to_nearest>,
      AccPlusBias>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape, EpilogueTile, float, float, void,
      LayoutD, kAlign, Element, LayoutD, kAlign, EpilogueSchedule, Fusion>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA, kAlign, Element, LayoutB, kAlign, float,
      TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const GemmCall& c) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideC = typename Kernel::StrideC;
    using StrideD = typename Kernel::StrideD;
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {c.M, c.N, c.K, 1},
        {static_cast<const Element*>(c.x), cutlass::make_cute_packed_stride(StrideA{}, make_shape(c.M, c.K, 1)),
         static_cast<const Element*>(c.w), cutlass::make_cute_packed_stride(StrideB{}, make_shape(c.N, c.K, 1))},
        {{},
         nullptr,
         cutlass::make_cute_packed_stride(StrideC{}, make_shape(c.M, c.N, 1)),
         static_cast<Element*>(c.y),
         cutlass::make_cute_packed_stride(StrideD{}, make_shape(c.M, c.N, 1))}};
    args.epilogue.thread = {{{}, {c.bias}, {}}, {}};  // GELU(acc + bias): only the bias pointer is an argument
    int dev = 0;
    cudaGetDevice(&dev);
    args.hw_info.device_id = dev;
    args.hw_info.sm_count = c.sm_count;
    return args;
  }

  // False, having launched nothing, where CUTLASS cannot implement the problem.
  static bool run(const GemmCall& c) {
    const typename Gemm::Arguments args = arguments(c);
    Gemm gemm;
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) return false;
    if (Gemm::get_workspace_size(args) != 0) return false;  // the persistent schedules used here need none
    if (gemm.initialize(args, nullptr, c.stream) != cutlass::Status::kSuccess) return false;
    return gemm.run(c.stream, nullptr, pdl_enabled()) == cutlass::Status::kSuccess;
  }
};

// The configurations, in the order of kConfigNames (gemm_sm90.cu): cooperative (two consumer warp groups share a tile
// and both then run the epilogue) and ping-pong (each consumer warp group its own tile, the groups' main loops taking
// turns), CUTLASS's persistent tile scheduler; tile M × N × 64, cluster.
template <Elem kElem, int kConfig>
bool run_config(const GemmCall& c) {
  using Element = std::conditional_t<kElem == Elem::kF16, cutlass::half_t, cutlass::bfloat16_t>;
  using Coop = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
  using CoopEpi = cutlass::epilogue::TmaWarpSpecializedCooperative;
  using Ping = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
  using PingEpi = cutlass::epilogue::TmaWarpSpecialized;
  using E64x64 = Shape<_64, _64>;
  if constexpr (kConfig == 0) {
    return BiasGeluGemm<Element, Shape<_256, _128, _64>, Shape<_2, _1, _1>, Coop, CoopEpi>::run(c);
  } else if constexpr (kConfig == 1) {
    return BiasGeluGemm<Element, Shape<_128, _192, _64>, Shape<_1, _1, _1>, Coop, CoopEpi>::run(c);
  } else if constexpr (kConfig == 2) {
    return BiasGeluGemm<Element, Shape<_128, _192, _64>, Shape<_1, _1, _1>, Ping, PingEpi, E64x64>::run(c);
  } else if constexpr (kConfig == 3) {
    return BiasGeluGemm<Element, Shape<_128, _128, _64>, Shape<_2, _1, _1>, Ping, PingEpi, E64x64>::run(c);
  } else if constexpr (kConfig == 4) {
    return BiasGeluGemm<Element, Shape<_128, _192, _64>, Shape<_1, _1, _1>, Coop, CoopEpi, Shape<_128, _64>>::run(c);
  } else {
    static_assert(kConfig < 0, "a configuration below kConfigs without its case here");
    return false;
  }
}

}  // namespace layoutrt::cuda::sm90
