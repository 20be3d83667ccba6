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
// 13.5 us at M = 709 and about twice the time at large M (built then with 64 × 16 wgmmas: see below). Ping-pong
// 64 × 128 and 128 × 128 lost on an H100 (2026-11-24-h100-fused-gelu.md). Of the two kept, 128 × 192 wins from
// M = 709 to 22688 except at some row counts (M = 15015, 16177: 256 × 128, 141 vs 145 us) — hence timed per shape
// rather than a rule by M.
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
// What was left at M = 709 (B = 1; H200, 2026-12-02, bench/results/2026-12-02-h200-pdl.md, timed as graphs): cuBLASLt
// runs the same shape without bias / GELU in 7.25 us with 128 × 144 tiles (6 × 22 = 132 CTAs, one per SM), against
// 10.37 us for the best configuration here (96 CTAs). Why our 128 × 144 (above) was slower than 128 × 192 even at
// M = 22688: CuTe picks the wgmma instruction's N as the largest of its list that divides the tile's N, and 144 is in
// that list only with CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED (CMake defines it since 2026-12-02): without it the tile ran
// nine 64 × 16 × 16 wgmmas per k16 step, re-reading the A tile from shared memory nine times. With 64 × 144 × 16
// (H200, 2026-12-02, bench/results/2026-12-02-h200-wgmma-144.md; the tuner's times, µs at M = 709 / 512 / 1418): the
// register epilogue below (coop_128x144_r) 9.44 / 8.44 / 17.47 against 10.29 / 10.19 / 18.83 for coop_128x192_e128x64,
// CUTLASS's TMA epilogue with the only subtile it admits for N = 144 (128 × 16) 9.73 / 8.69 / 18.10; ping-pong
// 64 × 144 with the register epilogue 10.63 / 8.77 / 21.59; the register epilogue on 128 × 192 10.82 (TMA 128 × 64:
// 10.29) — the three not kept. At two or more waves (M ≥ 2048, and every two-lane shape) 128 × 144 loses to the
// 128 × 192 / 256 × 128 kernels (M = 11344: 231.8 vs 178.6 us for two concurrent copies); the tuner picks per shape.
// Forward at B = 1 (fp16, same call, the tuner choosing among all vs among the five before): 0.646 / 0.647 vs
// 0.660 / 0.657 ms.
//
// Bias-only configurations of these kernels (register epilogue acc + bias) for the QKV, out-projection and FFN output
// linears, so that those boundaries too take part in PDL (H200, 2026-12-03,
// bench/results/2026-12-03-h200-cutlass-bias-pdl.md): at M = 709 QKV 7.09 us (128 × 112) vs cuBLASLt's 6.39,
// out-projection 3.84 (64 × 80, one consumer warp group) vs 3.84, FFN output 10.54 (64 × 96) vs 7.76; cuBLASLt's
// 64 × 72 tile does not build here (the B stage of 72 × 64 elements fails CuTe's stride divisibility: N must be a
// multiple of 16). All three forced: B = 1 0.697 vs 0.642 ms. Not kept.
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

// GELU(acc + bias) stored straight from the accumulator registers (no shared-memory staging, no TMA store): CUTLASS's
// TMA epilogue admits only 16-wide subtiles for 144-wide tiles (a 128 × 48 subtile fails its fragment-size check), nine
// store rounds with a barrier each. Here every warp writes its own rows as soon as its GELU is done. The wgmma
// accumulator fragment gives each lane two adjacent columns of a row per 8-column block (value mode (2, 2, N / 8):
// column pair, row + 8, block); the four lanes of a quad exchange their pairs of two neighbouring blocks (two
// shuffles) so that each lane stores four adjacent columns, 8 bytes (a warp's store: eight rows × 32 bytes, whole
// sectors). Rows past M and columns past N are not written (N a multiple of 8, checked by the dispatcher).
// Interface: CUTLASS's operator-style epilogues (DefaultEpilogue), run in the warp-specialized kernels through
// detail::Sm90TmaWarpSpecializedAdapter.
template <class Element>
class RegisterBiasGeluEpilogue {
 public:
  using EpilogueSchedule = cutlass::epilogue::NoSmemWarpSpecialized;
  using DispatchPolicy = EpilogueSchedule;
  using ThreadEpilogueOp = cutlass::epilogue::thread::LinearCombination<Element, 2, float, float>;
  using ElementOutput = Element;
  using ElementAccumulator = float;
  using ElementCompute = float;
  using ElementScalar = float;
  using ElementC = Element;
  using ElementD = Element;
  using StrideC = cute::Stride<int64_t, cute::Int<1>, int64_t>;
  using StrideD = StrideC;
  using GmemTiledCopyC = void;
  using GmemTiledCopyD = void;
  struct SharedStorage {};
  using TensorStorage = SharedStorage;
  struct Arguments {
    const float* bias = nullptr;
    Element* ptr_D = nullptr;
    int64_t ldd = 0;  // elements between rows of D
  };
  using Params = Arguments;

