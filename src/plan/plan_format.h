// The plan file: everything `layoutrt run` needs, in one file.
//
//   offset 0   magic "LAYOUTRT" (8 bytes)
//          8   u32 format version (kPlanFormatVersion)
//         12   u32 reserved (0)
//         16   u64 header bytes (JSON, UTF-8)
//         24   u64 data offset (start of the tensor blobs, a multiple of kPlanAlignment)
//         32   u64 total file bytes (detects truncation before anything else is read)
//         40   JSON header: config, head, labels, precision policy (with "residual": the residual stream's dtype,
//              absent in older plans = the encoder's), build options, layoutrt version, tensor table
//              ({name, dtype, shape, offset (from the data offset), bytes}); optional "gemm_tuning": the cuBLASLt
//              algorithms timed at build on a GPU, with that GPU's identity (src/cuda/gemm_algos.h)
//   data       tensor blobs, each starting at a multiple of kPlanAlignment
//   end - 8    u64 XXH64 of every byte before it
// All integers little-endian.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "layoutrt/engine.h"
#include "layoutrt/tensor.h"

namespace layoutrt {

class MappedFile;

constexpr char kPlanMagic[8] = {'L', 'A', 'Y', 'O', 'U', 'T', 'R', 'T'};
constexpr uint32_t kPlanFormatVersion = 1;
constexpr uint64_t kPlanAlignment = 256;
constexpr uint64_t kPlanFixedHeaderBytes = 40;

struct PlanTensor {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t offset = 0;  // from the data offset
  uint64_t nbytes = 0;
};

// Writes header (the caller's JSON; "tensors" is filled in here) and tensors to path (via path.tmp + rename).
void write_plan(const std::string& path, nlohmann::json header,
                const std::vector<std::pair<std::string, Tensor>>& tensors, const ProgressFn& progress = {});

class PlanFile {
 public:
  // Maps the file and checks magic, version, sizes, checksum (unless verify_checksum is false) and the tensor table.
  static PlanFile open(const std::string& path, bool verify_checksum = true);
  const std::string& path() const { return path_; }
  const nlohmann::json& header() const { return header_; }
  const std::vector<PlanTensor>& tensors() const { return tensors_; }
  const PlanTensor* find(const std::string& name) const;
  Tensor tensor(const std::string& name) const;  // zero-copy view into the mapping; throws kMissingTensor
  uint64_t file_bytes() const;

 private:
  std::string path_;
  std::shared_ptr<const MappedFile> file_;
  nlohmann::json header_;
  std::vector<PlanTensor> tensors_;
  uint64_t data_offset_ = 0;
};

}  // namespace layoutrt
