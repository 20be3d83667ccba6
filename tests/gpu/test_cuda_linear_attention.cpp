// The CUDA linear (cuBLASLt) and attention ops against their CPU twins (src/cpu/linear.cpp, src/cpu/attention.cpp) on
// random inputs, for every activation dtype. Outputs are NaN-poisoned before each run so an unwritten element fails.
// F16/BF16 inputs are rounded to the dtype first and the CPU twin gets exactly those values widened to FP32, so the
// only differences measured are the GPU's own arithmetic and its output rounding.
//
// These tests need a GPU: without one they FAIL (cuda_device_available() is asserted), they never skip.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cuda/cuda_ops.h"
#include "cuda/device_info.h"
#include "cuda/gemm_sm90.h"
#include "ops/backend.h"
#include "test_util.h"

namespace layoutrt {
namespace {

// ---- tolerances --------------------------------------------------------------------------------------------------
// u = unit roundoff of the format (half an ulp at 1): F32 2^-24, TF32 2^-11 (10 stored mantissa bits), F16 2^-11,
// BF16 2^-8.
constexpr double kU32 = 5.96e-8, kU16 = 4.88e-4, kUBF16 = 3.91e-3;

// Linear, rel-L2:
//  F32  : both sides accumulate K products in FP32 in different orders. A sequential FP32 sum of K zero-mean terms
//         has a relative rms error of about u·√(K/6) (OpenBLAS's micro-kernel is sequential along K); 3·u·√K covers
//         two such independent errors with ~5x margin (K = 768: 5e-6) and is still ~1e5 below any indexing error.
//  TF32 : each input is rounded to TF32 (u = 2^-11) → each product carries ~√2·u/√3 ≈ 4e-4 relative error, which stays
//         ~4e-4 of the output's rms for zero-mean data (≈1e-3 even if the conversion truncated). 2e-3.
//  F16  : inputs are exact F16 on both sides; FP32 accumulation; the output is rounded to F16 once by the GEMM and once
//         more by bias_activation (rms ≈ 2 × u/√3 ≈ 4e-4). 2e-3.
//  BF16 : the same two roundings with u = 2^-8 (rms ≈ 3.2e-3). 1e-2.
double linear_tol(Precision p, int64_t K) {
  switch (p) {
    case Precision::kFP32: return std::max(1e-6, 3 * kU32 * std::sqrt(static_cast<double>(K)));
    case Precision::kTF32: return 2e-3;
    case Precision::kFP16: return 2e-3;
    case Precision::kBF16: return 1e-2;
    default: return 0;
  }
}
// Attention, rel-L2: F32 differs from the CPU twin only in the order of the d-term dot products, the softmax sum and
// one-ulp exp differences, and the L-term P·V sums (same order on both sides); 3·u·√max(L, d) bounds it with margin.
// F16/BF16: inputs exact on both sides, FP32 inside, one rounding of the output: rms u/√3 (2.8e-4, 2.3e-3) → 2e-3,
// 1e-2.
double attention_tol(DType t, int64_t L, int d) {
  switch (t) {
    case DType::kF32: return std::max(1e-6, 3 * kU32 * std::sqrt(static_cast<double>(std::max<int64_t>(L, d))));
    case DType::kF16: return 2e-3;
    case DType::kBF16: return 1e-2;
    default: return 0;
  }
}
// Max-abs: every element's error is at most a few output roundings / summation errors of the largest magnitudes, so
// max |gpu − cpu| ≤ 4 · tol · max |cpu| (a wrong or unwritten element breaks this by orders of magnitude).
constexpr double kMaxAbsFactor = 4.0;

// ---- helpers -----------------------------------------------------------------------------------------------------
std::unique_ptr<Backend>& cpu() {
  static std::unique_ptr<Backend> be = make_cpu_backend(1);
  return be;
}

// Fails (never skips) the calling test when no CUDA device is visible.
#define REQUIRE_GPU() ASSERT_TRUE(cuda_device_available()) << "these tests need a CUDA device (none is visible)"

// A device buffer owned by the test, freed with its backend.
struct DeviceBuffer {
  Backend* be = nullptr;
  void* p = nullptr;
  size_t bytes = 0;
  DeviceBuffer(Backend& b, size_t n) : be(&b), p(b.allocate(n)), bytes(n) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { be->deallocate(p); }
};

Tensor random_tensor(Shape shape, float lo, float hi, std::mt19937& rng) {
  Tensor t(DType::kF32, std::move(shape));
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.mutable_data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = dist(rng);
    if (v == 0.f) v = 0.5f * hi;  // never zeros
    p[i] = v;
  }
  return t;
}

// The value the GPU sees (rounded to dt) and the same value widened back to FP32 for the CPU twin.
struct Rounded {
  Tensor device_dtype, f32;
};
Rounded round_to(const Tensor& t, DType dt) {
  Rounded r;
  r.device_dtype = dt == DType::kF32 ? t.clone() : t.to(dt);
  r.f32 = r.device_dtype.to(DType::kF32);
  return r;
}

std::unique_ptr<DeviceBuffer> upload(Backend& be, const Tensor& t) {
  auto b = std::make_unique<DeviceBuffer>(be, t.nbytes());
  be.copy_to_device(b->p, t.data(), t.nbytes());
  return b;
}
template <class T>
std::unique_ptr<DeviceBuffer> upload(Backend& be, const std::vector<T>& v) {
  auto b = std::make_unique<DeviceBuffer>(be, std::max<size_t>(1, v.size() * sizeof(T)));
  if (!v.empty()) be.copy_to_device(b->p, v.data(), v.size() * sizeof(T));
  return b;
}
Tensor download(Backend& be, const DeviceBuffer& b, DType dt, Shape shape) {
  Tensor t(dt, std::move(shape));
  be.copy_to_host(t.mutable_data(), b.p, t.nbytes());
  return t.dtype() == DType::kF32 ? t : t.to(DType::kF32);
}
TensorView host_view(Tensor& t) {
  TensorView v;
  v.data = t.mutable_data();
  v.dtype = t.dtype();
  v.device = Device::kCPU;
  v.rank = t.rank();
  for (int i = 0; i < t.rank(); ++i) v.dims[i] = t.dim(i);
  return v;
}
TensorView gpu_view(const DeviceBuffer& b, DType dt, std::initializer_list<int64_t> shape) {
  return TensorView(b.p, dt, Device::kCUDA, shape);
}

double max_abs_of(const Tensor& t) {
  double m = 0;
  const Tensor f = t.to(DType::kF64);
  for (int64_t i = 0; i < f.numel(); ++i) m = std::max(m, std::abs(f.data_as<double>()[i]));
  return m;
}

const char* epilogue_name(Epilogue e) {
  switch (e) {
    case Epilogue::kNone: return "none";
    case Epilogue::kGeluErf: return "gelu_erf";
    case Epilogue::kGeluTanh: return "gelu_tanh";
    case Epilogue::kRelu: return "relu";
    case Epilogue::kSilu: return "silu";
    case Epilogue::kTanh: return "tanh";
  }
  return "?";
}

// ---- linear ------------------------------------------------------------------------------------------------------
struct LinearSpec {
  int64_t M, N, K;
  Epilogue epilogue;
  bool bias;
  // Byte offsets added to the device pointers of x / bias (exercises operands that are not 256-byte aligned). The
  // x offset is in rows of x.
  int64_t x_row_offset = 0;
  size_t bias_byte_offset = 0;
};

// A linear's random inputs in the device dtype and the CPU twin's answer (made once, checked on several backends).
struct LinearCase {
  LinearSpec s;
  Rounded x, w;  // x.device_dtype's dtype is the case's
  Tensor bias, want;
};

LinearCase make_linear_case(DType dt, const LinearSpec& s, uint32_t seed) {
  std::mt19937 rng(seed);
  // x ~ U(-1, 1), W ~ U(-1, 1)·√(3/K): pre-activations ~ N(0, 1/3)-ish, the interesting range of every activation.
  const float wscale = std::sqrt(3.0f / static_cast<float>(std::max<int64_t>(s.K, 1)));
  Rounded x = round_to(random_tensor({s.M + s.x_row_offset, s.K}, -1.f, 1.f, rng), dt);
  Rounded w = round_to(random_tensor({s.N, s.K}, -wscale, wscale, rng), dt);
  Tensor bias = random_tensor({s.N}, -0.5f, 0.5f, rng);

  // CPU twin on the rows the GPU uses.
  Tensor xr(DType::kF32, {s.M, s.K});
  std::memcpy(xr.mutable_data(), x.f32.data_as<float>() + s.x_row_offset * s.K, xr.nbytes());
  Tensor want(DType::kF32, {s.M, s.N});
  cpu()->linear({host_view(xr), host_view(w.f32), s.bias ? host_view(bias) : TensorView(), host_view(want), s.epilogue});
  return {s, std::move(x), std::move(w), std::move(bias), std::move(want)};
}

void run_linear_case(Backend& gpu, Precision prec, const LinearCase& c) {
  const LinearSpec& s = c.s;
  SCOPED_TRACE(testing::Message() << precision_name(prec) << " M " << s.M << " N " << s.N << " K " << s.K << " "
                                  << epilogue_name(s.epilogue) << (s.bias ? " +bias" : "") << " x row offset "
                                  << s.x_row_offset << " bias byte offset " << s.bias_byte_offset);
  const DType dt = c.x.device_dtype.dtype();
  ASSERT_EQ(gpu.activation_dtype(prec), dt);
  auto xd = upload(gpu, c.x.device_dtype);
  auto wd = upload(gpu, c.w.device_dtype);
  Tensor bias_padded(DType::kU8, {static_cast<int64_t>(c.bias.nbytes() + s.bias_byte_offset)});
  std::memcpy(static_cast<char*>(bias_padded.mutable_data()) + s.bias_byte_offset, c.bias.data(), c.bias.nbytes());
  auto bd = upload(gpu, bias_padded);
  DeviceBuffer yd(gpu, static_cast<size_t>(s.M * s.N) * dtype_size(dt));
  const TensorView yv = gpu_view(yd, dt, {s.M, s.N});
  gpu.fill_nan(yv);
  TensorView xv = gpu_view(*xd, dt, {s.M + s.x_row_offset, s.K}).rows(s.x_row_offset, s.M);
  TensorView bv;
  if (s.bias) bv = TensorView(static_cast<char*>(bd->p) + s.bias_byte_offset, DType::kF32, Device::kCUDA, {s.N});
  gpu.linear({xv, gpu_view(*wd, dt, {s.N, s.K}), bv, yv, s.epilogue});
  gpu.synchronize();
  const Tensor got = download(gpu, yd, dt, {s.M, s.N});

  const test::Diff d = test::compare(got, c.want);
  const double tol = linear_tol(prec, s.K);
  EXPECT_EQ(d.nonfinite, 0) << "unwritten (NaN) or non-finite outputs";
  EXPECT_LE(d.rel_l2, tol) << "rel-L2";
  EXPECT_LE(d.max_abs, kMaxAbsFactor * tol * max_abs_of(c.want)) << "max-abs (rel-L2 " << d.rel_l2 << ")";
}

void check_linear(Backend& gpu, Precision prec, const LinearSpec& s, uint32_t seed) {
  run_linear_case(gpu, prec, make_linear_case(gpu.activation_dtype(prec), s, seed));
}

constexpr Precision kLinearPrecisions[] = {Precision::kFP32, Precision::kTF32, Precision::kFP16, Precision::kBF16};
constexpr Epilogue kEpilogues[] = {Epilogue::kNone, Epilogue::kGeluErf, Epilogue::kGeluTanh,
                                   Epilogue::kRelu, Epilogue::kSilu,    Epilogue::kTanh};

TEST(CudaLinear, EveryEpilogueWithAndWithoutBias) {
  REQUIRE_GPU();
  for (Precision prec : kLinearPrecisions) {
    auto gpu = make_cuda_backend(0, prec);
    uint32_t seed = 1;
    for (Epilogue e : kEpilogues)
      for (bool bias : {false, true}) {
        check_linear(*gpu, prec, {137, 96, 768, e, bias}, seed++);
        check_linear(*gpu, prec, {1, 40, 64, e, bias}, seed++);
      }
  }
}

TEST(CudaLinear, OddShapes) {
  REQUIRE_GPU();
  const LinearSpec shapes[] = {
      {1, 768, 768, Epilogue::kNone, true},        // one row
      {137, 3, 768, Epilogue::kNone, true},        // three outputs (QA/seq heads)
      {137, 2304, 768, Epilogue::kNone, true},     // fused QKV of base
      {137, 3072, 768, Epilogue::kGeluErf, true},  // FFN up
      {137, 768, 3072, Epilogue::kNone, true},     // FFN down (long reduction)
      {5, 7, 13, Epilogue::kGeluErf, true},        // nothing a multiple of anything
      {1000, 24, 24, Epilogue::kTanh, true},       // tiny hidden size (fixtures)
      {3, 5, 1, Epilogue::kNone, true},            // K = 1
  };
  for (Precision prec : kLinearPrecisions) {
    auto gpu = make_cuda_backend(0, prec);
    uint32_t seed = 100;
    for (const LinearSpec& s : shapes) check_linear(*gpu, prec, s, seed++);
  }
}

// The Hopper fused GEMM + bias + exact GELU (CUTLASS, sm_90a) at the FFN's shapes, every configuration forced in turn
// (LAYOUTRT_SM90_GEMM, read when a shape is first met; each backend has its own GEMM plans and a forced configuration
// bypasses the process-wide table), small (M = 1, 709) and large M (4100, 22688 = B 32 x 709; no tile divides them);
// checked through Backend::linear against the CPU twin, and each configuration must accept each shape when called
// directly (so the check is of it, not of the fallback). Skipped on other GPUs or builds without the CUTLASS headers.
TEST(CudaLinear, HopperFusedBiasGelu) {
  REQUIRE_GPU();
  if (!cuda::sm90_fused_gemm_built()) GTEST_SKIP() << "built without the CUTLASS headers (scripts/get_cutlass.sh)";
  if (!cuda::device_is_sm90()) GTEST_SKIP() << "not a compute capability 9.0 device";
  ASSERT_GE(cuda::sm90_gemm_config_count(), 1);
  for (int cfg = 0; cfg < cuda::sm90_gemm_config_count(); ++cfg)
    EXPECT_EQ(cuda::sm90_gemm_config_by_name(cuda::sm90_gemm_config_name(cfg)), cfg);
  // The CPU twin of the large shapes takes seconds: one case per (precision, M), checked with every configuration.
  for (Precision prec : {Precision::kFP16, Precision::kBF16}) {
    uint32_t seed = 300;
    for (int64_t M : {int64_t{1}, int64_t{709}, int64_t{4100}, int64_t{22688}}) {
      const DType dt = encoder_dtype(prec);
      const LinearCase c = make_linear_case(dt, {M, 3072, 768, Epilogue::kGeluErf, true}, seed++);
      for (int cfg = 0; cfg < cuda::sm90_gemm_config_count(); ++cfg) {
        const std::string name = cuda::sm90_gemm_config_name(cfg);
        SCOPED_TRACE(name);
        const test::ScopedEnv force("LAYOUTRT_SM90_GEMM", name.c_str());
        auto gpu = make_cuda_backend(0, prec);
        run_linear_case(*gpu, prec, c);
        DeviceBuffer x(*gpu, static_cast<size_t>(M * 768) * 2), w(*gpu, size_t{3072} * 768 * 2),
            b(*gpu, size_t{3072} * 4), y(*gpu, static_cast<size_t>(M * 3072) * 2);
        const TensorView xv = gpu_view(x, dt, {M, 768}), wv = gpu_view(w, dt, {3072, 768}),
                         bv = gpu_view(b, DType::kF32, {3072}), yv = gpu_view(y, dt, {M, 3072});
        EXPECT_TRUE(cuda::sm90_gemm_applies(xv, wv, bv, yv));
        EXPECT_TRUE(cuda::sm90_linear_bias_gelu(cfg, xv, wv, bv, yv, static_cast<cudaStream_t>(gpu->stream())))
            << precision_name(prec) << " M " << M << ": the configuration declined";
        gpu->synchronize();
      }
    }
  }
}

// Operands at offsets the heuristic must not assume away: x starting at row 1 of a K = 13 matrix (F32: 4-byte
// alignment, F16/BF16: 2-byte), a bias 4 bytes past its allocation (takes the bias_activation path in F32 too).
// If cuBLASLt offered no algorithm here the op would throw kCuda naming the shape and alignment.
TEST(CudaLinear, UnalignedOperands) {
  REQUIRE_GPU();
  for (Precision prec : kLinearPrecisions) {
    auto gpu = make_cuda_backend(0, prec);
    check_linear(*gpu, prec, {37, 11, 13, Epilogue::kNone, true, 1, 4}, 7);
    check_linear(*gpu, prec, {37, 64, 64, Epilogue::kNone, true, 0, 4}, 8);
    check_linear(*gpu, prec, {37, 64, 64, Epilogue::kGeluErf, true, 3, 0}, 9);
  }
}

TEST(CudaLinear, EmptyAndRepeatedShapes) {
  REQUIRE_GPU();
  auto gpu = make_cuda_backend(0, Precision::kFP32);
  // M = 0: a no-op that must not touch y.
  DeviceBuffer x(*gpu, 64 * 4), w(*gpu, 64 * 4 * 8), y(*gpu, 8 * 4);
  gpu->fill_nan(gpu_view(y, DType::kF32, {1, 8}));
  gpu->linear({gpu_view(x, DType::kF32, {0, 64}), gpu_view(w, DType::kF32, {8, 64}), TensorView(),
               gpu_view(y, DType::kF32, {0, 8}), Epilogue::kNone});
  gpu->synchronize();
  // The cached plan for a shape is reused: the same shape again with other data must still be right.
  check_linear(*gpu, Precision::kFP32, {17, 33, 65, Epilogue::kNone, true}, 11);
  check_linear(*gpu, Precision::kFP32, {17, 33, 65, Epilogue::kNone, true}, 12);
  check_linear(*gpu, Precision::kFP32, {17, 33, 65, Epilogue::kGeluErf, true}, 13);
}

// An F16 GEMM's bias is a copy of the F32 bias rounded to F16, made by the runner on the bias's first use on the
// calling stream and then shared by every stream the runner serves (the backend's lanes). Here the copy is made on
// stream a while a host function holds a for 200 ms; stream b's GEMM with the same bias, of a shape already timed (so
// nothing waits for the other streams), must still see the copy: b's output must match a's. Without the runner
// waiting for the conversion, b read the copy's memory unwritten (a wrong first forward with two lanes, 2026-12-02).
TEST(CudaLinear, BiasCopySharedAcrossStreams) {
  REQUIRE_GPU();
  auto gpu = make_cuda_backend(0, Precision::kFP16);
  auto runner = cuda::LinearRunner::create(false);
  constexpr int64_t M = 64, N = 64, K = 64;
  std::mt19937 rng(17);
  const auto x = upload(*gpu, random_tensor({M, K}, -1, 1, rng).to(DType::kF16));
  const auto w = upload(*gpu, random_tensor({N, K}, -1, 1, rng).to(DType::kF16));
  const auto b0 = upload(*gpu, random_tensor({N}, 1, 2, rng));
  const auto b1 = upload(*gpu, random_tensor({N}, 1, 2, rng));
  DeviceBuffer ya(*gpu, M * N * 2), yb(*gpu, M * N * 2);
  auto args = [&](const DeviceBuffer& bias, const DeviceBuffer& y) {
    return LinearArgs{gpu_view(*x, DType::kF16, {M, K}), gpu_view(*w, DType::kF16, {N, K}),
                      gpu_view(bias, DType::kF32, {N}), gpu_view(y, DType::kF16, {M, N}), Epilogue::kNone};
  };
  struct Stream {  // destroyed also when an ASSERT below returns early
    cudaStream_t s = nullptr;
    ~Stream() {
      if (s) {
        cudaStreamSynchronize(s);
        cudaStreamDestroy(s);
      }
    }
  } sa, sb;
  ASSERT_EQ(cudaStreamCreateWithFlags(&sa.s, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&sb.s, cudaStreamNonBlocking), cudaSuccess);
  cudaStream_t a = sa.s, b = sb.s;
  runner->run(args(*b0, yb), b, 1);  // the shape timed (if not already) and b0's copy made
  ASSERT_EQ(cudaStreamSynchronize(b), cudaSuccess);
  ASSERT_EQ(cudaLaunchHostFunc(a, +[](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(200)); }, nullptr),
            cudaSuccess);
  runner->run(args(*b1, ya), a, 0);  // b1's copy made on a, behind the host function
  runner->run(args(*b1, yb), b, 1);  // the same bias on b
  ASSERT_EQ(cudaStreamSynchronize(a), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(b), cudaSuccess);
  const Tensor got_a = download(*gpu, ya, DType::kF16, {M, N}), got_b = download(*gpu, yb, DType::kF16, {M, N});
  const float* pa = got_a.data_as<float>();
  const float* pb = got_b.data_as<float>();
  double worst = 0;
  for (int64_t i = 0; i < M * N; ++i) worst = std::max(worst, std::abs(static_cast<double>(pa[i]) - pb[i]));
  EXPECT_LE(worst, 1e-2) << "stream b's GEMM saw another bias than stream a's (the bias is 1 .. 2 per column)";
}

