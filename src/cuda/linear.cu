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
// with bias + exact GELU in its FP32 epilogue (src/cuda_sm90/gemm_sm90.cuh, when built with the CUTLASS headers): one
// rounding instead of two and no separate pass. Its configurations are this key's candidates (timed like cuBLASLt's
// below, recorded in the plan by name). LAYOUTRT_FUSED_GELU=0 turns it off (cuBLASLt + the bias/GELU pass);
// LAYOUTRT_SM90_GEMM=off runs its untimed default configuration, =<configuration name> forces one (A/B checks; read
// when a shape is first met, and neither recorded process-wide).
//
// Descriptors, layouts and the chosen algorithm are cached per GemmKey (shape, dtype, compute mode, epilogue, the
// operands' pointer alignment, which the heuristic may exploit, and the lanes the forward runs it in).
// choose_algorithm() is the one place an algorithm is picked: cuBLASLt's heuristic candidates and the Hopper
// configurations, timed on first use (LAYOUTRT_GEMM_TUNE=0: the heuristic's first pick; LAYOUTRT_GEMM_LOG=1 prints
// every candidate's time). A GEMM of two concurrent lanes is timed as two copies at once (each lane's GEMM shares the
// GPU with its twin): alone, the packed FUNSD lanes' FFN GEMM (7476 / 7539 rows) times fastest with 128 × 128 tiles
// (10.7 waves), beside its twin 128 × 192 tiles (7.15 waves, the other lane's work filling the last) are faster —
// forced in the forward 5.515 vs 5.563 ms. Timed per lane count (H200, 2026-12-02,
// bench/results/2026-12-02-h200-lane-tuning.md), within each of two calls: packed FUNSD −0.6 to −0.8 % (5.590 – 5.662
// vs 5.627 – 5.707 ms), B = 8 −0.6 to −0.7 %, B = 32 within its ±1 % spread, B = 1 unchanged (one lane);
// LAYOUTRT_GEMM_TUNE_LANES=0 keys and times every GEMM alone, as before.
// The choice is kept process-wide per (device, key) in GemmAlgoTable (gemm_algos.h), which a plan built on a GPU
// seeds with the algorithms timed at build time; a seeded algorithm is validated with cublasLtMatmulAlgoCheck on
// first use and re-chosen if cuBLASLt rejects it.
#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/cuda_ops.h"
#include "cuda/device_info.h"
#include "cuda/gemm_algos.h"
#include "cuda/gemm_sm90.h"
#include "cuda/graphs.h"