  template <class ProblemShape>
  static constexpr Params to_underlying_arguments(ProblemShape const&, Arguments const& args, void*) {
    return args;
  }
  template <class ProblemShape>
  static size_t get_workspace_size(ProblemShape const&, Arguments const&) {
    return 0;
  }
  template <class ProblemShape>
  static cutlass::Status initialize_workspace(ProblemShape const&, Arguments const&, void*, cudaStream_t,
                                              cutlass::CudaHostAdapter* = nullptr) {
    return cutlass::Status::kSuccess;
  }
  template <class ProblemShape>
  static bool can_implement(ProblemShape const& problem_shape, Arguments const& args) {
    const auto N = get<1>(problem_shape);
    return args.bias != nullptr && args.ptr_D != nullptr && N % 8 == 0 && args.ldd % 8 == 0 && args.ldd >= N;
  }

  CUTLASS_HOST_DEVICE explicit RegisterBiasGeluEpilogue(Params const& params, SharedStorage const& = SharedStorage())
      : params_(params) {}

  CUTLASS_DEVICE bool is_source_needed() { return false; }

  template <class ProblemShapeMNKL, class BlockShapeMNK, class BlockCoordMNKL, class FrgEngine, class FrgLayout,
            class TiledMma, class ResidueMNK>
  CUTLASS_DEVICE void operator()(ProblemShapeMNKL problem_shape_mnkl, BlockShapeMNK blk_shape_MNK,
                                 BlockCoordMNKL blk_coord_mnkl, cute::Tensor<FrgEngine, FrgLayout> const& acc,
                                 TiledMma tiled_mma, ResidueMNK, int thread_idx, char*) {
    static_assert(is_static<FrgLayout>::value, "accumulator layout must be static");
    static_assert(rank<0>(FrgLayout{}) == 3, "wgmma accumulator values: (column pair, row + 8, 8-column block)");
    static_assert(size<0, 0>(FrgLayout{}) == 2 && size<0, 1>(FrgLayout{}) == 2, "wgmma F32 accumulator layout");
    static_assert(size<0, 2>(FrgLayout{}) % 2 == 0, "8-column blocks are exchanged in pairs");
    const int M = static_cast<int>(get<0>(problem_shape_mnkl));
    const int N = static_cast<int>(get<1>(problem_shape_mnkl));
    const auto m_coord = get<0>(blk_coord_mnkl);
    const auto n_coord = get<1>(blk_coord_mnkl);
    // The coordinates (row, column) of every accumulator value of this thread.
    Tensor cD =
        local_tile(make_identity_tensor(make_shape(M, N)), take<0, 2>(blk_shape_MNK), make_coord(m_coord, n_coord));
    Tensor tCcD = tiled_mma.get_thread_slice(thread_idx).partition_C(cD);
    const int quad = threadIdx.x & 3;
    const bool low = quad < 2, even = (quad & 1) == 0;
    CUTLASS_PRAGMA_UNROLL
    for (int mm = 0; mm < size<1>(acc); ++mm) {
      CUTLASS_PRAGMA_UNROLL
      for (int mn = 0; mn < size<2>(acc); ++mn) {
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < size<0, 2>(acc); j += 2) {
          // This lane's columns c, c + 1 of blocks j and j + 1 (c = 2 · quad within the block).
          const int col0 = get<1>(tCcD(make_coord(make_coord(0, 0, j), mm, mn)));
          const int col1 = get<1>(tCcD(make_coord(make_coord(0, 0, j + 1), mm, mn)));
          const float2 b0 = col0 < N ? __ldg(reinterpret_cast<const float2*>(params_.bias + col0)) : float2{0.f, 0.f};
          const float2 b1 = col1 < N ? __ldg(reinterpret_cast<const float2*>(params_.bias + col1)) : float2{0.f, 0.f};
          CUTLASS_PRAGMA_UNROLL
          for (int h = 0; h < 2; ++h) {
            const uint32_t a = pack(gelu_poly(acc(make_coord(make_coord(0, h, j), mm, mn)) + b0.x),
                                    gelu_poly(acc(make_coord(make_coord(1, h, j), mm, mn)) + b0.y));
            const uint32_t b = pack(gelu_poly(acc(make_coord(make_coord(0, h, j + 1), mm, mn)) + b1.x),
                                    gelu_poly(acc(make_coord(make_coord(1, h, j + 1), mm, mn)) + b1.y));
            // Quad lanes q hold A_q (block j) and B_q (block j + 1). After the exchange with lane q ^ 2, lanes 0 / 1
            // hold A_0, A_2 / A_1, A_3 and lanes 2 / 3 B_0, B_2 / B_1, B_3; after the one with q ^ 1, lane 0 holds
            // A_0 A_1 (columns 0 - 3 of block j), 1 A_2 A_3 (4 - 7), 2 B_0 B_1, 3 B_2 B_3.
            const uint32_t kept = low ? a : b;
            const uint32_t got = __shfl_xor_sync(0xffffffffu, low ? b : a, 2);
            const uint32_t first = low ? kept : got, second = low ? got : kept;
            const uint32_t other = __shfl_xor_sync(0xffffffffu, even ? second : first, 1);
            const uint2 out = even ? make_uint2(first, other) : make_uint2(other, second);
            const auto rc = tCcD(make_coord(make_coord(0, h, j), mm, mn));
            const int row = get<0>(rc);
            const int col = get<1>(rc) - 2 * quad + (low ? 0 : 8) + 4 * (quad & 1);
            if (row < M && col < N)
              *reinterpret_cast<uint2*>(params_.ptr_D + static_cast<int64_t>(row) * params_.ldd + col) = out;
          }
        }
      }
    }
  }

 private:
  CUTLASS_DEVICE static uint32_t pack(float lo, float hi) {
    const Element l(lo), h(hi);
    return uint32_t{reinterpret_cast<const uint16_t&>(l)} | (uint32_t{reinterpret_cast<const uint16_t&>(h)} << 16);
  }
  Params params_;
};

