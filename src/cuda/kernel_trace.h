// The device timeline of a run: every kernel, memcpy and memset the GPU executes (CUDA graph nodes included), with
// start and end timestamps, stream, grid, block, cluster, registers and shared memory, through CUPTI's activity API
// (what Nsight Systems records). Diagnostics for `layoutrt bench --kernel-trace PREFIX` and scripts/kernel_trace.py.
//
// CUPTI is loaded at run time (dlopen; the library is never linked): $LAYOUTRT_CUPTI_LIB, else libcupti.so.13 /
// libcupti.so on the loader's path, else beside the CUDA runtime (lib64/ and extras/CUPTI/lib64/ of the toolkit). A
// process without it gets kUnsupported naming what was tried. Builds without cupti_activity.h (CUPTI's headers; found
// by CMake beside the toolkit's) report kUnsupported too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace layoutrt::cuda {

struct KernelRecord {
  enum class Kind : uint8_t { kKernel, kMemcpy, kMemset };
  Kind kind = Kind::kKernel;
  std::string name;             // demangled kernel name; "memcpy" / "memset" for those
  uint64_t start_ns = 0, end_ns = 0;  // CUPTI's device timestamps (ns)
  uint32_t stream = 0, correlation = 0;
  uint64_t graph_node = 0;      // 0 outside CUDA graphs
  int32_t grid[3] = {0, 0, 0}, block[3] = {0, 0, 0}, cluster[3] = {0, 0, 0};
  int32_t registers = 0, static_smem = 0, dynamic_smem = 0;
  uint64_t bytes = 0;           // memcpy / memset size
};

// One trace at a time per process. Construct before the work to trace (kernels of CUDA graphs are recorded whether
// the graph was instantiated before or after); the records accumulate until take() or discard().
class KernelTrace {
 public:
  KernelTrace();  // throws kUnsupported when CUPTI cannot be loaded or enabled, kInvalidArgument if one is active
  ~KernelTrace();  // stops recording
  KernelTrace(const KernelTrace&) = delete;
  KernelTrace& operator=(const KernelTrace&) = delete;

  // Where CUPTI was loaded from, and its API version.
  const std::string& library() const;
  uint32_t cupti_version() const;
  // Drops what was recorded so far (the device work issued before must have finished: synchronize first).
  void discard();
  // The records since the last take() / discard(), sorted by start (the device work must have finished). Records
  // CUPTI dropped for lack of buffer space are counted in `dropped` when given.
  std::vector<KernelRecord> take(uint64_t* dropped = nullptr);
};

// CSV of the records, one row each, sorted by start: kind, name, start_us and end_us relative to the first start,
// duration_us, stream, graph_node, grid, block, cluster ("x.y.z"), registers, static_smem, dynamic_smem, bytes. Names
// are quoted (CSV: embedded quotes doubled).
std::string kernel_trace_csv(std::vector<KernelRecord> records);

}  // namespace layoutrt::cuda
