// The fused relative-bias flash attention (src/cuda/flash_attention.cu) against its CPU twin (src/cpu/attention.cpp)
// on random inputs: F16 and BF16, head_dim 32 / 64 / 128, single sequences of length 1, 63, 64, 65, 197, 709 and
// mixed-length batches, all-valid / random / masked-tail / fully masked key sets, N(0,1) and large (±30..40) scores,
// bias modes none / 1D / 1D+2D with random tables indexed by random positions (any distance-indexing error — sign
// convention, offset, wrong table — moves the scores by O(1) and fails by orders of magnitude).
//
// Inputs are rounded to the dtype first and the CPU twin gets exactly those values widened to FP32, so what is measured
// is the kernel's own arithmetic. The output buffer is NaN-poisoned (0xFF bytes) before the run: an unwritten element
// inside a sequence fails as non-finite, and rows OUTSIDE every sequence (rows before seq_begin[0] and after the last
// sequence) must still hold the poison bit pattern afterwards.
//
// Every 1D + 2D case with head_dim ≤ 64 runs twice: biases looked up from the FP32 tables per score, and read from the
// F16 blocks flash_prepare_bias writes (the cache is NaN-poisoned first, so a block read but never written fails). The
// cache adds one F16 rounding of each bias sum: logit error ≤ |bias|·2^-11/√d (rms ≈ 2e-4 at these tables' std),
// inside the same tolerances.
//
// Without a GPU these tests FAIL (they never skip). The timing test prints, never asserts (DESIGN.md: benchmarks are
// tools, not tests).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "cuda/device_info.h"
#include "cuda/flash_attention.h"
#include "cuda/flash_attention_sm90.h"
#include "cuda/flash_tail.h"
#include "ops/backend.h"
#include "test_util.h"