TEST(CudaLinear, RejectsInconsistentViews) {
  REQUIRE_GPU();
  auto gpu = make_cuda_backend(0, Precision::kFP32);
  DeviceBuffer x(*gpu, 4 * 64 * 4), w(*gpu, 8 * 64 * 4), y(*gpu, 4 * 8 * 4);
  test::expect_error(
      [&] {
        gpu->linear({gpu_view(x, DType::kF32, {4, 64}), gpu_view(w, DType::kF32, {8, 32}), TensorView(),
                     gpu_view(y, DType::kF32, {4, 8}), Epilogue::kNone});
      },
      ErrorCode::kInternal, {"linear", "[8,32]"});
  test::expect_error(
      [&] {
        gpu->linear({gpu_view(x, DType::kF16, {4, 64}), gpu_view(w, DType::kF32, {8, 64}), TensorView(),
                     gpu_view(y, DType::kF32, {4, 8}), Epilogue::kNone});
      },
      ErrorCode::kInternal, {"linear", "dtype"});
}

// ---- attention ---------------------------------------------------------------------------------------------------
enum class BiasMode { kNone, k1D, k1D2D, k2DOnly };
const char* bias_mode_name(BiasMode m) {
  switch (m) {
    case BiasMode::kNone: return "no bias";
    case BiasMode::k1D: return "1D bias";
    case BiasMode::k1D2D: return "1D+2D bias";
    case BiasMode::k2DOnly: return "2D tables without 1D (must add nothing)";
  }
  return "?";
}

