// CUDA graphs for the forward's op sequence, and CUDA-event stage timing. Host-only header.
//
// Why: at B=1 the forward is ~150 small launches (12 layers × ~10 ops + embeddings + head); launch overhead alone is a
// large share of a sub-millisecond forward. A recorded graph replays them in one launch.
// Policy: a shape key is recorded on its second use (one-off shapes — e.g. packed batches of odd lengths — run
// eagerly and cost no capture), and at most kMaxGraphs graphs are kept (least recently used dropped).
// LAYOUTRT_CUDA_GRAPHS=0 turns recording off (debugging, profilers).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace layoutrt::cuda {

// Records `ops` on `stream` (thread-local capture) and instantiates the graph. A failure inside `ops` ends the capture
// before the error propagates (the stream never stays capturing); a capture error throws kCuda; nullptr when the
// instantiation fails (an op that cannot be captured), the CUDA error cleared and, if `why` is given, named there.
// `early`, when given and LAYOUTRT_PDL_EARLY is not 0, is asked after the capture which downstream kernels'
// programmatic edges to move to launch completion (launch_programmatic_dependents_early; nullptr: none); `moved`, when
// given, receives the number of edges moved.
cudaGraphExec_t capture_graph(cudaStream_t stream, const std::function<void()>& ops, const char** why = nullptr,
                              const std::function<const char*()>& early = {}, int* moved = nullptr);

// The programmatic edges of `graph` whose downstream kernel's name contains `downstream` (one of its '|'-separated
// parts; every edge: nullptr) made to fire when all blocks of the upstream kernel have begun
// (cudaGraphKernelNodePortLaunchCompletion) instead of when they have all triggered or exited. Returns the number of
// edges changed. Why, and why it is safe: graphs.cu.
int launch_programmatic_dependents_early(cudaGraph_t graph, const char* downstream = nullptr);

class GraphCache {
 public:
  static constexpr size_t kMaxGraphs = 32;
  GraphCache();
  ~GraphCache();
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // Runs `ops` on `stream`: replays the graph of `key`, records it (second use), or runs eagerly.
  void run(uint64_t key, const std::function<void()>& ops, cudaStream_t stream,
           const std::function<const char*()>& early = {});
  bool enabled() const { return enabled_; }
  size_t size() const { return graphs_.size(); }
  // The programmatic edges the latest capture moved to launch completion (−1: nothing captured yet).
  int last_early_edges() const { return last_early_edges_; }

 private:
  struct Entry {
    cudaGraphExec_t exec = nullptr;
    std::list<uint64_t>::iterator lru;
  };
  bool enabled_ = true;
  int last_early_edges_ = -1;
  std::unordered_map<uint64_t, Entry> graphs_;
  std::list<uint64_t> lru_;                      // front = most recent
  std::unordered_map<uint64_t, int> seen_;       // uses of keys without a graph yet
};

// Events between stages on one stream; summed per stage name on read.
class StageEvents {
 public:
  ~StageEvents();
  void reset();
  void mark(const char* name, cudaStream_t stream);  // closes the open stage, opens `name` (nullptr: none)
  std::map<std::string, double> read_ms();           // synchronizes the events

 private:
  std::vector<std::pair<std::string, cudaEvent_t>> marks_;
  std::vector<cudaEvent_t> pool_;
  size_t used_ = 0;
};

}  // namespace layoutrt::cuda
