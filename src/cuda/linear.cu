// Dense layers on the GPU with cuBLASLt: y = epilogue(x · Wᵀ + b), the twin of src/cpu/linear.cpp.
//
// Row-major x [M, K], W [N, K] (torch's [out, in]) and y [M, N] are, read column-major, xᵀ [K, M], Wᵀ [K, N] and
// yᵀ [N, M]; so we compute yᵀ = W · xᵀ: cuBLASLt's A = W with TRANSA = T (stored K × N, ld K), B = x with TRANSB = N
// (stored K × M, ld K), C = D = y (stored N × M, ld N); m = N, n = M, k = K.
//
// Epilogues. cuBLASLt's GELU epilogue is the tanh approximation, and transformers' "gelu" is the exact erf form, so
// activations never go through cuBLASLt: the GEMM runs plain and cuda::bias_activation (elementwise.cu) adds the F32
// bias and applies the exact FP32 activation in place. The one fusion used is CUBLASLT_EPILOGUE_BIAS where there is no
// activation (the QKV projection, the heads' last layer): D = acc + bias in FP32, rounded once. cuBLASLt wants the bias
// in the output's dtype, so F16/BF16 GEMMs use a copy of the F32 bias rounded to that dtype (made on first use, kept
// per bias pointer by the runner); F32 GEMMs use the F32 bias as is — the CPU twin's arithmetic exactly. For FP16/BF16
// this rounds once where GEMM-then-bias-pass rounded twice, and saves a [rows, N] read+write.
//
// On Hopper (compute capability 9.0), F16/BF16 GELU linears (the FFN's first layer) run instead as one CUTLASS kernel
// with bias + exact GELU in its FP32 epilogue (src/cuda_sm90/gemm_bias_gelu.cu, when built with the CUTLASS headers;
// LAYOUTRT_FUSED_GELU=0 turns it off for A/B checks): one rounding instead of two and no separate pass.
//
// Descriptors, layouts and the chosen algorithm are cached per GemmKey (shape, dtype, compute mode, epilogue and the
// operands' pointer alignment, which the heuristic may exploit). choose_algorithm() is the one place an algorithm is
// picked: cuBLASLt's heuristic candidates, timed on first use (LAYOUTRT_GEMM_TUNE=0: the heuristic's first pick).
// The choice is kept process-wide per (device, key) in GemmAlgoTable (gemm_algos.h), which a plan built on a GPU
// seeds with the algorithms timed at build time; a seeded algorithm is validated with cublasLtMatmulAlgoCheck on
// first use and re-chosen if cuBLASLt rejects it.
#include <cublasLt.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>
#include <sstream>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/gemm_algos.h"
#include "cuda/gemm_sm90.h"

namespace layoutrt::cuda {

#ifndef LAYOUTRT_WITH_SM90_GEMM
bool sm90_linear_bias_gelu(const TensorView&, const TensorView&, const TensorView&, const TensorView&, cudaStream_t) {
  return false;  // built without the CUTLASS headers
}
bool sm90_fused_gemm_built() { return false; }
#endif

namespace {

bool fused_gelu_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("LAYOUTRT_FUSED_GELU");
    return !(env && std::string(env) == "0");
  }();
  return on;
}

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
    default: throw_error(ErrorCode::kInternal, "cuda linear: unsupported dtype ", dtype_name(t));
  }
}

// The largest power of two, at most 256, that divides the address: what an algorithm may assume of the pointer.
uint32_t pointer_alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a & (al - 1))) al >>= 1;
  return al;
}

// Everything cuBLASLt needs to run one GemmKey; destroyed with the runner.
struct GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // A = W, B = x, C = D = y
  cublasLtMatmulAlgo_t algo{};
  GemmPlan() = default;
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;
  ~GemmPlan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

std::string shape_text(const GemmKey& k) {
  std::ostringstream s;
  s << "x[" << k.m << "," << k.k << "] · W[" << k.n << "," << k.k << "]ᵀ " << dtype_name(k.dtype)
    << (k.tf32 ? " (TF32)" : "") << (k.bias_epilogue ? " +bias epilogue" : "") << ", alignment x/W/y " << k.align_x
    << "/" << k.align_w << "/" << k.align_y << " bytes";
  return s.str();
}