namespace layoutrt::cuda {

#ifndef LAYOUTRT_WITH_SM90_GEMM  // built without the CUTLASS headers: no Hopper kernels
bool sm90_fused_gemm_built() { return false; }
int sm90_gemm_config_count() { return 0; }
const char* sm90_gemm_config_name(int) { return "?"; }
int sm90_gemm_config_by_name(const std::string&) { return -1; }
bool sm90_gemm_applies(const TensorView&, const TensorView&, const TensorView&, const TensorView&) { return false; }
bool sm90_linear_bias_gelu(int, const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                           cudaStream_t) {
  return false;
}
int sm90_gemm_default_config(int64_t, int64_t) { return 0; }
#endif

namespace {

bool fused_gelu_enabled() {
  static const bool on = switch_on("LAYOUTRT_FUSED_GELU");
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
// Everything needed to run one GemmKey; destroyed with the runner. Fused-GELU keys (GemmKey::gelu) have no cuBLASLt
// descriptors: the Hopper configuration sm90_config runs them.
struct GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // A = W, B = x, C = D = y
  cublasLtMatmulAlgo_t algo{};
  int sm90_config = -1;
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
    << (k.tf32 ? " (TF32)" : "") << (k.gelu ? " +bias+GELU epilogue" : k.bias_epilogue ? " +bias epilogue" : "")
    << ", alignment x/W/y " << k.align_x << "/" << k.align_w << "/" << k.align_y << " bytes";
  if (k.lanes > 1) s << ", " << int{k.lanes} << " concurrent lanes";
  return s.str();
}

// Operands of the call that first needs a GemmKey: lets choose_algorithm time candidates on the real data.
struct TuneContext {
  TensorView x, w, y;
  TensorView bias;                   // F32, as given (the fused-GELU kernel's)
  const void* typed_bias = nullptr;  // as cuBLASLt's bias epilogue reads it
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  const std::function<void()>* quiesce = nullptr;  // waits for the caller's other streams before timing
};

// Keys carry the concurrent lane count (GemmKey::lanes): LAYOUTRT_GEMM_TUNE_LANES=0 makes every key's 1 (candidates
// timed alone, as before 2026-12-02), for A/B timing.
bool tune_per_lanes() {
  static const bool on = switch_on("LAYOUTRT_GEMM_TUNE_LANES");
  return on;
}

// GEMM autotuning: LAYOUTRT_GEMM_TUNE=0 keeps cuBLASLt's first heuristic choice.
bool tuning_enabled() {
  static const bool on = switch_on("LAYOUTRT_GEMM_TUNE");
  return on;
}

// GEMM candidates are timed as CUDA graphs of their launches (as the forward replays them); LAYOUTRT_GEMM_TUNE_GRAPH=0
// times launches from the host instead. Measured on an H200 (2026-12-02, bench/results/2026-12-02-h200-graph-tuning.md):
// timed from the host, every GEMM under ~7 us showed ~7 us (the host's launch rate: the M = 709 out-projection 7.2 –
// 7.9 us, QKV 7.8 – 8.8) — as graphs 3.8 – 4.6 and 6.3 – 7.6 us, so the pick among those candidates was a coin toss.
// The forward: B = 8 2.591 vs 2.655 ms in one call, other batches and the FUNSD batch within run-to-run noise (B = 1
// 0.697 vs 0.706, 0.686 vs 0.685 in two calls): cuBLASLt's candidates for the small shapes lie within ~20 %.
bool tuning_in_graphs() {
  static const bool on = switch_on("LAYOUTRT_GEMM_TUNE_GRAPH");
  return on;
}

bool tuning_log() {
  static const bool on = [] {
    const char* e = std::getenv("LAYOUTRT_GEMM_LOG");
    return e && std::string(e) == "1";
  }();
  return on;
}

// A cuBLASLt algorithm's configuration for LAYOUTRT_GEMM_LOG: "(algo A tile T stages S splitk K cluster C)", the
// numbers of cublasLt.h's enums (cublasLtMatmulTile_t, cublasLtMatmulStages_t, cublasLtClusterShape_t); 0 where the
// attribute cannot be read.
std::string algo_text(const cublasLtMatmulAlgo_t& algo) {
  auto get = [&](cublasLtMatmulAlgoConfigAttributes_t attr) {
    uint32_t v = 0;
    size_t written = 0;
    return cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &v, sizeof(v), &written) == CUBLAS_STATUS_SUCCESS
               ? static_cast<int64_t>(v)
               : int64_t{0};
  };
  return "(algo " + std::to_string(get(CUBLASLT_ALGO_CONFIG_ID)) + " tile " +
         std::to_string(get(CUBLASLT_ALGO_CONFIG_TILE_ID)) + " stages " +
         std::to_string(get(CUBLASLT_ALGO_CONFIG_STAGES_ID)) + " splitk " +
         std::to_string(get(CUBLASLT_ALGO_CONFIG_SPLITK_NUM)) + " cluster " +
         std::to_string(get(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID)) + ")";
}

// LAYOUTRT_SM90_GEMM, read when a fused-GELU shape is first met: −1 = time the configurations (default, "tune", or a
// comma-separated list of names: time those), −2 = "off" (the untimed default configuration), else the forced
// configuration.
int sm90_mode() {
  const char* e = std::getenv("LAYOUTRT_SM90_GEMM");
  if (!e || !*e || std::string(e) == "tune" || std::string(e).find(',') != std::string::npos) return -1;
  if (std::string(e) == "off") return -2;
  const int c = sm90_gemm_config_by_name(e);
  if (c < 0)
    throw_error(ErrorCode::kInvalidArgument, "LAYOUTRT_SM90_GEMM=", e,
                ": not off, tune, a configuration name or a comma-separated list of them");
  return c;
}

// Whether configuration `cfg` is among those timed: every one, unless LAYOUTRT_SM90_GEMM lists some (A/B runs of a
// new configuration against the others).
bool sm90_timed(int cfg) {
  const char* e = std::getenv("LAYOUTRT_SM90_GEMM");
  const std::string list = e ? e : "";
  if (list.find(',') == std::string::npos) return true;
  bool listed = false;
  for (size_t begin = 0; begin <= list.size();) {
    const size_t end = std::min(list.find(',', begin), list.size());
    const std::string name = list.substr(begin, end - begin);
    if (!name.empty() && sm90_gemm_config_by_name(name) < 0)
      throw_error(ErrorCode::kInvalidArgument, "LAYOUTRT_SM90_GEMM=", list, ": no configuration named '", name, "'");
    listed = listed || name == sm90_gemm_config_name(cfg);
    begin = end + 1;
  }
  return listed;
}

// How many heuristic candidates are timed: LAYOUTRT_GEMM_CANDIDATES (1 .. kMaxCandidates, default 8). Split-K
// versions of them (K in 2 – 4 parts, FP32 partials reduced in the workspace) were timed beside them for the B = 1
// shapes and never won (709 rows: QKV 17.6 vs 6.4 us, FFN down 11.5 vs 7.7; H200, 2026-12-02,
// bench/results/2026-12-02-h200-stages-splitk.md): not kept.
constexpr int kMaxCandidates = 64;
int gemm_candidates() {
  static const int n = [] {
    const char* e = std::getenv("LAYOUTRT_GEMM_CANDIDATES");
    const int v = e ? std::atoi(e) : 8;
    return v < 1 ? 1 : v > kMaxCandidates ? kMaxCandidates : v;
  }();
  return n;
}

struct Choice {
  cublasLtMatmulAlgo_t algo{};
  int sm90_config = -1;  // fused-GELU keys
};

// The one place a GEMM algorithm is chosen. Candidates: cuBLASLt's heuristic proposals (up to gemm_candidates(), within
// our workspace and the operands' actual alignment), or for fused-GELU keys the Hopper configurations. When tuning is
// on (and the stream is not being captured into a graph) each is timed on the call's own operands (1 warm-up,
// then two passes over all candidates timing ~0.2 ms of launches each with CUDA events; a candidate's faster pass
// counts) and the fastest is kept for this key; otherwise cuBLASLt's first pick, or
// sm90_gemm_default_config. The heuristic's first pick is often not the fastest for the skinny-K / wide-N shapes of
// this model. Throws kCuda naming the shape when nothing fits.
Choice choose_algorithm(cublasLtHandle_t handle, const GemmKey& key, const GemmPlan& p, const TuneContext* tc) {
  cublasLtMatmulHeuristicResult_t results[kMaxCandidates] = {};
  int found = 0;
  if (!key.gelu) {
    cublasLtMatmulPreference_t pref = nullptr;
    LRT_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
    struct PrefGuard {
      cublasLtMatmulPreference_t p;
      ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
    } guard{pref};
    const uint64_t ws = kWorkspaceBytes;
    LRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    const uint32_t al_a = key.align_w, al_b = key.align_x, al_c = key.align_y;
    LRT_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    LRT_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    LRT_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
    LRT_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref,
                                                             gemm_candidates(), results, &found);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found == 0))
      throw_error(ErrorCode::kCuda, "cuda linear: cuBLASLt has no algorithm for ", shape_text(key));
    LRT_CUBLAS(st);
    LRT_CUBLAS(results[0].state);
  }
  Choice first;
  if (found > 0) first.algo = results[0].algo;
  else first.sm90_config = sm90_gemm_default_config(key.m, key.n);
  if (found + (key.gelu ? sm90_gemm_config_count() : 0) <= 1 || !tc || !tuning_enabled()) return first;
  if (stream_capturing(tc->stream)) return first;
  if (tc->quiesce && *tc->quiesce) (*tc->quiesce)();

  if (key.bias_epilogue && !key.gelu)
    LRT_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &tc->typed_bias,
                                              sizeof(tc->typed_bias)));
  cudaEvent_t start = nullptr, stop = nullptr;
  LRT_CUDA(cudaEventCreate(&start));
  LRT_CUDA(cudaEventCreate(&stop));
  struct EventGuard {
    cudaEvent_t a, b;
    ~EventGuard() {
      cudaEventDestroy(a);
      cudaEventDestroy(b);
    }
  } events{start, stop};
  const float alpha = 1.0f, beta = 0.0f;
  // Where a candidate runs: copy 0 on the call's own output, workspace and stream; for keys of concurrent lanes
  // (GemmKey::lanes > 1, a stream to fork from) as many more copies on streams, outputs and workspaces of their own,
  // made for this timing — the forward runs this GEMM beside its twin of the other lane.
  struct Copy {
    TensorView y;
    void* workspace = nullptr;
    cudaStream_t stream = nullptr;
    cudaEvent_t joined = nullptr;
  };
  std::vector<Copy> copies{{tc->y, tc->workspace, tc->stream, nullptr}};
  cudaEvent_t forked = nullptr;
  struct CopiesGuard {
    std::vector<Copy>& c;
    cudaEvent_t& forked;
    ~CopiesGuard() {
      for (size_t i = 1; i < c.size(); ++i) {
        if (c[i].stream) cudaStreamSynchronize(c[i].stream), cudaStreamDestroy(c[i].stream);
        if (c[i].joined) cudaEventDestroy(c[i].joined);
        cudaFree(c[i].y.data);
        cudaFree(c[i].workspace);
      }
      if (forked) cudaEventDestroy(forked);
    }
  } copies_guard{copies, forked};
  if (key.lanes > 1 && tc->stream) {
    LRT_CUDA(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming));
    for (int i = 1; i < key.lanes; ++i) {
      copies.push_back(Copy{tc->y, nullptr, nullptr, nullptr});
      Copy& c = copies.back();
      c.y.data = nullptr;
      LRT_CUDA(cudaMalloc(&c.y.data, tc->y.nbytes()));
      LRT_CUDA(cudaMalloc(&c.workspace, kWorkspaceBytes));
      LRT_CUDA(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking));
      LRT_CUDA(cudaEventCreateWithFlags(&c.joined, cudaEventDisableTiming));
    }
  }
  // The candidates that run on these operands (each launched once here, copy 0: the warm-up).
  struct Candidate {
    Choice choice;
    std::string name;
    std::function<void(const Copy&)> launch;
    float us = -1;  // the best of the passes, per launch of every copy
  };
  std::vector<Candidate> cands;
  for (int i = 0; i < found; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
    auto launch = [&, i](const Copy& copy) {
      return cublasLtMatmul(handle, p.desc, &alpha, tc->w.data, p.a, tc->x.data, p.b, &beta, copy.y.data, p.c,
                            copy.y.data, p.c, &results[i].algo, copy.workspace, kWorkspaceBytes, copy.stream);
    };
    if (launch(copies[0]) != CUBLAS_STATUS_SUCCESS) continue;  // a candidate that cannot run is skipped
    Candidate c;
    c.choice.algo = results[i].algo;
    c.name = "cublaslt#" + std::to_string(i);
    if (tuning_log()) c.name += algo_text(results[i].algo);
    c.launch = [launch](const Copy& copy) { LRT_CUBLAS(launch(copy)); };
    cands.push_back(std::move(c));
  }
  for (int cfg = 0; key.gelu && cfg < sm90_gemm_config_count(); ++cfg) {
    if (!sm90_timed(cfg)) continue;
    auto launch = [&, cfg](const Copy& copy) {
      return sm90_linear_bias_gelu(cfg, tc->x, tc->w, tc->bias, copy.y, copy.stream);
    };
    if (!launch(copies[0])) continue;  // this configuration cannot implement the shape
    Candidate c;
    c.choice.sm90_config = cfg;
    c.name = sm90_gemm_config_name(cfg);
    c.launch = [launch, cfg](const Copy& copy) {
      if (!launch(copy)) throw_error(ErrorCode::kInternal, "cuda linear: ", sm90_gemm_config_name(cfg), " declined a rerun");
    };
    cands.push_back(std::move(c));
  }
  // Two passes over the candidates, each timing enough launches to cover ~0.2 ms (3 at least, 64 at most), keeping
  // each candidate's faster pass: a 3-launch timing of a 13 us kernel was noise-prone, and the first shape timed in a
  // run saw the GPU's clocks still rising (its first candidates ~40 % slow, 2026-12-02). The launch count is set in
  // the first pass from one timed launch; the graph of that many launches is captured once and replayed in both.
  struct Graph {
    cudaGraphExec_t g = nullptr;
    Graph() = default;
    Graph(const Graph&) = delete;
    Graph& operator=(const Graph&) = delete;
    ~Graph() {
      if (g) cudaGraphExecDestroy(g);
    }
  };
  auto elapsed_ms = [&](const Candidate& c, int reps, Graph& graph) {
    auto launches = [&] {  // every copy `reps` times, the copies on their streams side by side
      if (copies.size() > 1) {
        LRT_CUDA(cudaEventRecord(forked, tc->stream));
        for (size_t i = 1; i < copies.size(); ++i) LRT_CUDA(cudaStreamWaitEvent(copies[i].stream, forked, 0));
      }
      for (const Copy& copy : copies)
        for (int r = 0; r < reps; ++r) c.launch(copy);
      for (size_t i = 1; i < copies.size(); ++i) {
        LRT_CUDA(cudaEventRecord(copies[i].joined, copies[i].stream));
        LRT_CUDA(cudaStreamWaitEvent(tc->stream, copies[i].joined, 0));
      }
    };
    // (The legacy default stream cannot be captured: plain launches there.)
    if (!graph.g && tuning_in_graphs() && tc->stream) {
      graph.g = capture_graph(tc->stream, launches);
      if (graph.g) LRT_CUDA(cudaGraphLaunch(graph.g, tc->stream));  // its first launch uploads it: not timed
    }
    LRT_CUDA(cudaEventRecord(start, tc->stream));
    if (graph.g) {
      LRT_CUDA(cudaGraphLaunch(graph.g, tc->stream));
    } else {
      launches();  // plain launches (also where the graph could not be instantiated)
    }
    LRT_CUDA(cudaEventRecord(stop, tc->stream));
    LRT_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    LRT_CUDA(cudaEventElapsedTime(&ms, start, stop));
    return ms;
  };
  std::vector<int> reps(cands.size(), 0);
  std::vector<Graph> graphs(cands.size());
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < cands.size(); ++i) {
      Candidate& c = cands[i];
      if (pass == 0) {
        Graph one_graph;
        const float one = elapsed_ms(c, 1, one_graph);
        reps[i] = one > 0 ? std::min(64, std::max(3, static_cast<int>(0.2f / one) + 1)) : 3;
      }
      const float us = elapsed_ms(c, reps[i], graphs[i]) / reps[i] * 1000;
      if (c.us < 0 || us < c.us) c.us = us;
    }
  }
  Choice best;
  float best_us = -1;
  const char* best_name = "";
  std::ostringstream log;
  for (const Candidate& c : cands) {
    if (best_us < 0 || c.us < best_us) best = c.choice, best_us = c.us, best_name = c.name.c_str();
    if (tuning_log()) log << " " << c.name << " " << c.us << " us;";
  }
  if (best_us < 0) return first;
  if (tuning_log())
    std::fprintf(stderr, "layoutrt: GEMM %s (timed %s%s):%s chose %s\n", shape_text(key).c_str(),
                 tuning_in_graphs() ? "as graphs" : "from the host",
                 copies.size() > 1 ? (", " + std::to_string(copies.size()) + " copies at once").c_str() : "",
                 log.str().c_str(), best_name);
  return best;
}