struct AttentionSpec {
  std::vector<int> lengths;
  int heads, d;
  DType dtype;
  BiasMode bias;
  double mask_fraction = 0.15;
  int fully_masked_seq = -1;  // index of a sequence whose every key is masked
  int extra_max_len = 0;      // max_seq_len = longest + this (CTAs past every sequence must do nothing)
};

void check_attention(Backend& gpu, const AttentionSpec& s, uint32_t seed) {
  std::ostringstream lens;
  for (int L : s.lengths) lens << L << " ";
  SCOPED_TRACE(testing::Message() << dtype_name(s.dtype) << " lengths { " << lens.str() << "} heads " << s.heads
                                  << " x d " << s.d << ", " << bias_mode_name(s.bias) << ", fully masked seq "
                                  << s.fully_masked_seq << ", max_seq_len +" << s.extra_max_len);
  std::mt19937 rng(seed);
  const int64_t H = int64_t{s.heads} * s.d;
  std::vector<int32_t> seq_begin{0};
  for (int L : s.lengths) seq_begin.push_back(seq_begin.back() + L);
  const int64_t rows = seq_begin.back(), B = static_cast<int64_t>(s.lengths.size());
  const int64_t max_len = *std::max_element(s.lengths.begin(), s.lengths.end()) + s.extra_max_len;
  const int max_dist_1d = 709, max_dist_2d = 1023;

  // q, k ~ U(-2, 2) so that scores spread over a few units (a peaked, non-trivial softmax); v ~ U(-1, 1).
  Tensor qkv_raw = random_tensor({rows, 3 * H}, -1.f, 1.f, rng);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < 2 * H; ++c) qkv_raw.mutable_data_as<float>()[r * 3 * H + c] *= 2.f;
  Rounded qkv = round_to(qkv_raw, s.dtype);

  std::vector<int32_t> pos1d(rows), pos_x(rows), pos_y(rows);
  std::vector<uint8_t> key_valid(rows);
  std::uniform_int_distribution<int> p1(0, max_dist_1d), p2(0, max_dist_2d);
  std::bernoulli_distribution masked(s.mask_fraction);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = seq_begin[b]; r < seq_begin[b + 1]; ++r) {
      pos1d[r] = p1(rng);
      pos_x[r] = p2(rng);
      pos_y[r] = p2(rng);
      key_valid[r] = (b == s.fully_masked_seq || masked(rng)) ? 0 : 1;
    }
  // Bias tables ~ U(-4, 4): after the /√d, comparable to the scores.
  Tensor b1 = random_tensor({s.heads, 2 * max_dist_1d + 1}, -4.f, 4.f, rng);
  Tensor bx = random_tensor({s.heads, 2 * max_dist_2d + 1}, -4.f, 4.f, rng);
  Tensor by = random_tensor({s.heads, 2 * max_dist_2d + 1}, -4.f, 4.f, rng);
  const bool use1d = s.bias == BiasMode::k1D || s.bias == BiasMode::k1D2D;
  const bool use2d = s.bias == BiasMode::k1D2D || s.bias == BiasMode::k2DOnly;

  // CPU twin.
  AttentionArgs c;
  c.num_seqs = B;
  c.max_seq_len = max_len;
  c.seq_begin = seq_begin.data();
  c.pos1d = pos1d.data();
  c.pos_x = pos_x.data();
  c.pos_y = pos_y.data();
  c.key_valid = key_valid.data();
  c.num_heads = s.heads;
  c.head_dim = s.d;
  c.max_dist_1d = max_dist_1d;
  c.max_dist_2d = max_dist_2d;
  if (use1d) c.bias1d = host_view(b1);
  if (use2d) c.bias_x = host_view(bx), c.bias_y = host_view(by);
  c.qkv = host_view(qkv.f32);
  Tensor want(DType::kF32, {rows, H});
  c.out = host_view(want);
  Tensor cpu_scratch(DType::kU8, {static_cast<int64_t>(cpu()->attention_scratch_bytes(B, max_len, s.heads, s.d))});
  c.scratch = host_view(cpu_scratch);
  cpu()->attention(c);

  // GPU.
  auto d_qkv = upload(gpu, qkv.device_dtype);
  auto d_b1 = upload(gpu, b1), d_bx = upload(gpu, bx), d_by = upload(gpu, by);
  auto d_seq = upload(gpu, seq_begin), d_p1 = upload(gpu, pos1d), d_px = upload(gpu, pos_x),
       d_py = upload(gpu, pos_y);
  auto d_valid = upload(gpu, key_valid);
  DeviceBuffer d_out(gpu, static_cast<size_t>(std::max<int64_t>(rows * H, 1)) * dtype_size(s.dtype));
  const size_t scratch_bytes = gpu.attention_scratch_bytes(B, max_len, s.heads, s.d);
  DeviceBuffer d_scratch(gpu, std::max<size_t>(scratch_bytes, 1));
  AttentionArgs g = c;
  g.seq_begin = static_cast<int32_t*>(d_seq->p);
  g.pos1d = static_cast<int32_t*>(d_p1->p);
  g.pos_x = static_cast<int32_t*>(d_px->p);
  g.pos_y = static_cast<int32_t*>(d_py->p);
  g.key_valid = static_cast<uint8_t*>(d_valid->p);
  g.bias1d = use1d ? gpu_view(*d_b1, DType::kF32, {s.heads, 2 * max_dist_1d + 1}) : TensorView();
  g.bias_x = use2d ? gpu_view(*d_bx, DType::kF32, {s.heads, 2 * max_dist_2d + 1}) : TensorView();
  g.bias_y = use2d ? gpu_view(*d_by, DType::kF32, {s.heads, 2 * max_dist_2d + 1}) : TensorView();
  g.qkv = gpu_view(*d_qkv, s.dtype, {rows, 3 * H});
  g.out = gpu_view(d_out, s.dtype, {rows, H});
  g.scratch = scratch_bytes ? gpu_view(d_scratch, DType::kU8, {static_cast<int64_t>(scratch_bytes)}) : TensorView();
  gpu.fill_nan(g.out);
  gpu.attention(g);
  gpu.synchronize();
  const Tensor got = download(gpu, d_out, s.dtype, {rows, H});

  const test::Diff diff = test::compare(got, want);
  const double tol = attention_tol(s.dtype, max_len, s.d);
  EXPECT_EQ(diff.nonfinite, 0) << "unwritten (NaN) or non-finite outputs";
  EXPECT_LE(diff.rel_l2, tol) << "rel-L2";
  EXPECT_LE(diff.max_abs, kMaxAbsFactor * tol * max_abs_of(want)) << "max-abs (rel-L2 " << diff.rel_l2 << ")";
  // A query whose every key is masked: the CPU twin leaves its context at exactly zero.
  if (s.fully_masked_seq >= 0) {
    int64_t nonzero = 0;
    for (int64_t r = seq_begin[s.fully_masked_seq]; r < seq_begin[s.fully_masked_seq + 1]; ++r)
      for (int64_t k = 0; k < H; ++k) nonzero += got.data_as<float>()[r * H + k] != 0.f;
    EXPECT_EQ(nonzero, 0) << "rows with every key masked must be exactly zero (as the CPU twin)";
  }
}

