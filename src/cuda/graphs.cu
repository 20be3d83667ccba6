// CUDA graphs (graphs.h). One rewrite between capture and instantiation: launch_programmatic_dependents_early.
//
// Programmatic edges, and when they fire. A kernel launched with programmatic stream serialization (the LayerNorms,
// the wgmma attention, the CUTLASS FFN GEMM: device_info.h launch_kernel) is captured behind the kernel before it with
// a programmatic edge from that kernel's programmatic port, which fires once every block of the upstream kernel has
// executed griddepcontrol.launch_dependents or exited. Our kernels trigger right after their own wait; cuBLASLt's
// never do, so behind the out-projection and FFN-output GEMMs a LayerNorm launched only as the GEMM's last blocks
// exited, paying its launch after the GEMM. The rewrite moves such edges to the upstream's launch-completion port
// (fires when all of its blocks have begun: cudaGraphKernelNodePortLaunchCompletion), which CUDA admits for
// programmatic edges (driver_types.h, cudaGraphDependencyTypeProgrammatic). Correctness does not move: the upstream
// stays a prerequisite grid of the downstream, and griddepcontrol.wait (pdl.cuh) blocks until the prerequisite grids
// have completed with their writes visible — every downstream kernel waits before it reads or writes anything the
// upstream may touch (device_info.h). What a downstream reads before its wait was written before the upstream began:
// the upstream (a cuBLASLt GEMM) sits on a plain edge behind the kernel before it, so by its launch completion every
// earlier kernel has completed. No deadlock: the downstream's blocks are scheduled only after all upstream blocks are
// running. Which edges: the caller names the downstream kernels (GraphCache::run's `early`, '|'-separated name parts);
// the CUDA backend asks, for one-lane forwards only, for the LayerNorms', the inline-tail attention's and the visual
// rows' edges (backend_cuda.cu early_filter). Measured (H200, 2026-12-03,
// bench/results/2026-12-03-h200-pdl-launch-order.md): LayerNorm edges B = 1 −10 / −12 us, but two-lane batches
// +1 – 3 %; every programmatic edge, the attention's too, B = 1 +11 – 13 us, B = 8 +11 %: blocks resident early take
// SM slots where the scheduler has them, not where the attention's one-tile-per-SM balance needs them — then the
// partial query tile's extra CTAs. The inline-tail form that later replaced them at B = 1 holds one CTA per SM by its
// resources, and resident early it saves ~10 us (bench/results/2026-12-04-h200-early-attention.md).
// LAYOUTRT_PDL_EARLY=0 leaves the captured edges as they are (A/B timing, tests).
#include "cuda/graphs.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/device_info.h"