// Operands of the call that first needs a GemmKey: lets choose_algorithm time candidates on the real data.
struct TuneContext {
  const void* w = nullptr;
  const void* x = nullptr;
  void* y = nullptr;
  const void* bias = nullptr;
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
};

// GEMM autotuning: LAYOUTRT_GEMM_TUNE=0 keeps cuBLASLt's first heuristic choice.
bool tuning_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("LAYOUTRT_GEMM_TUNE");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

// How many heuristic candidates are timed: LAYOUTRT_GEMM_CANDIDATES (1 .. kMaxCandidates, default 8).
constexpr int kMaxCandidates = 64;
int gemm_candidates() {
  static const int n = [] {
    const char* e = std::getenv("LAYOUTRT_GEMM_CANDIDATES");
    const int v = e ? std::atoi(e) : 8;
    return v < 1 ? 1 : v > kMaxCandidates ? kMaxCandidates : v;
  }();
  return n;
}

// The one place a GEMM algorithm is chosen: cuBLASLt's heuristic proposes up to gemm_candidates() algorithms within
// our workspace and the operands' actual alignment; when tuning is on (and the stream is not being captured into a
// graph) each is timed on the call's own operands (1 warm-up + 3 timed runs, CUDA events) and the fastest is kept for
// this key. The heuristic's first pick is often not the fastest for the skinny-K / wide-N shapes of this model.
// Throws kCuda naming the shape when nothing fits.
cublasLtMatmulAlgo_t choose_algorithm(cublasLtHandle_t handle, const GemmKey& key, const GemmPlan& p,
                                      const TuneContext* tc) {
  const int candidates = gemm_candidates();
  cublasLtMatmulPreference_t pref = nullptr;
  LRT_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } guard{pref};
  const uint64_t ws = kWorkspaceBytes;
  LRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  const uint32_t al_a = key.align_w, al_b = key.align_x, al_c = key.align_y;
  LRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
  LRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
  LRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
  LRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));

  cublasLtMatmulHeuristicResult_t results[kMaxCandidates] = {};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, candidates, results, &found);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found == 0))
    throw_error(ErrorCode::kCuda, "cuda linear: cuBLASLt has no algorithm for ", shape_text(key));
  LRT_CUBLAS(st);
  LRT_CUBLAS(results[0].state);
  if (found == 1 || !tc || !tuning_enabled()) return results[0].algo;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  LRT_CUDA(cudaStreamIsCapturing(tc->stream, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return results[0].algo;

  if (key.bias_epilogue)
    LRT_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &tc->bias, sizeof(tc->bias)));
  cudaEvent_t start = nullptr, stop = nullptr;
  LRT_CUDA(cudaEventCreate(&start));
  LRT_CUDA(cudaEventCreate(&stop));
  const float alpha = 1.0f, beta = 0.0f;
  int best = 0;
  float best_ms = 0;
  for (int i = 0; i < found; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
    auto launch = [&] {
      return cublasLtMatmul(handle, p.desc, &alpha, tc->w, p.a, tc->x, p.b, &beta, tc->y, p.c, tc->y, p.c,
                            &results[i].algo, tc->workspace, kWorkspaceBytes, tc->stream);
    };
    if (launch() != CUBLAS_STATUS_SUCCESS) continue;  // a candidate that cannot run is skipped
    LRT_CUDA(cudaEventRecord(start, tc->stream));
    for (int r = 0; r < 3; ++r) LRT_CUBLAS(launch());
    LRT_CUDA(cudaEventRecord(stop, tc->stream));
    LRT_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    LRT_CUDA(cudaEventElapsedTime(&ms, start, stop));
    if (i == 0 || ms < best_ms) best = i, best_ms = ms;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return results[best].algo;
}

class CublasLtLinearRunner : public LinearRunner {
 public:
  explicit CublasLtLinearRunner(bool allow_tf32) : allow_tf32_(allow_tf32) {
    LRT_CUBLAS(cublasLtCreate(&handle_));
    const cudaError_t e = cudaMalloc(&workspace_, kWorkspaceBytes);
    if (e != cudaSuccess) {
      cublasLtDestroy(handle_);
      throw_cuda(e, "cudaMalloc(cuBLASLt workspace, 32 MiB)", __FILE__, __LINE__);
    }
  }
  ~CublasLtLinearRunner() override {
    plans_.clear();
    // cudaFree waits for work queued on the device, so the workspace is not freed under a running GEMM.
    cudaFree(workspace_);
    for (auto& [k, p] : typed_biases_) cudaFree(p);
    cublasLtDestroy(handle_);
  }