namespace layoutrt {
namespace {

// ---- tolerances --------------------------------------------------------------------------------------------------
// u = unit roundoff (half an ulp at 1): F16 2^-11 = 4.9e-4, BF16 2^-8 = 3.9e-3. Inputs are exact on both sides and the
// kernel is FP32 inside (scores, bias, softmax, accumulation), so the differences are two roundings to the dtype:
//   P: each probability is rounded before P·V: ctx_err = Σ_j p_j δ_j v_j / l with |δ_j| ≤ u, independent → rms
//      ≈ (u/√3)·rms(ctx) for both flat and peaked attention;
//   out: the context is rounded once: rms u/√3 relative.
// Together ≈ √2·u/√3 ≈ 0.82 u: F16 4e-4, BF16 3.2e-3 (plus ~1e-6 from FP32 op order and ex2.approx). Tolerances
// rel-L2 ≤ 2e-3 (F16, 5× margin) and ≤ 1e-2 (BF16, 3×), per sequence (so a broken short sequence is not averaged away
// by a long one). Max-abs: an element's error is ≤ u·|ctx| + u·Σ p_j|v_j|/l ≤ 2u·max|v| (a hard bound, up to FP32
// noise); we allow twice that, 4u·max|v| (F16 ≈ 0.01, BF16 ≈ 0.08 at max|v| ≈ 5). A numpy emulation of the kernel's
// numerics (tiles, log2 domain, P and output rounding) on these distributions gave rel-L2 2.7e-4 / 2.2e-3 and
// max-abs 1.2e-3 / 1.4e-2 (F16 / BF16, L = 709, large scores included): ≥ 4× inside both bounds.
constexpr double kU16 = 4.8828125e-4, kUBF16 = 3.90625e-3;
double rel_l2_tol(DType t) { return t == DType::kF16 ? 2e-3 : 1e-2; }
double max_abs_tol(DType t, double max_abs_v) { return 4.0 * (t == DType::kF16 ? kU16 : kUBF16) * max_abs_v; }

#define REQUIRE_GPU()                                                                                    \
  do {                                                                                                   \
    int n_ = 0;                                                                                          \
    const cudaError_t e_ = cudaGetDeviceCount(&n_);                                                      \
    ASSERT_TRUE(e_ == cudaSuccess && n_ > 0)                                                             \
        << "these tests need a CUDA device (cudaGetDeviceCount: " << cudaGetErrorString(e_) << ", " << n_ \
        << " devices)";                                                                                  \
  } while (0)

#define CUDA_OK(call)                                                                        \
  do {                                                                                       \
    const cudaError_t e_ = (call);                                                           \
    ASSERT_EQ(e_, cudaSuccess) << #call << ": " << cudaGetErrorString(e_);                   \
  } while (0)

// A device allocation owned by the test.
struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t bytes) {
    if (cudaMalloc(&p, std::max<size_t>(bytes, 16)) != cudaSuccess) p = nullptr;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <class T> T* as() const { return static_cast<T*>(p); }
};

uint16_t to_bits(float v, DType t) { return t == DType::kF16 ? float_to_half(v) : float_to_bf16(v); }
float from_bits(uint16_t b, DType t) { return t == DType::kF16 ? half_to_float(b) : bf16_to_float(b); }

// kMaskedHead masks the first 40% of the keys: for L = 709 the first four key tiles are entirely masked, so the online
// softmax runs several tiles with a running max of −∞ before the first valid key.
enum class KeyMask { kAllValid, kRandom, kMaskedTail, kMaskedHead, kAllMasked };

struct AttnCase {
  std::string name;
  std::vector<int> lens;
  std::vector<KeyMask> masks;  // per sequence (cycled)
  int heads = 12, d = 64;
  DType dtype = DType::kF16;
  float qk_sigma = 1.0f;       // std of the q and k entries (3.5 → scores of std ≈ 12, extremes ≈ ±40)
  int bias_mode = 2;           // 0 none, 1 bias1d, 2 bias1d + bias_x + bias_y
  int lead_rows = 3, tail_rows = 5;  // rows outside every sequence, before and after
  uint32_t seed = 1;
};

// The engine's table sizes: max_dist_1d = max(max_text_tokens, 197) = 512, max_dist_2d = 1023.
constexpr int kMaxDist1d = 512, kMaxDist2d = 1023;

struct HostInputs {
  int64_t rows = 0;
  std::vector<int32_t> seq_begin, pos1d, pos_x, pos_y;
  std::vector<uint8_t> key_valid;
  std::vector<uint16_t> qkv_bits;  // dtype bits
  std::vector<float> qkv_f32;      // the same values widened
  std::vector<float> bias1d, bias_x, bias_y;
  double max_abs_v = 0;
};

HostInputs make_inputs(const AttnCase& c) {
  HostInputs in;
  std::mt19937 rng(c.seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> unif(0.f, 1.f);
  const int H = c.heads * c.d;
  int64_t total = 0;
  for (int L : c.lens) total += L;
  in.rows = c.lead_rows + total + c.tail_rows;
  in.seq_begin.push_back(c.lead_rows);
  for (int L : c.lens) in.seq_begin.push_back(in.seq_begin.back() + L);

  // Positions: random within the tables' range, so every key/query pair exercises an independent table entry
  // (distance p_j − p_i spans [−max_dist, max_dist]). Rows outside sequences get positions too (never read).
  in.pos1d.resize(in.rows);
  in.pos_x.resize(in.rows);
  in.pos_y.resize(in.rows);
  std::uniform_int_distribution<int> p1(0, kMaxDist1d), p2(0, kMaxDist2d);
  for (int64_t r = 0; r < in.rows; ++r) {
    in.pos1d[r] = p1(rng);
    in.pos_x[r] = p2(rng);
    in.pos_y[r] = p2(rng);
  }
  in.key_valid.assign(in.rows, 1);
  for (size_t s = 0; s < c.lens.size(); ++s) {
    const KeyMask m = c.masks.empty() ? KeyMask::kAllValid : c.masks[s % c.masks.size()];
    const int L = c.lens[s], b = in.seq_begin[s];
    for (int j = 0; j < L; ++j) {
      uint8_t v = 1;
      switch (m) {
        case KeyMask::kAllValid: v = 1; break;
        case KeyMask::kRandom: v = unif(rng) < 0.8f; break;
        case KeyMask::kMaskedTail: v = j < L - (4 * L) / 10; break;  // last 40% masked (pad tokens at the end)
        case KeyMask::kMaskedHead: v = j >= (4 * L) / 10; break;
        case KeyMask::kAllMasked: v = 0; break;
      }
      in.key_valid[b + j] = v;
    }
  }
  // Rows outside sequences: marked valid and given huge values — a kernel that strays across a sequence boundary
  // picks them up and fails. Masked keys inside sequences get NaN K and V (their Q stays finite: masked tokens still
  // act as queries, trap 7): the CPU twin never reads them, so any leak of a masked key into a score or a context
  // shows up as NaN.
  in.qkv_bits.resize(static_cast<size_t>(in.rows) * 3 * H);
  in.qkv_f32.resize(in.qkv_bits.size());
  for (int64_t r = 0; r < in.rows; ++r) {
    const bool inside = r >= in.seq_begin.front() && r < in.seq_begin.back();
    const bool masked_key = inside && !in.key_valid[r];
    for (int col = 0; col < 3 * H; ++col) {
      const bool is_v = col >= 2 * H;
      float x = normal(rng) * (is_v ? 1.0f : c.qk_sigma);
      if (!inside) x = 100.f + 10.f * normal(rng);
      if (masked_key && col >= H) x = std::numeric_limits<float>::quiet_NaN();
      const size_t i = static_cast<size_t>(r) * 3 * H + col;
      in.qkv_bits[i] = to_bits(x, c.dtype);
      in.qkv_f32[i] = from_bits(in.qkv_bits[i], c.dtype);
      if (is_v && inside && !masked_key)
        in.max_abs_v = std::max(in.max_abs_v, static_cast<double>(std::fabs(in.qkv_f32[i])));
    }
  }
  // Random bias tables, one independent value per distance (not bucket-structured), std 3: the bias/√d part of a
  // score then has std ≈ 3·√3/8 ≈ 0.65 — a wrong lookup changes the softmax visibly.
  auto table = [&](int n) {
    std::vector<float> t(static_cast<size_t>(c.heads) * n);
    for (float& v : t) v = 3.0f * normal(rng);
    return t;
  };
  if (c.bias_mode >= 1) in.bias1d = table(2 * kMaxDist1d + 1);
  if (c.bias_mode == 2) {
    in.bias_x = table(2 * kMaxDist2d + 1);
    in.bias_y = table(2 * kMaxDist2d + 1);
  }
  return in;
}

AttentionArgs base_args(const AttnCase& c, const HostInputs& in) {
  AttentionArgs a;
  a.num_seqs = static_cast<int64_t>(c.lens.size());
  a.max_seq_len = *std::max_element(c.lens.begin(), c.lens.end());
  a.num_heads = c.heads;
  a.head_dim = c.d;
  if (c.bias_mode >= 1) a.max_dist_1d = kMaxDist1d;
  if (c.bias_mode == 2) a.max_dist_2d = kMaxDist2d;
  (void)in;
  return a;
}

// The CPU twin's output for sequences [0, num_seqs) of the case (host F32 copies of the rounded inputs).
std::vector<float> run_cpu(const AttnCase& c, HostInputs& in, int64_t num_seqs) {
  const int H = c.heads * c.d;
  AttentionArgs a = base_args(c, in);
  a.num_seqs = num_seqs;
  a.max_seq_len = *std::max_element(c.lens.begin(), c.lens.begin() + num_seqs);
  a.seq_begin = in.seq_begin.data();
  a.pos1d = in.pos1d.data();
  a.pos_x = in.pos_x.data();
  a.pos_y = in.pos_y.data();
  a.key_valid = in.key_valid.data();
  if (c.bias_mode >= 1)
    a.bias1d = TensorView(in.bias1d.data(), DType::kF32, Device::kCPU, {c.heads, 2 * int64_t{kMaxDist1d} + 1});
  if (c.bias_mode == 2) {
    a.bias_x = TensorView(in.bias_x.data(), DType::kF32, Device::kCPU, {c.heads, 2 * int64_t{kMaxDist2d} + 1});
    a.bias_y = TensorView(in.bias_y.data(), DType::kF32, Device::kCPU, {c.heads, 2 * int64_t{kMaxDist2d} + 1});
  }
  a.qkv = TensorView(in.qkv_f32.data(), DType::kF32, Device::kCPU, {in.rows, 3 * int64_t{H}});
  std::vector<float> out(static_cast<size_t>(in.rows) * H, std::numeric_limits<float>::quiet_NaN());
  a.out = TensorView(out.data(), DType::kF32, Device::kCPU, {in.rows, int64_t{H}});
  // All OpenMP threads (0 = leave the default): each query row is computed independently, so the result does not
  // depend on the thread count.
  static std::unique_ptr<Backend> cpu = make_cpu_backend(0);
  const size_t scratch_bytes = cpu->attention_scratch_bytes(a.num_seqs, a.max_seq_len, c.heads, c.d);
  std::vector<uint8_t> scratch(scratch_bytes + 64);
  a.scratch = TensorView(scratch.data(), DType::kU8, Device::kCPU, {static_cast<int64_t>(scratch_bytes)});
  cpu->attention(a);
  return out;
}

// Device copies of a case's inputs and the AttentionArgs that point at them.
struct DeviceCase {
  std::unique_ptr<DevBuf> qkv, out, seq_begin, pos1d, pos_x, pos_y, key_valid, bias1d, bias_x, bias_y;
  AttentionArgs args;
};

void upload(DevBuf& d, const void* src, size_t bytes) {
  ASSERT_NE(d.p, nullptr);
  ASSERT_EQ(cudaMemcpy(d.p, src, bytes, cudaMemcpyHostToDevice), cudaSuccess);
}

void make_device_case(const AttnCase& c, const HostInputs& in, DeviceCase& dc) {
  const int H = c.heads * c.d;
  auto buf = [](size_t bytes) { return std::make_unique<DevBuf>(bytes); };
  dc.qkv = buf(in.qkv_bits.size() * 2);
  dc.out = buf(static_cast<size_t>(in.rows) * H * 2);
  dc.seq_begin = buf(in.seq_begin.size() * 4);
  dc.pos1d = buf(in.rows * 4);
  dc.pos_x = buf(in.rows * 4);
  dc.pos_y = buf(in.rows * 4);
  dc.key_valid = buf(in.rows);
  ASSERT_NO_FATAL_FAILURE(upload(*dc.qkv, in.qkv_bits.data(), in.qkv_bits.size() * 2));
  ASSERT_NO_FATAL_FAILURE(upload(*dc.seq_begin, in.seq_begin.data(), in.seq_begin.size() * 4));
  ASSERT_NO_FATAL_FAILURE(upload(*dc.pos1d, in.pos1d.data(), in.rows * 4));
  ASSERT_NO_FATAL_FAILURE(upload(*dc.pos_x, in.pos_x.data(), in.rows * 4));
  ASSERT_NO_FATAL_FAILURE(upload(*dc.pos_y, in.pos_y.data(), in.rows * 4));
  ASSERT_NO_FATAL_FAILURE(upload(*dc.key_valid, in.key_valid.data(), in.rows));
  AttentionArgs& a = dc.args;
  a = base_args(c, in);
  a.seq_begin = dc.seq_begin->as<int32_t>();
  a.pos1d = dc.pos1d->as<int32_t>();
  a.pos_x = dc.pos_x->as<int32_t>();
  a.pos_y = dc.pos_y->as<int32_t>();
  a.key_valid = dc.key_valid->as<uint8_t>();
  if (c.bias_mode >= 1) {
    dc.bias1d = buf(in.bias1d.size() * 4);
    ASSERT_NO_FATAL_FAILURE(upload(*dc.bias1d, in.bias1d.data(), in.bias1d.size() * 4));
    a.bias1d = TensorView(dc.bias1d->p, DType::kF32, Device::kCUDA, {c.heads, 2 * int64_t{kMaxDist1d} + 1});
  }
  if (c.bias_mode == 2) {
    dc.bias_x = buf(in.bias_x.size() * 4);
    dc.bias_y = buf(in.bias_y.size() * 4);
    ASSERT_NO_FATAL_FAILURE(upload(*dc.bias_x, in.bias_x.data(), in.bias_x.size() * 4));
    ASSERT_NO_FATAL_FAILURE(upload(*dc.bias_y, in.bias_y.data(), in.bias_y.size() * 4));
    a.bias_x = TensorView(dc.bias_x->p, DType::kF32, Device::kCUDA, {c.heads, 2 * int64_t{kMaxDist2d} + 1});
    a.bias_y = TensorView(dc.bias_y->p, DType::kF32, Device::kCUDA, {c.heads, 2 * int64_t{kMaxDist2d} + 1});
  }
  a.qkv = TensorView(dc.qkv->p, c.dtype, Device::kCUDA, {in.rows, 3 * int64_t{H}});
  a.out = TensorView(dc.out->p, c.dtype, Device::kCUDA, {in.rows, int64_t{H}});
}

// The two bias paths of the 1D + 2D case: tables looked up per score, and the F16 blocks of flash_prepare_bias.
// The cache is read by two mma.sync kernel shapes (4 warps × 1 strip, 2 warps × 2 strips) and, on compute capability
// 9.0 at d = 64, the wgmma kernel with one warpgroup per 64 query rows or two sharing the key tiles (split-KV);
// LAYOUTRT_FLASH_SHAPE and LAYOUTRT_FLASH_SPLIT force one; with two, LAYOUTRT_FLASH_TAIL=0|1 runs each sequence's
// partial last query tile in its full tiles' grid (0) or split over extra CTAs, one key tile per warpgroup, merged by
// the last to finish (1: the tail split, flash_attention_wgmma.cu), or (inline: one sequence, a partial tile of at most
// 16 rows) as mma.sync strips of the full tiles' warpgroups, merged by a fold warp.
enum class BiasPath { kLookup, kCache4W, kCache2W, kCacheWG, kCacheWG2, kCacheWG2Tail, kCacheWG2Inline };
const char* shape_env(BiasPath path) {
  switch (path) {
    case BiasPath::kCache4W: return "4w";
    case BiasPath::kCache2W: return "2w";
    case BiasPath::kCacheWG:
    case BiasPath::kCacheWG2:
    case BiasPath::kCacheWG2Tail:
    case BiasPath::kCacheWG2Inline: return "wg";
    default: return nullptr;
  }
}
bool two_warpgroups(BiasPath path) {
  return path == BiasPath::kCacheWG2 || path == BiasPath::kCacheWG2Tail || path == BiasPath::kCacheWG2Inline;
}
const char* split_env(BiasPath path) {
  return path == BiasPath::kCacheWG ? "1" : two_warpgroups(path) ? "2" : nullptr;
}
const char* tail_env(BiasPath path) {
  switch (path) {
    case BiasPath::kCacheWG2Tail: return "1";
    case BiasPath::kCacheWG2Inline: return "inline";
    case BiasPath::kCacheWG2: return "0";
    default: return nullptr;
  }
}
const char* path_name(BiasPath path) {
  switch (path) {
    case BiasPath::kCache4W: return "cache4w";
    case BiasPath::kCache2W: return "cache2w";
    case BiasPath::kCacheWG: return "cachewg";
    case BiasPath::kCacheWG2: return "cachewg2";
    case BiasPath::kCacheWG2Tail: return "wg2tail";
    case BiasPath::kCacheWG2Inline: return "wg2inline";
    default: return "lookup";
  }
}

// Runs one case on the GPU and compares sequences [0, check_seqs) (all when < 0) with the CPU twin, once per bias
// path that applies (the cache, with each kernel shape: 1D + 2D biases and head_dim ≤ 64).
void check_case_path(const AttnCase& c, int64_t check_seqs, BiasPath path);
void check_case(const AttnCase& c, int64_t check_seqs = -1) {
  check_case_path(c, check_seqs, BiasPath::kLookup);
  if (c.bias_mode == 2 && c.d <= 64) {
    check_case_path(c, check_seqs, BiasPath::kCache4W);
    check_case_path(c, check_seqs, BiasPath::kCache2W);
    if (cuda::flash_wgmma_available(c.d)) {
      check_case_path(c, check_seqs, BiasPath::kCacheWG);
      check_case_path(c, check_seqs, BiasPath::kCacheWG2);
      check_case_path(c, check_seqs, BiasPath::kCacheWG2Tail);
      if (c.lens.size() == 1) check_case_path(c, check_seqs, BiasPath::kCacheWG2Inline);
    }
  }
}

void check_case_path(const AttnCase& c, int64_t check_seqs, BiasPath path) {
  SCOPED_TRACE(c.name + " [" + path_name(path) + "]");
  const test::ScopedEnv shape("LAYOUTRT_FLASH_SHAPE", shape_env(path)), split("LAYOUTRT_FLASH_SPLIT", split_env(path)),
      tail("LAYOUTRT_FLASH_TAIL", tail_env(path));
  // The tail split's key tiles per warpgroup (1 by default), varied over the cases: 1, 2 or 3 by the case's seed.
  const std::string tiles = std::to_string(1 + c.seed % 3);
  const test::ScopedEnv tail_tiles("LAYOUTRT_FLASH_TAIL_TILES",
                                   path == BiasPath::kCacheWG2Tail ? tiles.c_str() : nullptr);
  SCOPED_TRACE(path == BiasPath::kCacheWG2Tail ? "tail key tiles per warpgroup: " + tiles : std::string());
  HostInputs in = make_inputs(c);
  DeviceCase dc;
  ASSERT_NO_FATAL_FAILURE(make_device_case(c, in, dc));
  const int H = c.heads * c.d;
  ASSERT_TRUE(cuda::flash_attention_supported(dc.args)) << "flash_attention_supported() said no";

  const size_t out_bytes = static_cast<size_t>(in.rows) * H * 2;
  CUDA_OK(cudaMemset(dc.out->p, 0xFF, out_bytes));  // NaN poison (0xFFFF is a NaN in F16 and BF16)
  cudaStream_t stream = nullptr;
  CUDA_OK(cudaStreamCreate(&stream));
  std::unique_ptr<DevBuf> cache;
  if (path != BiasPath::kLookup) {
    const size_t cache_bytes = cuda::flash_bias_cache_bytes(dc.args.num_seqs, dc.args.max_seq_len, c.heads, c.d);
    ASSERT_GT(cache_bytes, 0u);
    const size_t bytes = cache_bytes + cuda::flash_tail_bytes(dc.args.num_seqs, dc.args.max_seq_len, c.heads);
    cache = std::make_unique<DevBuf>(bytes);
    CUDA_OK(cudaMemset(cache->p, 0xFF, bytes));  // NaN blocks: a block the kernel reads but never wrote shows up
    dc.args.scratch = TensorView(cache->p, DType::kU8, Device::kCUDA, {static_cast<int64_t>(bytes)});
    ASSERT_TRUE(cuda::flash_prepare_bias(dc.args, stream)) << "flash_prepare_bias() declined";
    ASSERT_TRUE(dc.args.bias_cache.defined());
    ASSERT_TRUE(cuda::flash_attention_supported(dc.args)) << "flash_attention_supported() said no to the cache";
  }
  if (path == BiasPath::kCacheWG2Inline) {  // the inline form where it applies, the unit CTAs elsewhere
    const bool fits = cuda::flash_inline_tail_fits(dc.args.num_seqs, false, dc.args.max_seq_len);
    EXPECT_STREQ(cuda::flash_tail_form(dc.args), fits ? "inline" : "units");
  }
  ASSERT_NO_THROW(cuda::flash_attention(dc.args, stream));
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaGetLastError());
  std::vector<uint16_t> gpu(static_cast<size_t>(in.rows) * H);
  CUDA_OK(cudaMemcpy(gpu.data(), dc.out->p, out_bytes, cudaMemcpyDeviceToHost));
  if (path == BiasPath::kCacheWG || two_warpgroups(path)) {
    // A second launch on the same workspace, plain where the first was a programmatic dependent launch (LAYOUTRT_PDL,
    // src/cuda/device_info.h): the same bits — the tail split's merging CTAs reset the counters they used and fold
    // the partials in key-tile order whichever CTA finishes last, and the launch mode changes no arithmetic.
    const bool pdl = cuda::pdl_enabled();
    const test::ScopedEnv plain("LAYOUTRT_PDL", pdl ? "0" : nullptr);
    CUDA_OK(cudaMemset(dc.out->p, 0xFF, out_bytes));
    ASSERT_NO_THROW(cuda::flash_attention(dc.args, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    std::vector<uint16_t> again(gpu.size());
    CUDA_OK(cudaMemcpy(again.data(), dc.out->p, out_bytes, cudaMemcpyDeviceToHost));
    EXPECT_TRUE(again == gpu) << "a second launch" << (pdl ? " (without PDL)" : "") << " differs from the first";
  }
  CUDA_OK(cudaStreamDestroy(stream));

  // Rows outside every sequence are untouched.
  int64_t touched = 0;
  for (int64_t r = 0; r < in.rows; ++r) {
    if (r >= in.seq_begin.front() && r < in.seq_begin.back()) continue;
    for (int col = 0; col < H; ++col) touched += gpu[static_cast<size_t>(r) * H + col] != 0xFFFFu;
  }
  EXPECT_EQ(touched, 0) << "elements written outside every sequence";

  const int64_t nseq = check_seqs < 0 ? static_cast<int64_t>(c.lens.size()) : check_seqs;
  const std::vector<float> ref = run_cpu(c, in, nseq);
  const double tol = rel_l2_tol(c.dtype), abs_tol = max_abs_tol(c.dtype, in.max_abs_v);
  double worst_rel = 0, worst_abs = 0;
  for (int64_t s = 0; s < nseq; ++s) {
    const int64_t b = in.seq_begin[s], e = in.seq_begin[s + 1];
    double num = 0, den = 0, max_abs = 0;
    int64_t nonfinite = 0, masked_rows_nonzero = 0;
    bool all_masked = true;
    for (int64_t r = b; r < e; ++r) all_masked = all_masked && !in.key_valid[r];
    for (int64_t r = b; r < e; ++r) {
      for (int col = 0; col < H; ++col) {
        const size_t i = static_cast<size_t>(r) * H + col;
        const double g = from_bits(gpu[i], c.dtype), y = ref[i];
        if (!std::isfinite(g)) {
          ++nonfinite;
          continue;
        }
        num += (g - y) * (g - y);
        den += y * y;
        max_abs = std::max(max_abs, std::fabs(g - y));
        if (all_masked && g != 0.0) ++masked_rows_nonzero;
      }
    }
    const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    worst_rel = std::max(worst_rel, rel);
    worst_abs = std::max(worst_abs, max_abs);
    EXPECT_EQ(nonfinite, 0) << "sequence " << s << " (L = " << e - b << "): non-finite / unwritten elements";
    EXPECT_LE(rel, tol) << "sequence " << s << " (L = " << e - b << "): rel-L2";
    EXPECT_LE(max_abs, abs_tol) << "sequence " << s << " (L = " << e - b << "): max-abs";
    if (all_masked) EXPECT_EQ(masked_rows_nonzero, 0) << "sequence " << s << ": every key masked must give ctx = 0";
  }
  std::printf("[flash] %-44s %-6s %s d=%-3d heads=%-2d  worst rel-L2 %.2e (tol %.0e)  worst max-abs %.2e (tol %.2e)\n",
              c.name.c_str(), path_name(path),
              c.dtype == DType::kF16 ? "F16 " : "BF16", c.d, c.heads, worst_rel, tol, worst_abs, abs_tol);
}

const DType kDtypes[] = {DType::kF16, DType::kBF16};
const char* dname(DType t) { return t == DType::kF16 ? "f16" : "bf16"; }

// ---- tests -------------------------------------------------------------------------------------------------------

TEST(FlashAttention, SupportedShapes) {
  REQUIRE_GPU();
  AttnCase c;
  c.lens = {65};
  HostInputs in = make_inputs(c);
  DeviceCase dc;
  ASSERT_NO_FATAL_FAILURE(make_device_case(c, in, dc));
  EXPECT_TRUE(cuda::flash_attention_supported(dc.args));
  std::printf("[flash] d=64 engine tables: %zu bytes of shared memory per CTA\n",
              cuda::flash_attention_smem_bytes(dc.args));
  AttentionArgs a = dc.args;
  a.qkv.dtype = a.out.dtype = DType::kF32;
  EXPECT_FALSE(cuda::flash_attention_supported(a)) << "F32 is not supported";
  a = dc.args;
  a.head_dim = 48;
  a.num_heads = 16;
  EXPECT_FALSE(cuda::flash_attention_supported(a)) << "head_dim 48 is not supported";
  a = dc.args;
  a.out.dtype = DType::kBF16;
  EXPECT_FALSE(cuda::flash_attention_supported(a)) << "mixed dtypes";
  a = dc.args;
  a.bias_y = TensorView();
  EXPECT_FALSE(cuda::flash_attention_supported(a)) << "bias_x without bias_y";
  a = dc.args;
  a.qkv.data = static_cast<char*>(a.qkv.data) + 2;
  EXPECT_FALSE(cuda::flash_attention_supported(a)) << "misaligned qkv";
  a = dc.args;
  a.qkv.dtype = DType::kF32;
  EXPECT_THROW(cuda::flash_attention(a, nullptr), Error);
}

// Each length alone (tile edges: 63/64/65 around BN = 64 and the 64-row query tile; 1; 197 = the visual tokens; 709 =
// 512 text + 197; 80, 144 and 650: partial query tiles of 16, 16 and 10 rows for the inline tail's strips), with
// varied key masks (masked head: whole masked key tiles before the first valid key).
TEST(FlashAttention, SingleLengths) {
  REQUIRE_GPU();
  const int lens[] = {1, 63, 64, 65, 197, 709, 80, 144, 650};
  const KeyMask masks[] = {KeyMask::kAllValid,   KeyMask::kRandom,     KeyMask::kMaskedTail,
                           KeyMask::kMaskedHead, KeyMask::kMaskedTail, KeyMask::kMaskedHead,
                           KeyMask::kRandom,     KeyMask::kMaskedHead, KeyMask::kRandom};
  uint32_t seed = 100;
  for (DType t : kDtypes)
    for (int i = 0; i < 9; ++i) {
      AttnCase c;
      c.name = std::string("L=") + std::to_string(lens[i]) + " " + dname(t);
      c.lens = {lens[i]};
      c.masks = {masks[i]};
      c.dtype = t;
      c.seed = ++seed;
      check_case(c);
    }
  for (DType t : kDtypes) {
    AttnCase c;
    c.name = std::string("L=709 all valid ") + dname(t);
    c.lens = {709};
    c.masks = {KeyMask::kAllValid};
    c.dtype = t;
    c.seed = ++seed;
    check_case(c);
  }
}

// Mixed lengths in one batch (each CTA must stay within its own sequence), every mask kind including a sequence whose
// keys are all masked (ctx = 0, as the CPU twin).
TEST(FlashAttention, MixedBatch) {
  REQUIRE_GPU();
  uint32_t seed = 200;
  for (DType t : kDtypes) {
    AttnCase c;
    c.name = std::string("mixed {1,709,65,197,300,64,709} ") + dname(t);
    c.lens = {1, 709, 65, 197, 300, 64, 709};
    c.masks = {KeyMask::kAllValid, KeyMask::kRandom,     KeyMask::kMaskedTail, KeyMask::kRandom,
               KeyMask::kAllMasked, KeyMask::kMaskedTail, KeyMask::kMaskedHead};
    c.dtype = t;
    c.seed = ++seed;
    check_case(c);
  }
  for (DType t : kDtypes) {  // no rows outside the sequences
    AttnCase c;
    c.name = std::string("mixed, packed from row 0 ") + dname(t);
    c.lens = {130, 1, 77};
    c.masks = {KeyMask::kRandom, KeyMask::kAllMasked, KeyMask::kAllValid};
    c.lead_rows = c.tail_rows = 0;
    c.dtype = t;
    c.seed = ++seed;
    check_case(c);
  }
  // Many sequences in one batch (40, 70), lengths 1 … 709 around the 64-row tile edges, every mask kind.
  for (int n : {40, 70}) {
    AttnCase c;
    c.name = std::to_string(n) + " mixed lengths f16";
    for (int i = 0; i < n; ++i) c.lens.push_back(i % 9 == 4 ? 709 : 1 + (i * 97) % 260);
    c.masks = {KeyMask::kRandom, KeyMask::kAllValid, KeyMask::kMaskedTail, KeyMask::kAllMasked, KeyMask::kMaskedHead};
    c.dtype = DType::kF16;
    c.seed = ++seed;
    check_case(c);
  }
}

// Large scores (q, k of std 3.5: scores of std ≈ 12, extremes ≈ ±40 in natural units): the online max must rescale
// correctly across tiles; peaked softmax rows.
TEST(FlashAttention, LargeScores) {
  REQUIRE_GPU();
  uint32_t seed = 300;
  for (DType t : kDtypes) {
    AttnCase c;
    c.name = std::string("large scores mixed ") + dname(t);
    c.lens = {709, 65, 1, 197, 709};
    c.masks = {KeyMask::kRandom, KeyMask::kAllValid, KeyMask::kAllValid, KeyMask::kMaskedTail, KeyMask::kMaskedHead};
    c.qk_sigma = 3.5f;
    c.dtype = t;
    c.seed = ++seed;
    check_case(c);
  }
}

// The other head dims (BN = 64 for d = 32, 32 for d = 128).
TEST(FlashAttention, HeadDims) {
  REQUIRE_GPU();
  uint32_t seed = 400;
  for (int d : {32, 128})
    for (DType t : kDtypes) {
      AttnCase c;
      c.name = std::string("d=") + std::to_string(d) + " mixed " + dname(t);
      c.lens = {1, 709, 65, 197, 33, 300};
      c.masks = {KeyMask::kAllValid, KeyMask::kRandom, KeyMask::kMaskedTail, KeyMask::kAllMasked, KeyMask::kRandom,
                 KeyMask::kMaskedHead};
      c.heads = d == 32 ? 12 : 8;
      c.d = d;
      c.dtype = t;
      c.seed = ++seed;
      check_case(c);
    }
}

// Bias modes: 1D only (bias_x/bias_y undefined), and no bias at all (every table undefined).
TEST(FlashAttention, BiasModes) {
  REQUIRE_GPU();
  uint32_t seed = 500;
  for (int mode : {0, 1})
    for (DType t : kDtypes) {
      AttnCase c;
      c.name = std::string("bias mode ") + std::to_string(mode) + " mixed " + dname(t);
      c.lens = {1, 709, 65, 197, 300};
      c.masks = {KeyMask::kAllValid, KeyMask::kRandom, KeyMask::kMaskedTail, KeyMask::kRandom};
      c.bias_mode = mode;
      c.dtype = t;
      c.seed = ++seed;
      check_case(c);
    }
}

// B = 32 × L = 709 × 12 heads × d 64 (the engine's base shape at 512 text tokens): prints the kernel time (never
// asserted) and checks the first two sequences against the CPU twin.
TEST(FlashAttention, TimingBase709) {
  REQUIRE_GPU();
  for (DType t : kDtypes) {
    AttnCase c;
    c.name = std::string("B=32 L=709 (first 2 checked) ") + dname(t);
    c.lens.assign(32, 709);
    c.masks = {KeyMask::kAllValid, KeyMask::kMaskedTail};
    c.dtype = t;
    c.seed = 600 + static_cast<int>(t);
    check_case(c, 2);

    HostInputs in = make_inputs(c);
    DeviceCase dc;
    ASSERT_NO_FATAL_FAILURE(make_device_case(c, in, dc));
    cudaStream_t stream = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    CUDA_OK(cudaStreamCreate(&stream));
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
    // Time with the biases, then the same data without them (bias mode 0): the difference bounds what the in-kernel
    // table lookups cost (see the kernel's header comment).
    auto time_ms = [&](const AttentionArgs& args) {
      for (int i = 0; i < 3; ++i) cuda::flash_attention(args, stream);  // warm-up
      constexpr int kIters = 20;
      cudaEventRecord(start, stream);
      for (int i = 0; i < kIters; ++i) cuda::flash_attention(args, stream);
      cudaEventRecord(stop, stream);
      cudaEventSynchronize(stop);
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      return ms / kIters;
    };
    const float ms_bias = time_ms(dc.args);
    // The precomputed alternative: the blocks once (timed alone: once per forward, shared by every layer), then the
    // kernel reading them.
    const size_t cache_bytes = cuda::flash_bias_cache_bytes(32, 709, c.heads, c.d);
    DevBuf cache(cache_bytes);
    AttentionArgs cached = dc.args;
    cached.scratch = TensorView(cache.p, DType::kU8, Device::kCUDA, {static_cast<int64_t>(cache_bytes)});
    float ms_prepare = 0;
    {
      AttentionArgs warm = cached;
      ASSERT_TRUE(cuda::flash_prepare_bias(warm, stream));
      cudaEventRecord(start, stream);
      ASSERT_TRUE(cuda::flash_prepare_bias(cached, stream));
      cudaEventRecord(stop, stream);
      cudaEventSynchronize(stop);
      cudaEventElapsedTime(&ms_prepare, start, stop);
    }
    const float ms_cached = time_ms(cached);  // the shape launch() picks
    float ms_shape[3] = {0, 0, 0};
    const bool wg = cuda::flash_wgmma_available(c.d);
    for (int i = 0; i < (wg ? 3 : 2); ++i) {
      const test::ScopedEnv shape("LAYOUTRT_FLASH_SHAPE", i == 0 ? "4w" : i == 1 ? "2w" : "wg");
      ms_shape[i] = time_ms(cached);
    }
    AttentionArgs no_bias = dc.args;
    no_bias.bias1d = no_bias.bias_x = no_bias.bias_y = TensorView();
    const float ms_plain = time_ms(no_bias);
    // 4 · L² · H flops per sequence (QKᵀ and P·V; masked keys counted: the kernel computes them).
    const double flops = 4.0 * 709.0 * 709.0 * c.heads * c.d * 32;
    cudaDeviceProp prop{};
    int dev = 0;
    cudaGetDevice(&dev);
    cudaGetDeviceProperties(&prop, dev);
    std::printf("[flash][timing] %s on %s, B=32 L=709 heads=12 d=64: bias 1D+2D %.3f ms/call (%.1f TFLOP/s), "
                "no bias %.3f ms/call (%.1f TFLOP/s); smem %zu B/CTA with the engine's tables\n",
                dname(t), prop.name, ms_bias, flops / (ms_bias * 1e-3) / 1e12, ms_plain,
                flops / (ms_plain * 1e-3) / 1e12, cuda::flash_attention_smem_bytes(dc.args));
    std::printf("[flash][timing] %s bias cache: %.3f ms/call reading the blocks (%.1f TFLOP/s) + %.3f ms once per "
                "forward to write them (%.0f MB); 12 layers: lookup %.3f ms, cache %.3f ms\n",
                dname(t), ms_cached, flops / (ms_cached * 1e-3) / 1e12, ms_prepare, cache_bytes / 1e6,
                12 * ms_bias, 12 * ms_cached + ms_prepare);
    std::printf("[flash][timing] %s bias cache by kernel shape: 4 warps x 1 strip %.3f ms/call, 2 warps x 2 strips "
                "%.3f ms/call, wgmma warpgroup %.3f ms/call (%.1f TFLOP/s; 0: not available)\n", dname(t),
                ms_shape[0], ms_shape[1], ms_shape[2], wg ? flops / (ms_shape[2] * 1e-3) / 1e12 : 0.0);
    CUDA_OK(cudaGetLastError());
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaStreamDestroy(stream);
  }
}

// The Hopper kernel's phase trace (builds configured with -DLAYOUTRT_ATTENTION_TRACE=ON; skipped otherwise): a B = 1,
// L = 709 launch (two warpgroups per CTA and the tail split, as the engine runs it) leaves one record per warpgroup
// of every full query tile, with the clocks in phase order on a valid SM, and tracing changes no output bit.
TEST(FlashAttention, TraceRecordsPhases) {
  REQUIRE_GPU();
  if (!cuda::attention_trace_built()) GTEST_SKIP() << "built without LAYOUTRT_ATTENTION_TRACE";
  if (!cuda::flash_wgmma_available(64)) GTEST_SKIP() << "no wgmma kernel on this device";
  AttnCase c;
  c.name = "B=1 L=709 f16 traced";
  c.lens = {709};
  c.masks = {KeyMask::kAllValid};
  c.dtype = DType::kF16;
  c.seed = 701;
  HostInputs in = make_inputs(c);
  DeviceCase dc;
  ASSERT_NO_FATAL_FAILURE(make_device_case(c, in, dc));
  const size_t bytes = cuda::flash_bias_cache_bytes(1, 709, c.heads, c.d) + cuda::flash_tail_bytes(1, 709, c.heads);
  DevBuf cache(bytes);
  CUDA_OK(cudaMemset(cache.p, 0, bytes));
  dc.args.scratch = TensorView(cache.p, DType::kU8, Device::kCUDA, {static_cast<int64_t>(bytes)});
  ASSERT_TRUE(cuda::flash_prepare_bias(dc.args, nullptr));
  const size_t out_bytes = static_cast<size_t>(in.rows) * c.heads * c.d * 2;
  auto run = [&](bool traced, std::vector<uint8_t>& out) {
    cuda::attention_trace_enable(traced);
    CUDA_OK(cudaMemset(dc.out->p, 0xff, out_bytes));
    cuda::flash_attention(dc.args, nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    cuda::attention_trace_enable(false);
    out.resize(out_bytes);
    CUDA_OK(cudaMemcpy(out.data(), dc.out->p, out_bytes, cudaMemcpyDeviceToHost));
  };
  std::vector<uint8_t> plain, traced;
  ASSERT_NO_FATAL_FAILURE(run(false, plain));
  EXPECT_TRUE(cuda::attention_trace_read().empty()) << "records written while the trace was off";
  ASSERT_NO_FATAL_FAILURE(run(true, traced));
  EXPECT_EQ(std::memcmp(plain.data(), traced.data(), out_bytes), 0) << "tracing changed the output";
  const std::vector<unsigned long long> v = cuda::attention_trace_read();
  ASSERT_EQ(v.size() % cuda::kAttentionTraceFields, 0u);
  int sms = 0;
  CUDA_OK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  std::vector<int> seen(12 * 11 * 2, 0);  // (head, full query tile, warpgroup)
  for (size_t r = 0; r < v.size(); r += cuda::kAttentionTraceFields) {
    const unsigned long long* x = v.data() + r;
    const cuda::AttentionTraceId id = cuda::attention_trace_id_parts(x[cuda::kTraceId]);
    const int qt = id.qt, h = id.h, wg = id.wg;
    const bool unit = id.unit;
    SCOPED_TRACE("record " + std::to_string(r / cuda::kAttentionTraceFields) + " qt " + std::to_string(qt) + " h " +
                 std::to_string(h) + " wg " + std::to_string(wg) + (unit ? " (tail unit)" : ""));
    EXPECT_LT(x[cuda::kTraceSm], static_cast<unsigned long long>(sms));
    EXPECT_NE(x[cuda::kTraceEnd], 0u);
    EXPECT_LE(x[cuda::kTraceStartNs], x[cuda::kTraceEndNs]);
    std::vector<int> order = {cuda::kTraceStart, cuda::kTracePdlWait, cuda::kTracePrologue};
    if (!unit) {
      order.push_back(cuda::kTraceFirstTile);
      for (int i = 0; i < cuda::kAttentionTraceTiles; ++i) order.push_back(cuda::kTraceTile0 + i);
      order.push_back(cuda::kTraceWalkEnd);
    }
    order.push_back(cuda::kTraceEnd);
    for (size_t k = 1; k < order.size(); ++k) EXPECT_LE(x[order[k - 1]], x[order[k]]) << "fields " << order[k - 1]
                                                                                           << ", " << order[k];
    if (!unit && h < 12 && qt < 11 && wg < 2) ++seen[(h * 11 + qt) * 2 + wg];
  }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "full query tile record " << i;
}

}  // namespace
}  // namespace layoutrt