constexpr DType kAttnDTypes[] = {DType::kF32, DType::kF16, DType::kBF16};
Precision precision_for(DType t) {
  return t == DType::kF32 ? Precision::kFP32 : t == DType::kF16 ? Precision::kFP16 : Precision::kBF16;
}

TEST(CudaAttention, SingleSequenceLengths) {
  REQUIRE_GPU();
  for (DType dt : kAttnDTypes) {
    auto gpu = make_cuda_backend(0, precision_for(dt));
    uint32_t seed = 1000;
    // Around the 16-query and 64-key tiles, the visual length and the longest joint sequence (512 + 197).
    for (int L : {1, 63, 64, 65, 197, 709}) check_attention(*gpu, {{L}, 12, 64, dt, BiasMode::k1D2D}, seed++);
  }
}

TEST(CudaAttention, MixedLengthsInOneBatch) {
  REQUIRE_GPU();
  const std::vector<int> lengths{65, 1, 709, 0, 197, 64, 63, 17};
  for (DType dt : kAttnDTypes) {
    auto gpu = make_cuda_backend(0, precision_for(dt));
    uint32_t seed = 2000;
    for (BiasMode m : {BiasMode::kNone, BiasMode::k1D, BiasMode::k1D2D, BiasMode::k2DOnly})
      check_attention(*gpu, {lengths, 4, 16, dt, m, 0.15, 6}, seed++);
    check_attention(*gpu, {lengths, 12, 64, dt, BiasMode::k1D2D, 0.15, 1}, seed++);
    check_attention(*gpu, {lengths, 12, 64, dt, BiasMode::kNone, 0.3, 6}, seed++);
  }
}