  void run(const LinearArgs& a, cudaStream_t stream) override {
    const TensorView &x = a.x, &w = a.weight, &y = a.y, &bias = a.bias;
    auto fail = [&](const char* what) {
      throw_error(ErrorCode::kInternal, "cuda linear: ", what, ": x ", dtype_name(x.dtype), " [", x.dims[0], ",",
                  x.dims[1], "] rank ", x.rank, ", W ", dtype_name(w.dtype), " [", w.dims[0], ",", w.dims[1], "] rank ",
                  w.rank, ", y ", dtype_name(y.dtype), " [", y.dims[0], ",", y.dims[1], "] rank ", y.rank, ", bias ",
                  bias.defined() ? dtype_name(bias.dtype) : "none", " [", bias.dims[0], "]");
    };
    if (x.rank != 2 || w.rank != 2 || y.rank != 2) fail("x, W and y must be matrices");
    const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
    if (w.dim(1) != K || y.dim(0) != M || y.dim(1) != N) fail("shapes disagree");
    if (x.dtype != w.dtype || y.dtype != x.dtype) fail("x, W and y must share a dtype");
    if (x.device != Device::kCUDA || w.device != Device::kCUDA || y.device != Device::kCUDA) fail("views must be on the GPU");
    if (bias.defined() && (bias.dtype != DType::kF32 || bias.rank != 1 || bias.dim(0) != N || bias.device != Device::kCUDA))
      fail("bias must be F32 [N] on the GPU");
    if (M == 0 || N == 0) return;
    if (K == 0) {  // empty reduction: y = epilogue(bias) (cuBLASLt rejects k = 0)
      LRT_CUDA(cudaMemsetAsync(y.data, 0, y.nbytes(), stream));
      bias_activation(y, bias, a.epilogue, stream);
      return;
    }
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) fail("dimension exceeds int32");
    if (a.epilogue == Epilogue::kGeluErf && bias.defined() && fused_gelu_enabled() &&
        sm90_linear_bias_gelu(x, w, bias, y, stream))
      return;

    GemmKey key;
    key.m = M;
    key.n = N;
    key.k = K;
    key.dtype = x.dtype;
    key.tf32 = allow_tf32_ && x.dtype == DType::kF32;
    // Fused bias where there is no activation: F32 output with the F32 bias (16-byte aligned), F16/BF16 output with
    // the bias rounded to that dtype.
    key.bias_epilogue = bias.defined() && a.epilogue == Epilogue::kNone &&
                        (x.dtype != DType::kF32 || pointer_alignment(bias.data) >= 16);
    const void* bias_ptr = !key.bias_epilogue ? nullptr
                           : x.dtype == DType::kF32 ? bias.data
                                                    : typed_bias(bias, x.dtype, stream);
    key.align_x = static_cast<uint16_t>(pointer_alignment(x.data));
    key.align_w = static_cast<uint16_t>(pointer_alignment(w.data));
    key.align_y = static_cast<uint16_t>(pointer_alignment(y.data));

