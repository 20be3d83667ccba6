// GPU twins of the embedding, LayerNorm and elementwise ops (src/cuda/{embed,patch_embed,layernorm,elementwise}.cu)
// against the CPU backend, through the Backend interface (so the CUDA backend's wiring is tested too).
//
// Inputs are random (never zeros) and rounded to the GPU dtype first; the CPU twin then runs on exactly those values in
// FP32, so what is left is the GPU's FP32 arithmetic plus one rounding of the output. Tolerances, rel-L2 over the
// written rows: F32 1e-6 (reassociated FP32 sums over <= 768 terms), F16 1e-3 (unit roundoff 4.9e-4 on the output),
// BF16 8e-3 (unit roundoff 3.9e-3). Outputs are NaN-poisoned before each run: a row the kernel fails to write fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <random>
#include <utility>
#include <vector>

#include "cuda/cuda_ops.h"
#include "ops/backend.h"
#include "test_util.h"

namespace layoutrt::test {
namespace {

struct Case {
  Precision precision;
  DType table;  // embedding tables / patch weight
  DType act;    // activations
  double tol;
};
const Case kCases[] = {{Precision::kFP32, DType::kF32, DType::kF32, 1e-6},
                       {Precision::kFP16, DType::kF16, DType::kF16, 1e-3},
                       {Precision::kBF16, DType::kBF16, DType::kBF16, 8e-3},
                       {Precision::kMixed, DType::kF32, DType::kF16, 1e-3}};

std::string case_name(const Case& c) { return precision_name(c.precision); }

Tensor random_tensor(Shape shape, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(DType::kF32, std::move(shape));
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = u(rng);
  return t;
}

// A tensor on a backend, freed with it.
class Buffer {
 public:
  Buffer(Backend& be, DType dtype, Shape shape) : be_(be) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    view_.data = be.allocate(std::max<size_t>(1, static_cast<size_t>(n) * dtype_size(dtype)));
    view_.dtype = dtype;
    view_.device = be.device();
    view_.rank = static_cast<int>(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) view_.dims[i] = shape[i];
  }
  Buffer(Backend& be, const Tensor& host, DType dtype) : Buffer(be, dtype, host.shape()) {
    const Tensor t = host.to(dtype);
    be.copy_to_device(view_.data, t.data(), t.nbytes());
  }
  ~Buffer() { be_.deallocate(view_.data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  const TensorView& view() const { return view_; }
  operator const TensorView&() const { return view_; }
  Tensor download() const {
    Shape s(view_.dims.begin(), view_.dims.begin() + view_.rank);
    Tensor t(view_.dtype, s);
    be_.copy_to_host(t.mutable_data(), view_.data, t.nbytes());
    return t.to(DType::kF32);
  }

 private:
  Backend& be_;
  TensorView view_;
};

template <class T>
T* upload_vec(Backend& be, const std::vector<T>& v, std::vector<std::unique_ptr<Buffer>>& keep) {
  keep.push_back(std::make_unique<Buffer>(be, DType::kU8, Shape{static_cast<int64_t>(v.size() * sizeof(T))}));
  be.copy_to_device(keep.back()->view().data, v.data(), v.size() * sizeof(T));
  return static_cast<T*>(keep.back()->view().data);
}

// t rounded to `round` (values both sides of a twin comparison share), stored on `be` as `store`; kept in `keep`.
TensorView upload_rounded(Backend& be, const Tensor& t, DType round, DType store,
                          std::vector<std::unique_ptr<Buffer>>& keep) {
  keep.push_back(std::make_unique<Buffer>(be, t.to(round).to(DType::kF32), store));
  return keep.back()->view();
}

// Rows `rows` of a and b (both [R, H] F32).
Diff compare_rows(const Tensor& a, const Tensor& b, const std::vector<int32_t>& rows) {
  const int64_t H = a.dim(1);
  Tensor x(DType::kF32, {static_cast<int64_t>(rows.size()), H}), y(DType::kF32, {static_cast<int64_t>(rows.size()), H});
  for (size_t i = 0; i < rows.size(); ++i)
    for (int64_t k = 0; k < H; ++k) {
      x.mutable_data_as<float>()[i * H + k] = a.data_as<float>()[rows[i] * H + k];
      y.mutable_data_as<float>()[i * H + k] = b.data_as<float>()[rows[i] * H + k];
    }
  return compare(x, y);
}

class CudaKernels : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    gpu = make_cuda_backend(0, GetParam().precision);
    cpu = make_cpu_backend(1);
  }
  std::unique_ptr<Backend> gpu, cpu;
};

// Both embedding ops, each shape and output mode, against the CPU twin:
//  - H = 64 takes the CTA-per-row kernels, H = 768 (coordinate / shape width 128) the warp-per-row ones;
//  - joint: the JointNorm applied by the op (the model's joint LayerNorm), with and without the FP32 stream out_f32
//    (without it the op's own LayerNorm result is rounded to out's dtype first: the twin does not round, so that
//    rounding is inside the case's tolerance; the GPU's two-step result — op without JointNorm, then layer_norm over
//    its rows — checks it to within FP32 reassociation: 1e-5 on out, which flips a rounding only rarely);
//  - out_f32 (FP32 tolerance 1e-6: no 16-bit rounding on that path).
struct EmbedMode {
  int64_t H, cw, sw;
  bool joint, out32;
};
const EmbedMode kEmbedModes[] = {{64, 12, 8, false, true},   {64, 12, 8, true, false},  {64, 12, 8, true, true},
                                 {768, 128, 128, false, true}, {768, 128, 128, true, false}, {768, 128, 128, true, true}};
std::string mode_str(const EmbedMode& m) {
  return "H " + std::to_string(m.H) + " joint " + std::to_string(m.joint) + " out_f32 " + std::to_string(m.out32);
}

// Rows `rows` of out / out32 compared with the twin: out within tol, out32 within tol32; the GPU's fused result
// against its two-step one (two_step: out) within 1e-5 where given.
void expect_embedding_rows(const std::pair<Tensor, Tensor>& got, const std::pair<Tensor, Tensor>& ref,
                           const Tensor* two_step, const std::vector<int32_t>& rows, const EmbedMode& m, double tol,
                           double tol32) {
  const Diff d = compare_rows(got.first, ref.first, rows);
  EXPECT_EQ(d.nonfinite, 0) << mode_str(m);
  EXPECT_LE(d.rel_l2, tol) << mode_str(m) << " max-abs " << d.max_abs;
  if (m.out32) {
    const Diff d32 = compare_rows(got.second, ref.first, rows);
    EXPECT_EQ(d32.nonfinite, 0) << mode_str(m);
    EXPECT_LE(d32.rel_l2, tol32) << mode_str(m) << " out_f32 max-abs " << d32.max_abs;
  }
  if (two_step) {
    const Diff d2 = compare_rows(got.first, *two_step, rows);
    EXPECT_EQ(d2.nonfinite, 0) << mode_str(m);
    EXPECT_LE(d2.rel_l2, 1e-5) << mode_str(m) << " fused vs two steps, max-abs " << d2.max_abs;
  }
}

// The op's rows, then (two_step) layer_norm over all R rows with the joint weights, as forward.cpp ran it before
// JointNorm: into an F32 stream buffer when out32, else in place in out.
template <class Op>
std::pair<Tensor, Tensor> run_embedding(Backend& be, DType act, int64_t R, int64_t H, const EmbedMode& m,
                                        const Tensor& jw, const Tensor& jb, bool two_step, Op&& op) {
  Buffer out(be, act, {R, H}), out32(be, DType::kF32, {R, H}), jwb(be, jw, DType::kF32), jbb(be, jb, DType::kF32);
  be.fill_nan(out);
  be.fill_nan(out32);
  JointNorm joint;
  if (m.joint && !two_step) joint = {jwb, jbb, 1e-5f};
  if (two_step) {
    op(m.out32 ? out32.view() : out.view(), TensorView(), joint);
    LayerNormArgs a{m.out32 ? out32.view() : out.view(), TensorView(), jwb, jbb, out, 1e-5f};
    if (m.out32) a.out_f32 = out32;
    be.layer_norm(a);
  } else {
    op(out.view(), m.out32 ? out32.view() : TensorView(), joint);
  }
  be.synchronize();
  return {out.download(), out32.download()};
}

TEST_P(CudaKernels, TextEmbeddingMatchesCpuTwin) {
  const Case& c = GetParam();
  for (const EmbedMode& m : kEmbedModes) {
    std::mt19937 rng(7);
    const int64_t V = 50, H = m.H, cw = m.cw, sw = m.sw, n2d = 1024, npos = 100, N = 37, R = 50;
    Tensor word = random_tensor({V, H}, rng), pos = random_tensor({npos, H}, rng), type = random_tensor({2, H}, rng);
    Tensor xt = random_tensor({n2d, cw}, rng), yt = random_tensor({n2d, cw}, rng), ht = random_tensor({n2d, sw}, rng),
           wt = random_tensor({n2d, sw}, rng);
    Tensor lnw = random_tensor({H}, rng, 0.5f, 1.5f), lnb = random_tensor({H}, rng);
    Tensor jw = random_tensor({H}, rng, 0.5f, 1.5f), jb = random_tensor({H}, rng);
    std::vector<int32_t> dst(N), ids(N), pids(N), tids(N), boxes(4 * N);
    std::vector<int32_t> perm(R);
    for (int i = 0; i < R; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    std::uniform_int_distribution<int> coord(0, 1000);
    for (int64_t i = 0; i < N; ++i) {
      dst[i] = perm[i];
      ids[i] = static_cast<int32_t>(rng() % V);
      pids[i] = static_cast<int32_t>(rng() % npos);
      tids[i] = static_cast<int32_t>(rng() % 2);
      int x0 = coord(rng), x1 = coord(rng), y0 = coord(rng), y1 = coord(rng);
      if (x1 < x0) std::swap(x0, x1);
      if (y1 < y0) std::swap(y0, y1);
      if (i == 0) x0 = y0 = 0, x1 = y1 = 1000;  // edges of the tables
      if (i == 1) x0 = x1 = y0 = y1 = 1000;
      boxes[4 * i] = x0, boxes[4 * i + 1] = y0, boxes[4 * i + 2] = x1, boxes[4 * i + 3] = y1;
    }
    // Tables are rounded to the GPU's table dtype on both sides; the CPU twin reads them as F32 (store = F32).
    auto run = [&](Backend& be, DType store, DType act, bool two_step) {
      std::vector<std::unique_ptr<Buffer>> keep;
      auto T = [&](const Tensor& t, DType d) {
        return upload_rounded(be, t, c.table, d == DType::kF32 ? d : store, keep);
      };
      TextEmbeddingArgs a;
      a.num_tokens = N;
      a.dst_row = upload_vec(be, dst, keep);
      a.token_ids = upload_vec(be, ids, keep);
      a.position_ids = upload_vec(be, pids, keep);
      a.token_type_ids = upload_vec(be, tids, keep);
      a.boxes = upload_vec(be, boxes, keep);
      a.word = T(word, c.table), a.position = T(pos, c.table), a.token_type = T(type, c.table);
      a.x = T(xt, c.table), a.y = T(yt, c.table), a.h = T(ht, c.table), a.w = T(wt, c.table);
      a.ln_weight = T(lnw, DType::kF32), a.ln_bias = T(lnb, DType::kF32);
      return run_embedding(be, act, R, H, m, jw, jb, two_step,
                           [&](const TensorView& out, const TensorView& out32, const JointNorm& joint) {
                             a.out = out, a.out_f32 = out32, a.joint = joint;
                             be.text_embedding(a);
                           });
    };
    const auto ref = run(*cpu, DType::kF32, DType::kF32, false), got = run(*gpu, c.table, c.act, false);
    const Tensor two = m.joint ? run(*gpu, c.table, c.act, true).first : Tensor();
    expect_embedding_rows(got, ref, m.joint ? &two : nullptr, dst, m, c.tol, 1e-6);
  }
}

TEST_P(CudaKernels, PatchEmbeddingMatchesCpuTwin) {
  const Case& c = GetParam();
  for (const EmbedMode& m : kEmbedModes) {
    std::mt19937 rng(11);
    const int B = 2, C = 3, S = 64, p = 16, G = S / p, P = G * G, K = C * p * p;
    const int64_t H = m.H, R = 2 * (P + 1) + 5;
    Tensor pixels = random_tensor({B, C, S, S}, rng), weight = random_tensor({H, K}, rng, -0.05f, 0.05f);
    Tensor bias = random_tensor({H}, rng), cls = random_tensor({H}, rng), posemb = random_tensor({P + 1, H}, rng);
    Tensor lnw = random_tensor({H}, rng, 0.5f, 1.5f), lnb = random_tensor({H}, rng);
    Tensor jw = random_tensor({H}, rng, 0.5f, 1.5f), jb = random_tensor({H}, rng);
    const std::vector<int32_t> cls_row = {3, 3 + P + 2};
    auto run = [&](Backend& be, DType wdt, DType act, bool two_step) {
      std::vector<std::unique_ptr<Buffer>> keep;
      auto T = [&](const Tensor& t, DType round, DType d) { return upload_rounded(be, t, round, d, keep); };
      PatchEmbeddingArgs a;
      a.batch = B, a.channels = C, a.image_size = S, a.patch_size = p;
      a.pixels = static_cast<const float*>(T(pixels, DType::kF32, DType::kF32).data);
      a.cls_row = upload_vec(be, cls_row, keep);
      a.weight = T(weight, c.table, wdt);
      a.bias = T(bias, DType::kF32, DType::kF32), a.cls_token = T(cls, DType::kF32, DType::kF32);
      a.pos_embed = T(posemb, DType::kF32, DType::kF32);
      a.ln_weight = T(lnw, DType::kF32, DType::kF32), a.ln_bias = T(lnb, DType::kF32, DType::kF32);
      Buffer patches(be, wdt, {int64_t{B} * P, K}), proj(be, wdt, {int64_t{B} * P, H});
      a.patches = patches, a.proj = proj;
      return run_embedding(be, act, R, H, m, jw, jb, two_step,
                           [&](const TensorView& out, const TensorView& out32, const JointNorm& joint) {
                             a.out = out, a.out_f32 = out32, a.joint = joint;
                             be.patch_embedding(a);
                           });
    };
    const auto ref = run(*cpu, DType::kF32, DType::kF32, false), got = run(*gpu, c.table, c.act, false);
    const Tensor two = m.joint ? run(*gpu, c.table, c.act, true).first : Tensor();
    std::vector<int32_t> rows;
    for (int b = 0; b < B; ++b)
      for (int v = 0; v <= P; ++v) rows.push_back(cls_row[b] + v);
    // The projection's K = 768 products are summed on tensor cores in FP16/BF16 plans: one more rounding of the
    // inputs (already rounded identically on both sides) but a different summation order, and its output (proj, in
    // the weight's dtype) rounded: out_f32 carries that too. Same budget for both.
    const double tol = c.precision == Precision::kFP32 ? 1e-5 : c.tol;
    expect_embedding_rows(got, ref, m.joint ? &two : nullptr, rows, m, tol, tol);
  }
}

TEST_P(CudaKernels, ResidualLayerNormMatchesCpuTwinAndMayAlias) {
  const Case& c = GetParam();
  std::mt19937 rng(13);
  const int64_t R = 37;
  // H = 768 and 1024 take the warp-per-row kernel (F16/BF16/F32); H = 100 and 776 the CTA-per-row one.
  for (const int64_t H : {int64_t{768}, int64_t{1024}, int64_t{100}, int64_t{776}}) {
    // An offset mean (+4) so a one-pass E[x²]-E[x]² variance would lose digits.
    Tensor x = random_tensor({R, H}, rng, 3.f, 5.f), res = random_tensor({R, H}, rng);
    Tensor w = random_tensor({H}, rng, 0.5f, 1.5f), b = random_tensor({H}, rng), xbias = random_tensor({H}, rng);
    for (int mode = 0; mode < 4; ++mode) {
      const bool with_residual = mode & 1, with_x_bias = mode & 2;
      auto run = [&](Backend& be, DType act) {
        Buffer xb(be, x.to(c.act).to(DType::kF32), act), rb(be, res.to(c.act).to(DType::kF32), act);
        Buffer wb(be, w, DType::kF32), bb(be, b, DType::kF32), xbb(be, xbias, DType::kF32);
        LayerNormArgs a{xb, with_residual ? rb.view() : TensorView(), wb, bb, xb, 1e-5f};  // out aliases x
        if (with_x_bias) a.x_bias = xbb;
        be.layer_norm(a);
        be.synchronize();
        return xb.download();
      };
      const Diff d = compare(run(*gpu, c.act), run(*cpu, DType::kF32));
      EXPECT_EQ(d.nonfinite, 0);
      EXPECT_LE(d.rel_l2, c.tol) << "H " << H << " residual " << with_residual << " x_bias " << with_x_bias
                                 << " max-abs " << d.max_abs;
    }
  }
}

// LayerNormArgs::l2_prefetch is a hint: the GPU's LayerNorm prefetches the named tensors into L2 (one-lane forwards
// name the next GEMMs' weights) and must compute exactly what it computes without. Ranges larger than the grid
// (a 4.7 MB "weight"), smaller than one CTA's share (16 bytes), not a multiple of 16 bytes (1000 and 24 bytes: cut),
// on both kernels (H = 768: warp per row; H = 100: CTA per row) and a large launch (4100 rows: no early affine).
TEST_P(CudaKernels, LayerNormL2PrefetchHintChangesNothing) {
  const Case& c = GetParam();
  std::mt19937 rng(29);
  Buffer big(*gpu, DType::kF16, {3072, 768}), odd(*gpu, DType::kU8, {1000}), tiny(*gpu, DType::kU8, {24});
  Buffer sixteen(*gpu, DType::kU8, {16});
  for (const int64_t H : {int64_t{768}, int64_t{100}}) {
    for (const int64_t R : {int64_t{37}, int64_t{4100}}) {
      Tensor x = random_tensor({R, H}, rng, 3.f, 5.f), res = random_tensor({R, H}, rng);
      Tensor w = random_tensor({H}, rng, 0.5f, 1.5f), b = random_tensor({H}, rng);
      auto run = [&](bool hint) {
        Buffer xb(*gpu, x, c.act), rb(*gpu, res, c.act), wb(*gpu, w, DType::kF32), bb(*gpu, b, DType::kF32);
        Buffer out(*gpu, c.act, {R, H});
        gpu->fill_nan(out);
        LayerNormArgs a{xb, rb, wb, bb, out, 1e-5f};
        if (hint) {
          a.l2_prefetch[0] = big;
          a.l2_prefetch[1] = odd;
          a.l2_prefetch[2] = tiny;
          a.l2_prefetch[3] = sixteen;
        }
        gpu->layer_norm(a);
        gpu->synchronize();
        return out.download();
      };
      const Tensor with = run(true), without = run(false);
      ASSERT_EQ(with.nbytes(), without.nbytes());
      EXPECT_EQ(std::memcmp(with.data(), without.data(), with.nbytes()), 0) << "H " << H << " rows " << R;
    }
  }
}

// The FP32 residual stream (LayerNormArgs::out_f32): a layer's LayerNorm reads its residual in FP32 and writes it back
// in place besides the 16-bit copy; the embeddings' joint LayerNorm reads FP32 x. out_f32 carries no 16-bit
// rounding: FP32 tolerance (1e-6) against the CPU twin on the same inputs; out: one rounding (the case's tolerance).
TEST_P(CudaKernels, Fp32ResidualStreamLayerNormMatchesCpuTwin) {
  const Case& c = GetParam();
  if (c.act == DType::kF32) GTEST_SKIP() << "FP32 activations are the stream";
  std::mt19937 rng(19);
  const int64_t R = 37;
  for (const int64_t H : {int64_t{768}, int64_t{1024}, int64_t{100}, int64_t{776}}) {
    Tensor x = random_tensor({R, H}, rng, 3.f, 5.f), res = random_tensor({R, H}, rng);
    Tensor w = random_tensor({H}, rng, 0.5f, 1.5f), b = random_tensor({H}, rng), xbias = random_tensor({H}, rng);
    const Tensor x16 = x.to(c.act).to(DType::kF32);  // the GEMM output is 16-bit; the residual stays FP32
    for (const bool joint : {false, true}) {
      auto run = [&](Backend& be, DType act) {
        Buffer xb(be, joint ? x : x16, joint ? DType::kF32 : act), rb(be, res, DType::kF32);
        Buffer wb(be, w, DType::kF32), bb(be, b, DType::kF32), xbb(be, xbias, DType::kF32), out(be, act, {R, H});
        be.fill_nan(out);
        LayerNormArgs a{xb, TensorView(), wb, bb, out, 1e-5f};
        if (joint) {
          a.out_f32 = xb;  // reads FP32 x, writes it back in place
        } else {
          a.residual = rb, a.x_bias = xbb, a.out_f32 = rb;  // residual stream updated in place
        }
        be.layer_norm(a);
        be.synchronize();
        return std::make_pair(out.download(), (joint ? xb : rb).download());
      };
      const auto got = run(*gpu, c.act), ref = run(*cpu, DType::kF32);
      const Diff d = compare(got.first, ref.first), d32 = compare(got.second, ref.second);
      EXPECT_EQ(d.nonfinite + d32.nonfinite, 0);
      EXPECT_LE(d.rel_l2, c.tol) << "H " << H << " joint " << joint << " max-abs " << d.max_abs;
      EXPECT_LE(d32.rel_l2, 1e-6) << "H " << H << " joint " << joint << " out_f32 max-abs " << d32.max_abs;
    }
  }
}

TEST_P(CudaKernels, GatherRowsIsExact) {
  const Case& c = GetParam();
  std::mt19937 rng(17);
  const int64_t R = 40, H = 96;
  const Tensor x = random_tensor({R, H}, rng).to(c.act).to(DType::kF32);
  const std::vector<int32_t> rows = {39, 0, 7, 7, 21};
  auto run = [&](Backend& be, DType act) {
    std::vector<std::unique_ptr<Buffer>> keep;
    Buffer xb(be, x, act), out(be, DType::kF32, {static_cast<int64_t>(rows.size()), H});
    be.fill_nan(out);
    be.gather_rows({xb, upload_vec(be, rows, keep), static_cast<int64_t>(rows.size()), out});
    be.synchronize();
    return out.download();
  };
  const Diff d = compare(run(*gpu, c.act), run(*cpu, DType::kF32));
  EXPECT_EQ(d.nonfinite, 0);
  EXPECT_EQ(d.max_abs, 0.0);
}

// A head's first linear on gathered rows (GatherLinearArgs) against the CPU twin (gather, then linear): the one-kernel
// path (N <= 16 labels, H = 768 / 1024 / 1536 rows of x in its dtype: 3, 4, 6 vectors per lane in F16) and the
// fallback (N = 20; H = 100), with and without bias, tanh epilogue; rows repeated and out of order; 257 rows (one row
// per warp, W read from global memory) and 9000 (W staged in shared memory, four rows per warp). x is rounded to the
// activation dtype on both sides, W and the math are F32: FP32 tolerance (1e-6, reassociated 768-term sums).
TEST_P(CudaKernels, GatherLinearMatchesCpuTwin) {
  const Case& c = GetParam();
  std::mt19937 rng(23);
  const int64_t R = 300;
  struct Shape {
    int64_t H, N;
    bool bias;
    Epilogue epi;
  };
  for (const Shape& sh : {Shape{768, 7, true, Epilogue::kNone}, Shape{768, 16, false, Epilogue::kTanh},
                          Shape{1024, 3, true, Epilogue::kNone}, Shape{1536, 8, true, Epilogue::kNone},
                          Shape{768, 20, true, Epilogue::kNone}, Shape{100, 5, true, Epilogue::kTanh}}) {
    const Tensor x = random_tensor({R, sh.H}, rng).to(c.act).to(DType::kF32);
    const Tensor W = random_tensor({sh.N, sh.H}, rng, -0.1f, 0.1f), b = random_tensor({sh.N}, rng);
    for (const int64_t n : {int64_t{257}, int64_t{9000}}) {
      std::vector<int32_t> rows(n);
      for (auto& r : rows) r = static_cast<int32_t>(rng() % R);
      rows[0] = R - 1, rows[1] = 0, rows[2] = 0;
      auto run = [&](Backend& be, DType act) {
        std::vector<std::unique_ptr<Buffer>> keep;
        Buffer xb(be, x, act), wb(be, W, DType::kF32), bb(be, b, DType::kF32), out(be, DType::kF32, {n, sh.N}),
            scratch(be, DType::kF32, {n, sh.H});
        be.fill_nan(out);
        be.gather_linear({xb, upload_vec(be, rows, keep), n, wb, sh.bias ? bb.view() : TensorView(), out, sh.epi,
                          scratch});
        be.synchronize();
        return out.download();
      };
      const Diff d = compare(run(*gpu, c.act), run(*cpu, DType::kF32));
      EXPECT_EQ(d.nonfinite, 0) << "H " << sh.H << " N " << sh.N << " n " << n;
      EXPECT_LE(d.rel_l2, 1e-6) << "H " << sh.H << " N " << sh.N << " n " << n << " max-abs " << d.max_abs;
    }
  }
}

// The last LayerNorm and the head's first linear as one op (Backend::layer_norm_gather_linear, the forward's last
// layer on the head's rows): where the GPU fuses them (H = 768 in every dtype: kernel_choices "head_layer_norm" 1) the
// LayerNorm's rows and the logits are the same bits as layer_norm, then gather_linear, on the GPU; elsewhere (H = 1024
// and 100) the two ops run ("0"). Both within the case's tolerance of the CPU twin (the two ops on FP32 values).
// 513 rows (a partial CTA), visited in a shuffled order; with and without residual, x_bias and head bias, tanh.
TEST_P(CudaKernels, LayerNormHeadMatchesSeparateOps) {
  const Case& c = GetParam();
  std::mt19937 rng(31);
  const int64_t R = 513;
  struct Shape {
    int64_t H, N;
    bool residual, x_bias, bias;
    Epilogue epi;
  };
  for (const Shape& sh :
       {Shape{768, 7, true, true, true, Epilogue::kNone}, Shape{768, 16, true, false, false, Epilogue::kTanh},
        Shape{768, 3, false, true, true, Epilogue::kNone}, Shape{1024, 5, true, true, true, Epilogue::kNone},
        Shape{100, 5, true, true, true, Epilogue::kTanh}}) {
    SCOPED_TRACE("H " + std::to_string(sh.H) + " N " + std::to_string(sh.N));
    const bool fusable = sh.H == 768;
    const Tensor x = random_tensor({R, sh.H}, rng, -2.f, 3.f).to(c.act).to(DType::kF32);
    const Tensor res = random_tensor({R, sh.H}, rng).to(c.act).to(DType::kF32);
    const Tensor w = random_tensor({sh.H}, rng, 0.5f, 1.5f), b = random_tensor({sh.H}, rng);
    const Tensor xbias = random_tensor({sh.H}, rng), W = random_tensor({sh.N, sh.H}, rng, -0.1f, 0.1f);
    const Tensor hb = random_tensor({sh.N}, rng);
    std::vector<int32_t> rows(R);
    for (int64_t i = 0; i < R; ++i) rows[i] = static_cast<int32_t>(i);
    std::shuffle(rows.begin(), rows.end(), rng);
    // {LayerNorm rows, logits} of one op (fused = true) or the two.
    auto run = [&](Backend& be, DType act, bool fused) {
      std::vector<std::unique_ptr<Buffer>> keep;
      Buffer xb(be, x, act), rb(be, res, act), wb(be, w, DType::kF32), bb(be, b, DType::kF32);
      Buffer xbb(be, xbias, DType::kF32), Wb(be, W, DType::kF32), hbb(be, hb, DType::kF32);
      Buffer out(be, act, {R, sh.H}), logits(be, DType::kF32, {R, sh.N}), scratch(be, DType::kF32, {R, sh.H});
      be.fill_nan(out);
      be.fill_nan(logits);
      LayerNormArgs ln{xb, sh.residual ? rb.view() : TensorView(), wb, bb, out, 1e-5f};
      if (sh.x_bias) ln.x_bias = xbb;
      const GatherLinearArgs h{out, upload_vec(be, rows, keep), R, Wb, sh.bias ? hbb.view() : TensorView(), logits,
                               sh.epi, scratch};
      if (fused) {
        be.layer_norm_gather_linear(ln, h);
      } else {
        be.layer_norm(ln);
        be.gather_linear(h);
      }
      be.synchronize();
      return std::make_pair(out.download(), logits.download());
    };
    const auto one = run(*gpu, c.act, true);
    EXPECT_EQ(gpu->kernel_choices()["head_layer_norm"], fusable ? "1" : "0");
    const auto two = run(*gpu, c.act, false);
    for (const auto& [got, want, what] : {std::tuple{&one.first, &two.first, "LayerNorm rows"},
                                          std::tuple{&one.second, &two.second, "logits"}}) {
      ASSERT_EQ(got->nbytes(), want->nbytes());
      EXPECT_EQ(std::memcmp(got->data(), want->data(), got->nbytes()), 0) << what << ": not the two ops' bits";
    }
    const auto twin = run(*cpu, DType::kF32, true);
    for (const auto& [got, want, what] : {std::tuple{&one.first, &twin.first, "LayerNorm rows"},
                                          std::tuple{&one.second, &twin.second, "logits"}}) {
      const Diff d = compare(*got, *want);
      EXPECT_EQ(d.nonfinite, 0) << what;
      EXPECT_LE(d.rel_l2, c.tol) << what << " max-abs " << d.max_abs;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, CudaKernels, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return case_name(info.param); });

// bias + activation against the exact formulas in double (the erf GELU is what transformers' "gelu" computes).
TEST(CudaElementwise, BiasActivationIsExactInFp32) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  auto be = make_cuda_backend(0, Precision::kFP32);
  std::mt19937 rng(19);
  const int64_t M = 33, N = 70;
  const Tensor y = random_tensor({M, N}, rng, -6.f, 6.f), bias = random_tensor({N}, rng);
  for (Epilogue e : {Epilogue::kNone, Epilogue::kGeluErf, Epilogue::kGeluTanh, Epilogue::kRelu, Epilogue::kSilu,
                     Epilogue::kTanh}) {
    Buffer yb(*be, y, DType::kF32), bb(*be, bias, DType::kF32);
    cuda::bias_activation(yb, bb, e, static_cast<cudaStream_t>(be->stream()));
    be->synchronize();
    const Tensor got = yb.download();
    Tensor want(DType::kF32, {M, N});
    for (int64_t i = 0; i < M * N; ++i) {
      const double v = double(y.data_as<float>()[i]) + bias.data_as<float>()[i % N];
      double r = v;
      switch (e) {
        case Epilogue::kNone: break;
        case Epilogue::kGeluErf: r = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); break;
        case Epilogue::kGeluTanh: r = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))); break;
        case Epilogue::kRelu: r = v > 0 ? v : 0; break;
        case Epilogue::kSilu: r = v / (1.0 + std::exp(-v)); break;
        case Epilogue::kTanh: r = std::tanh(v); break;
      }
      want.mutable_data_as<float>()[i] = static_cast<float>(r);
    }
    const Diff d = compare(got, want);
    EXPECT_LE(d.max_abs, 4e-6) << "epilogue " << static_cast<int>(e);
  }
}

}  // namespace
}  // namespace layoutrt::test