namespace layoutrt::cuda {

namespace {

// The kernel a graph node launches, by name ("" for other nodes or when CUDA cannot name it).
std::string kernel_name(cudaGraphNode_t node) {
  cudaGraphNodeType type;
  if (cudaGraphNodeGetType(node, &type) != cudaSuccess || type != cudaGraphNodeTypeKernel) return "";
  cudaKernelNodeParams p{};
  const char* name = nullptr;
  if (cudaGraphKernelNodeGetParams(node, &p) != cudaSuccess || cudaFuncGetName(&name, p.func) != cudaSuccess || !name) {
    cudaGetLastError();
    return "";
  }
  return name;
}

// Whether `name` contains one of the '|'-separated parts of `filter`.
bool name_matches(const std::string& name, const std::string& filter) {
  size_t at = 0;
  while (at <= filter.size()) {
    const size_t end = std::min(filter.find('|', at), filter.size());
    if (end > at && name.find(filter.substr(at, end - at)) != std::string::npos) return true;
    at = end + 1;
  }
  return false;
}

}  // namespace

int launch_programmatic_dependents_early(cudaGraph_t graph, const char* downstream) {
  size_t n = 0;
  LRT_CUDA(cudaGraphGetEdges(graph, nullptr, nullptr, nullptr, &n));
  std::vector<cudaGraphNode_t> from(n), to(n);
  std::vector<cudaGraphEdgeData> data(n);
  if (n > 0) LRT_CUDA(cudaGraphGetEdges(graph, from.data(), to.data(), data.data(), &n));
  std::vector<cudaGraphNode_t> f, t;
  std::vector<cudaGraphEdgeData> old_data, new_data;
  for (size_t i = 0; i < n; ++i) {
    if (data[i].type != cudaGraphDependencyTypeProgrammatic || data[i].from_port != cudaGraphKernelNodePortProgrammatic)
      continue;
    if (downstream && !name_matches(kernel_name(to[i]), downstream)) continue;
    f.push_back(from[i]);
    t.push_back(to[i]);
    old_data.push_back(data[i]);
    cudaGraphEdgeData e = data[i];
    e.from_port = cudaGraphKernelNodePortLaunchCompletion;
    new_data.push_back(e);
  }
  if (f.empty()) return 0;
  LRT_CUDA(cudaGraphRemoveDependencies(graph, f.data(), t.data(), old_data.data(), f.size()));
  LRT_CUDA(cudaGraphAddDependencies(graph, f.data(), t.data(), new_data.data(), f.size()));
  return static_cast<int>(f.size());
}

cudaGraphExec_t capture_graph(cudaStream_t stream, const std::function<void()>& ops, const char** why,
                              const std::function<const char*()>& early, int* moved) {
  if (moved) *moved = 0;
  LRT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  try {
    ops();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  LRT_CUDA(cudaStreamEndCapture(stream, &graph));
  if (early && switch_on("LAYOUTRT_PDL_EARLY")) {
    if (const char* downstream = early()) {
      try {
        const int n = launch_programmatic_dependents_early(graph, downstream);
        if (moved) *moved = n;
      } catch (...) {
        cudaGraphDestroy(graph);
        throw;
      }
    }
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (inst != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = cudaGetErrorString(inst);
    return nullptr;
  }
  return exec;
}

GraphCache::GraphCache() {
  enabled_ = switch_on("LAYOUTRT_CUDA_GRAPHS") && !sync_check_enabled();
}

GraphCache::~GraphCache() {
  for (auto& [key, e] : graphs_) cudaGraphExecDestroy(e.exec);
}

void GraphCache::run(uint64_t key, const std::function<void()>& ops, cudaStream_t stream,
                     const std::function<const char*()>& early) {
  if (!enabled_) return ops();
  auto it = graphs_.find(key);
  if (it != graphs_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    LRT_CUDA(cudaGraphLaunch(it->second.exec, stream));
    return;
  }
  if (++seen_[key] < 2) return ops();
  seen_.erase(key);
  const char* why = nullptr;
  cudaGraphExec_t exec = capture_graph(stream, ops, &why, early, &last_early_edges_);
  if (!exec) {
    // Some op could not be captured: keep running this shape eagerly (correct, just slower) and say so once.
    enabled_ = false;
    std::fprintf(stderr, "layoutrt: warning: CUDA graph instantiation failed (%s); running without graphs\n", why);
    return ops();
  }
  if (graphs_.size() >= kMaxGraphs) {
    const uint64_t old = lru_.back();
    lru_.pop_back();
    cudaGraphExecDestroy(graphs_[old].exec);
    graphs_.erase(old);
  }
  lru_.push_front(key);
  graphs_[key] = Entry{exec, lru_.begin()};
  LRT_CUDA(cudaGraphLaunch(exec, stream));
}

StageEvents::~StageEvents() {
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
}

void StageEvents::reset() {
  marks_.clear();
  used_ = 0;
}

void StageEvents::mark(const char* name, cudaStream_t stream) {
  if (used_ == pool_.size()) {
    cudaEvent_t e;
    LRT_CUDA(cudaEventCreate(&e));
    pool_.push_back(e);
  }
  cudaEvent_t e = pool_[used_++];
  LRT_CUDA(cudaEventRecord(e, stream));
  marks_.emplace_back(name ? name : "", e);
}

std::map<std::string, double> StageEvents::read_ms() {
  std::map<std::string, double> ms;
  for (size_t i = 0; i + 1 < marks_.size(); ++i) {
    if (marks_[i].first.empty()) continue;
    LRT_CUDA(cudaEventSynchronize(marks_[i + 1].second));
    float t = 0.f;
    LRT_CUDA(cudaEventElapsedTime(&t, marks_[i].second, marks_[i + 1].second));
    ms[marks_[i].first] += t;
  }
  return ms;
}

}  // namespace layoutrt::cuda