    TuneContext tc;
    tc.w = w.data;
    tc.x = x.data;
    tc.y = y.data;
    tc.bias = bias_ptr;
    tc.stream = stream;
    tc.workspace = workspace_;
    GemmPlan& p = plan_for(key, tc);
    if (key.bias_epilogue) {
      const void* bp = bias_ptr;
      LRT_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp)));
    }
    const float alpha = 1.0f, beta = 0.0f;
    LRT_CUBLAS(cublasLtMatmul(handle_, p.desc, &alpha, w.data, p.a, x.data, p.b, &beta, y.data, p.c, y.data, p.c,
                              &p.algo, workspace_, kWorkspaceBytes, stream));
    if (!key.bias_epilogue && (bias.defined() || a.epilogue != Epilogue::kNone))
      bias_activation(y, bias, a.epilogue, stream);
  }

 private:
  // The F32 bias rounded to `t`, converted on first use (never inside a graph capture: every key runs eagerly before
  // it is recorded) and kept for the runner's life — the engine's weights outlive every context's runner.
  const void* typed_bias(const TensorView& bias, DType t, cudaStream_t stream) {
    const auto k = std::make_pair(bias.data, t);
    auto it = typed_biases_.find(k);
    if (it != typed_biases_.end()) return it->second;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    LRT_CUDA(cudaStreamIsCapturing(stream, &capturing));
    if (capturing != cudaStreamCaptureStatusNone)
      throw_error(ErrorCode::kInternal, "cuda linear: bias conversion requested inside a graph capture");
    void* p = nullptr;
    LRT_CUDA(cudaMalloc(&p, static_cast<size_t>(bias.numel()) * dtype_size(t)));
    typed_biases_.emplace(k, p);
    convert_from_f32(bias.as<float>(), TensorView(p, t, Device::kCUDA, {bias.numel()}), stream);
    return p;
  }

  GemmPlan& plan_for(const GemmKey& key, const TuneContext& tc) {
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;
    auto p = std::make_unique<GemmPlan>();
    const cudaDataType_t t = cuda_type(key.dtype);
    const cublasComputeType_t compute = key.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    LRT_CUBLAS(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LRT_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    LRT_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    const cublasLtEpilogue_t epi = key.bias_epilogue ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    LRT_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (key.bias_epilogue) {
      const cudaDataType_t bt = t;  // the output's dtype (F32 bias for F32 GEMMs)
      LRT_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
    }
    LRT_CUBLAS(cublasLtMatrixLayoutCreate(&p->a, t, static_cast<uint64_t>(key.k), static_cast<uint64_t>(key.n), key.k));
    LRT_CUBLAS(cublasLtMatrixLayoutCreate(&p->b, t, static_cast<uint64_t>(key.k), static_cast<uint64_t>(key.m), key.k));
    LRT_CUBLAS(cublasLtMatrixLayoutCreate(&p->c, t, static_cast<uint64_t>(key.n), static_cast<uint64_t>(key.m), key.n));
    // One choice per (device, key) for the whole process, so every context (and every run) computes with the same
    // algorithm: outputs do not depend on which context ran them. Tuned while the table is small (packed batches of
    // ever-new row counts would otherwise re-tune forever).
    int device = 0;
    LRT_CUDA(cudaGetDevice(&device));
    GemmAlgoTable& table = GemmAlgoTable::instance();
    {
      std::lock_guard<std::mutex> lock(table.mu);
      auto c = table.entries.find({device, key});
      if (c != table.entries.end() && c->second.from_plan) {
        // From a plan: cuBLASLt must accept it for these descriptors on this device, else it is chosen afresh.
        cublasLtMatmulHeuristicResult_t check{};
        if (cublasLtMatmulAlgoCheck(handle_, p->desc, p->a, p->b, p->c, p->c, &c->second.algo, &check) !=
                CUBLAS_STATUS_SUCCESS ||
            check.state != CUBLAS_STATUS_SUCCESS || check.workspaceSize > kWorkspaceBytes) {
          std::fprintf(stderr, "layoutrt: warning: the plan's GEMM algorithm for %s is rejected by cuBLASLt; re-tuned\n",
                       shape_text(key).c_str());
          table.entries.erase(c);
          c = table.entries.end();
        } else {
          c->second.from_plan = false;
        }
      }
      if (c == table.entries.end()) {
        GemmAlgoEntry e;
        e.algo = choose_algorithm(handle_, key, *p, table.entries.size() < 512 ? &tc : nullptr);
        c = table.entries.emplace(std::make_pair(device, key), e).first;
      }
      c->second.used_epoch = table.epoch;
      p->algo = c->second.algo;
    }
    GemmPlan& ref = *p;
    plans_.emplace(key, std::move(p));
    return ref;
  }

  bool allow_tf32_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::map<GemmKey, std::unique_ptr<GemmPlan>> plans_;
  std::map<std::pair<const void*, DType>, void*> typed_biases_;
};

}  // namespace

std::unique_ptr<LinearRunner> LinearRunner::create(bool allow_tf32) {
  return std::make_unique<CublasLtLinearRunner>(allow_tf32);
}

}  // namespace layoutrt::cuda