// Builder::CollectiveOp, named only when chosen (std::conditional_t instantiates neither branch's members).
template <class Builder>
struct CollectiveOpOf {
  using type = typename Builder::CollectiveOp;
};

template <class T>
struct TypeIs {
  using type = T;
};

// A tag for BiasGeluGemm's EpilogueTile: the register epilogue above instead of CUTLASS's TMA epilogue.
struct RegisterEpilogue {};

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
  static constexpr bool kRegisterEpilogue = std::is_same_v<EpilogueTile, RegisterEpilogue>;
  using Epilogue = typename std::conditional_t<
      kRegisterEpilogue,
      TypeIs<cutlass::epilogue::collective::detail::Sm90TmaWarpSpecializedAdapter<
          RegisterBiasGeluEpilogue<Element>>>,
      CollectiveOpOf<cutlass::epilogue::collective::CollectiveBuilder<
          cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape, EpilogueTile, float, float,
          void, LayoutD, kAlign, Element, LayoutD, kAlign, EpilogueSchedule, Fusion>>>::type;
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
    typename Gemm::Arguments args{};
    args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args.problem_shape = {c.M, c.N, c.K, 1};
    args.mainloop = {static_cast<const Element*>(c.x),
                     cutlass::make_cute_packed_stride(StrideA{}, make_shape(c.M, c.K, 1)),
                     static_cast<const Element*>(c.w),
                     cutlass::make_cute_packed_stride(StrideB{}, make_shape(c.N, c.K, 1))};
    if constexpr (kRegisterEpilogue) {
      args.epilogue = {c.bias, static_cast<Element*>(c.y), int64_t{c.N}};
    } else {
      args.epilogue = {{},
                       nullptr,
                       cutlass::make_cute_packed_stride(StrideC{}, make_shape(c.M, c.N, 1)),
                       static_cast<Element*>(c.y),
                       cutlass::make_cute_packed_stride(StrideD{}, make_shape(c.M, c.N, 1))};
      args.epilogue.thread = {{{}, {c.bias}, {}}, {}};  // GELU(acc + bias): only the bias pointer is an argument
    }
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
  } else if constexpr (kConfig == 5) {
    return BiasGeluGemm<Element, Shape<_128, _144, _64>, Shape<_1, _1, _1>, Coop, CoopEpi, RegisterEpilogue>::run(c);
  } else {
    static_assert(kConfig < 0, "a configuration below kConfigs without its case here");
    return false;
  }
}

}  // namespace layoutrt::cuda::sm90