TEST(CudaAttention, HeadDims) {
  REQUIRE_GPU();
  for (DType dt : kAttnDTypes) {
    auto gpu = make_cuda_backend(0, precision_for(dt));
    uint32_t seed = 3000;
    // 8 and 16: the tiny fixtures; 40, 100: not multiples of 32; 128: the largest supported.
    for (int d : {8, 16, 40, 100, 128}) check_attention(*gpu, {{130, 65, 3}, 2, d, dt, BiasMode::k1D2D}, seed++);
    check_attention(*gpu, {{197, 33}, 3, 8, dt, BiasMode::k1D}, seed++);  // 3 heads x d 8 (hidden 24)
  }
}

TEST(CudaAttention, MaxSeqLenBeyondEverySequenceAndHeavyMasking) {
  REQUIRE_GPU();
  auto gpu = make_cuda_backend(0, Precision::kFP32);
  check_attention(*gpu, {{5, 100, 33}, 4, 16, DType::kF32, BiasMode::k1D2D, 0.15, -1, 609}, 4000);
  check_attention(*gpu, {{709, 64}, 4, 16, DType::kF32, BiasMode::k1D2D, 0.9, -1, 0}, 4001);
  check_attention(*gpu, {{1, 1, 2}, 12, 64, DType::kF32, BiasMode::k1D2D, 0.0, 1, 0}, 4002);
}

TEST(CudaAttention, RejectsInconsistentViews) {
  REQUIRE_GPU();
  auto gpu = make_cuda_backend(0, Precision::kFP32);
  DeviceBuffer qkv(*gpu, 4 * 3 * 64 * 4), out(*gpu, 4 * 64 * 4);
  AttentionArgs a;
  a.num_seqs = 1;
  a.max_seq_len = 4;
  a.num_heads = 4;
  a.head_dim = 16;
  a.qkv = gpu_view(qkv, DType::kF32, {4, 3 * 64});
  a.out = gpu_view(out, DType::kF16, {4, 64});
  test::expect_error([&] { gpu->attention(a); }, ErrorCode::kInternal, {"attention", "dtype"});
  a.out = gpu_view(out, DType::kF32, {4, 32});
  test::expect_error([&] { gpu->attention(a); }, ErrorCode::kInternal, {"attention", "[4,32]"});
}

}  // namespace
}  // namespace layoutrt
