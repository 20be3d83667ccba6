#include "cuda/graphs.h"

#include <cstdio>

#include "cuda/cuda_check.h"
#include "cuda/device_info.h"

namespace layoutrt::cuda {

cudaGraphExec_t capture_graph(cudaStream_t stream, const std::function<void()>& ops, const char** why) {
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

void GraphCache::run(uint64_t key, const std::function<void()>& ops, cudaStream_t stream) {
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
  cudaGraphExec_t exec = capture_graph(stream, ops, &why);
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
