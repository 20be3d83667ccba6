// y = GELU(x · Wᵀ + b) in one kernel on Hopper (sm_90a): a CUTLASS 3 TMA + wgmma GEMM whose epilogue adds the F32
// bias and applies transformers' exact erf GELU in FP32 (GeluPoly below: gelu_poly of src/cuda/gelu_poly.h, the erf
// GELU to ~2e-7 with fewer operations than CUTLASS's erff-based GELU<float>; GELU_taylor would be the tanh form),
// rounding once to F16/BF16. It replaces cuBLASLt's plain
// GEMM + the bias/GELU pass of elementwise.cu (cuBLASLt's own GELU epilogue is the tanh approximation), saving the
// [rows, 3072] write + read + write of the FFN's intermediate activations.
//
// Layouts (row-major torch tensors): x [M, K] = A row-major; W [N, K] = B column-major (K × N); y [M, N] = D
// row-major; bias [N] per column of D. No source C (beta = 0).
//
// This header holds the kernel template; bias_gelu_f16.cu / bias_gelu_bf16.cu instantiate it (two translation units
// compile in parallel), gemm_bias_gelu.cu dispatches. Built only when the CUTLASS headers are found (CMake: LAYOUTRT_CUTLASS_DIR, scripts/get_cutlass.sh) and only for
// sm_90a; linear.cu calls it for F16/BF16 GELU linears on compute capability 9.0 and falls back to the two-pass path
// wherever it declines (returns false).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/epilogue/thread/activation.h"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"
#include "cuda/gelu_poly.h"


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

template <class Element, class TileShape, class ClusterShape, class MainloopSchedule, class EpilogueSchedule>
struct BiasGeluGemm {
  static constexpr int kAlign = 128 / cutlass::sizeof_bits<Element>::value;  // 8 elements: 16-byte TMA rows
  using LayoutA = cutlass::layout::RowMajor;
  using LayoutB = cutlass::layout::ColumnMajor;
  using LayoutD = cutlass::layout::RowMajor;
  using Fusion = cutlass::epilogue::fusion::LinCombPerColBiasEltAct<GeluPoly, Element, float,
                                                                    float /* bias */, Element, float>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutD, kAlign, Element, LayoutD, kAlign,
      EpilogueSchedule, Fusion>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA, kAlign, Element, LayoutB, kAlign, float,
      TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static bool run(const void* x, const void* w, const float* bias, void* y, int M, int N, int K, cudaStream_t stream) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideC = typename Kernel::StrideC;
    using StrideD = typename Kernel::StrideD;
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {M, N, K, 1},
        {static_cast<const Element*>(x), cutlass::make_cute_packed_stride(StrideA{}, make_shape(M, K, 1)),
         static_cast<const Element*>(w), cutlass::make_cute_packed_stride(StrideB{}, make_shape(N, K, 1))},
        {{},
         nullptr,
         cutlass::make_cute_packed_stride(StrideC{}, make_shape(M, N, 1)),
         static_cast<Element*>(y),
         cutlass::make_cute_packed_stride(StrideD{}, make_shape(M, N, 1))}};
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    args.epilogue.thread.bias_ptr = bias;
    Gemm gemm;
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) return false;
    if (Gemm::get_workspace_size(args) != 0) return false;  // the schedules used here need none
    if (gemm.initialize(args, nullptr, stream) != cutlass::Status::kSuccess) return false;
    return gemm.run(stream) == cutlass::Status::kSuccess;
  }
};

// The configurations (see gemm_bias_gelu.cu for the choice): a schedule family × large / small M.
enum Config : int { kCoopLarge, kPingpongLarge, kPingpongSmall, kCoopSmall };

template <class Element>
bool run_config(int config, const void* x, const void* w, const float* bias, void* y, int M, int N, int K,
                cudaStream_t stream) {
  using Coop = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
  using CoopEpi = cutlass::epilogue::TmaWarpSpecializedCooperative;
  using Pp = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
  using PpEpi = cutlass::epilogue::TmaWarpSpecialized;
  switch (config) {
    case kCoopLarge:
      return BiasGeluGemm<Element, Shape<_256, _128, _64>, Shape<_2, _1, _1>, Coop, CoopEpi>::run(x, w, bias, y, M, N,
                                                                                                  K, stream);
    case kPingpongLarge:
      return BiasGeluGemm<Element, Shape<_128, _128, _64>, Shape<_2, _1, _1>, Pp, PpEpi>::run(x, w, bias, y, M, N, K,
                                                                                              stream);
    case kPingpongSmall:
      return BiasGeluGemm<Element, Shape<_64, _128, _64>, Shape<_1, _1, _1>, Pp, PpEpi>::run(x, w, bias, y, M, N, K,
                                                                                             stream);
    case kCoopSmall:  // one wave at M = 709, N = 3072: 6 × 16 tiles
      return BiasGeluGemm<Element, Shape<_128, _192, _64>, Shape<_1, _1, _1>, Coop, CoopEpi>::run(x, w, bias, y, M, N,
                                                                                                  K, stream);
    default: return false;
  }
}

bool run_f16(int config, const void* x, const void* w, const float* bias, void* y, int M, int N, int K,
             cudaStream_t stream);
bool run_bf16(int config, const void* x, const void* w, const float* bias, void* y, int M, int N, int K,
              cudaStream_t stream);

}  // namespace layoutrt::cuda::sm90
