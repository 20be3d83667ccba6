// The process-wide table of GEMM algorithms (cuBLASLt's, or the Hopper fused-GELU kernel's configuration), one per (device, GEMM key): linear.cu picks (times) an algorithm the
// first time a key is met and every runner of the process then uses it, so all contexts compute identically. A plan
// built on a GPU records the table's entries for the model's shapes (layoutrt build, BuildOptions::tune_gemm) and an
// engine loading it on the same kind of device seeds the table from that record (gemm_algos.cpp), so no timing runs
// and every process of that plan on that device multiplies with the same algorithms.
// Host-only header.
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

#include "layoutrt/precision.h"

namespace layoutrt::cuda {

// One GEMM's identity for algorithm choice: shape, dtype, compute mode, epilogue, the operands' pointer alignment
// (the heuristic may exploit it), and how many copies of it run at once (the backend's concurrent lanes: the best
// tile shape for a GEMM sharing the GPU with its twin on another stream is not the best one alone).
struct GemmKey {
  int64_t m = 0, n = 0, k = 0;  // rows of x, rows of W (outputs), reduction
  DType dtype = DType::kF32;
  bool tf32 = false;
  bool bias_epilogue = false;
  bool gelu = false;  // bias + exact GELU in the epilogue: only the Hopper fused kernel runs it (gemm_sm90.h)
  uint16_t align_x = 0, align_w = 0, align_y = 0;
  uint8_t lanes = 1;  // 1, or the concurrent lanes (2 .. Backend::kMaxLanes) it runs in; candidates timed as many
  auto tie() const {
    return std::make_tuple(m, n, k, static_cast<int>(dtype), tf32, bias_epilogue, gelu, align_x, align_w, align_y,
                           lanes);
  }
  bool operator==(const GemmKey& o) const { return tie() == o.tie(); }
  bool operator<(const GemmKey& o) const { return tie() < o.tie(); }
};

struct GemmAlgoEntry {
  cublasLtMatmulAlgo_t algo{};
  int sm90_config = -1;     // fused-GELU keys: the Hopper configuration that runs them (gemm_sm90.h)
  bool from_plan = false;   // seeded from a plan's record: checked (cublasLtMatmulAlgoCheck) on first use
  uint64_t used_epoch = 0;  // the epoch of its last first-use by a runner (what a tuning build records)
};

struct GemmAlgoTable {
  std::mutex mu;
  std::map<std::pair<int, GemmKey>, GemmAlgoEntry> entries;  // (device, key)
  uint64_t epoch = 1;
  static GemmAlgoTable& instance();
};

// Starts a recording epoch: export_gemm_algorithms(device, epoch) then returns the entries first used by a runner
// since (the shapes of the model the build just ran).
uint64_t begin_gemm_epoch();
// JSON text: {"device", "sm_count", "compute_capability", "cublaslt_version", "algorithms": [{m, n, k, dtype, tf32,
// bias_epilogue, gelu, align: [x, w, y], lanes, algo: 128 hex digits, sm90: configuration name (fused-GELU keys)}]}.
std::string export_gemm_algorithms(int device, uint64_t since_epoch);
// Seeds the table from such a record when it was made on the same device model (name, SM count, compute capability)
// and cuBLASLt version; returns a one-line status, starting with "warning: " when the record is not used.
std::string import_gemm_algorithms(int device, const std::string& json);

}  // namespace layoutrt::cuda