class CublasLtLinearRunner : public LinearRunner {
 public:
  explicit CublasLtLinearRunner(bool allow_tf32) : allow_tf32_(allow_tf32) {
    LRT_CUBLAS(cublasLtCreate(&handle_));
    void* ws = nullptr;
    const cudaError_t e = cudaMalloc(&ws, kWorkspaceBytes);
    if (e != cudaSuccess) {
      cublasLtDestroy(handle_);
      throw_cuda(e, "cudaMalloc(cuBLASLt workspace, 32 MiB)", __FILE__, __LINE__);
    }
    workspaces_.push_back(ws);
  }
  ~CublasLtLinearRunner() override {
    plans_.clear();
    // cudaFree waits for work queued on the device, so a workspace is not freed under a running GEMM.
    for (void* ws : workspaces_) cudaFree(ws);
    for (auto& [k, p] : typed_biases_) cudaFree(p);
    cublasLtDestroy(handle_);
  }

  void set_quiesce(std::function<void()> quiesce) override { quiesce_ = std::move(quiesce); }

  void run(const LinearArgs& a, cudaStream_t stream, int lane, int lanes) override {
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

    GemmKey key;
    key.m = M;
    key.n = N;
    key.k = K;
    key.dtype = x.dtype;
    key.tf32 = allow_tf32_ && x.dtype == DType::kF32;
    // Bias + exact GELU in the Hopper kernel's epilogue where it takes the operands.
    key.gelu = a.epilogue == Epilogue::kGeluErf && bias.defined() && fused_gelu_enabled() &&
               sm90_gemm_applies(x, w, bias, y);
    // Else a fused bias where there is no activation: F32 output with the F32 bias (16-byte aligned), F16/BF16 output
    // with the bias rounded to that dtype.
    key.bias_epilogue = key.gelu || (bias.defined() && a.epilogue == Epilogue::kNone &&
                                     (x.dtype != DType::kF32 || pointer_alignment(bias.data) >= 16));
    const void* bias_ptr = !key.bias_epilogue || key.gelu ? nullptr
                           : x.dtype == DType::kF32           ? bias.data
                                                              : typed_bias(bias, x.dtype, stream);
    key.align_x = static_cast<uint16_t>(pointer_alignment(x.data));
    key.align_w = static_cast<uint16_t>(pointer_alignment(w.data));
    key.align_y = static_cast<uint16_t>(pointer_alignment(y.data));
    if (lanes < 1 || lanes > Backend::kMaxLanes) throw_error(ErrorCode::kInternal, "cuda linear: ", lanes, " lanes");
    key.lanes = static_cast<uint8_t>(tune_per_lanes() ? lanes : 1);

    TuneContext tc;
    tc.x = x;
    tc.w = w;
    tc.y = y;
    tc.bias = bias;
    tc.typed_bias = bias_ptr;
    tc.stream = stream;
    tc.workspace = workspace(lane, stream);
    tc.quiesce = &quiesce_;
    GemmPlan& p = plan_for(key, tc);
    if (key.gelu) {
      if (!sm90_linear_bias_gelu(p.sm90_config, x, w, bias, y, stream))
        throw_error(ErrorCode::kInternal, "cuda linear: the Hopper GEMM configuration ",
                    sm90_gemm_config_name(p.sm90_config), " declined ", shape_text(key));
      return;
    }
    if (key.bias_epilogue) {
      const void* bp = bias_ptr;
      LRT_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp)));
    }
    const float alpha = 1.0f, beta = 0.0f;
    LRT_CUBLAS(cublasLtMatmul(handle_, p.desc, &alpha, w.data, p.a, x.data, p.b, &beta, y.data, p.c, y.data, p.c,
                              &p.algo, tc.workspace, kWorkspaceBytes, stream));
    if (!key.bias_epilogue && (bias.defined() || a.epilogue != Epilogue::kNone))
      bias_activation(y, bias, a.epilogue, stream);
  }

 private:
  // Lane `lane`'s cuBLASLt workspace: concurrent GEMMs must not share one (split-K algorithms reduce through it).
  void* workspace(int lane, cudaStream_t stream) {
    if (lane < 0 || lane >= Backend::kMaxLanes) throw_error(ErrorCode::kInternal, "cuda linear: lane ", lane, " out of range");
    while (static_cast<int>(workspaces_.size()) <= lane) {
      if (stream_capturing(stream))
        throw_error(ErrorCode::kInternal, "cuda linear: a workspace for lane ", lane, " requested inside a capture");
      void* ws = nullptr;
      LRT_CUDA(cudaMalloc(&ws, kWorkspaceBytes));
      workspaces_.push_back(ws);
    }
    return workspaces_[lane];
  }

  // The F32 bias rounded to `t`, converted on first use (never inside a graph capture: every key runs eagerly before
  // it is recorded) and kept for the runner's life — the engine's weights outlive every context's runner.
  const void* typed_bias(const TensorView& bias, DType t, cudaStream_t stream) {
    const auto k = std::make_pair(bias.data, t);
    auto it = typed_biases_.find(k);
    if (it != typed_biases_.end()) return it->second;
    if (stream_capturing(stream))
      throw_error(ErrorCode::kInternal, "cuda linear: bias conversion requested inside a graph capture");
    void* p = nullptr;
    LRT_CUDA(cudaMalloc(&p, static_cast<size_t>(bias.numel()) * dtype_size(t)));
    typed_biases_.emplace(k, p);
    convert_from_f32(bias.as<float>(), TensorView(p, t, Device::kCUDA, {bias.numel()}), stream);
    // The copy is shared by every stream that runs this runner's GEMMs (the backend's lanes), and the next lane to
    // use it finds it in the map without any ordering against `stream`: wait here, once per bias, for it to exist.
    // (Seen 2026-12-02: a lane's GEMM read the copy before the other lane's stream had converted it, a wrong first
    // forward with two lanes whose GEMM shapes were already timed — timing waits for every lane, which had hidden it.)
    LRT_CUDA(cudaStreamSynchronize(stream));
    return p;
  }

  GemmPlan& plan_for(const GemmKey& key, const TuneContext& tc) {
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;
    auto p = std::make_unique<GemmPlan>();
    if (!key.gelu) {  // cuBLASLt's descriptors (fused-GELU keys run only on the Hopper GEMMs)
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
      LRT_CUBLAS(
          cublasLtMatrixLayoutCreate(&p->a, t, static_cast<uint64_t>(key.k), static_cast<uint64_t>(key.n), key.k));
      LRT_CUBLAS(
          cublasLtMatrixLayoutCreate(&p->b, t, static_cast<uint64_t>(key.k), static_cast<uint64_t>(key.m), key.k));
      LRT_CUBLAS(
          cublasLtMatrixLayoutCreate(&p->c, t, static_cast<uint64_t>(key.n), static_cast<uint64_t>(key.m), key.n));
    }
    // A/B switches (LAYOUTRT_SM90_GEMM) for fused-GELU keys: a forced configuration, or "off" (the untimed default
    // configuration); neither recorded in the process-wide table.
    const int mode = key.gelu ? sm90_mode() : -1;
    if (mode != -1) {
      p->sm90_config = mode >= 0 ? mode : sm90_gemm_default_config(key.m, key.n);
    } else {
      // One choice per (device, key) for the whole process, so every context (and every run) computes with the same
      // algorithm: outputs do not depend on which context ran them. Tuned while the table is small (packed batches
      // of ever-new row counts would otherwise re-tune forever).
      int device = 0;
      LRT_CUDA(cudaGetDevice(&device));
      GemmAlgoTable& table = GemmAlgoTable::instance();
      std::lock_guard<std::mutex> lock(table.mu);
      auto c = table.entries.find({device, key});
      if (c != table.entries.end() && c->second.from_plan) {
        // From a plan: a cuBLASLt algorithm must be accepted for these descriptors on this device, else it is chosen
        // afresh (a fused-GELU key's Hopper configuration, checked by name on import, takes the key's operands).
        cublasLtMatmulHeuristicResult_t check{};
        if (!key.gelu &&
            (cublasLtMatmulAlgoCheck(handle_, p->desc, p->a, p->b, p->c, p->c, &c->second.algo, &check) !=
                 CUBLAS_STATUS_SUCCESS ||
             check.state != CUBLAS_STATUS_SUCCESS || check.workspaceSize > kWorkspaceBytes)) {
          std::fprintf(stderr, "layoutrt: warning: the plan's GEMM algorithm for %s is rejected by cuBLASLt; re-tuned\n",
                       shape_text(key).c_str());
          table.entries.erase(c);
          c = table.entries.end();
        } else {
          c->second.from_plan = false;
        }
      }
      if (c == table.entries.end()) {
        const Choice ch = choose_algorithm(handle_, key, *p, table.entries.size() < 512 ? &tc : nullptr);
        GemmAlgoEntry e;
        e.algo = ch.algo;
        e.sm90_config = ch.sm90_config;
        c = table.entries.emplace(std::make_pair(device, key), e).first;
      }
      c->second.used_epoch = table.epoch;
      p->algo = c->second.algo;
      p->sm90_config = c->second.sm90_config;
    }
    GemmPlan& ref = *p;
    plans_.emplace(key, std::move(p));
    return ref;
  }

  bool allow_tf32_;
  cublasLtHandle_t handle_ = nullptr;
  std::vector<void*> workspaces_;  // per lane, [0] made with the runner
  std::function<void()> quiesce_;
  std::map<GemmKey, std::unique_ptr<GemmPlan>> plans_;
  std::map<std::pair<const void*, DType>, void*> typed_biases_;
};

}  // namespace

std::unique_ptr<LinearRunner> LinearRunner::create(bool allow_tf32) {
  return std::make_unique<CublasLtLinearRunner>(allow_tf32);
}

}  // namespace layoutrt::cuda
