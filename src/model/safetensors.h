// Reader for HuggingFace safetensors checkpoints, written from the format's definition:
//   u64 little-endian N | N bytes of JSON header | data buffer
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// data buffer) plus an optional "__metadata__" object of strings. open() validates the whole header, so that every
// later access is in bounds; tensors are zero-copy views of the memory-mapped file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "layoutrt/tensor.h"

namespace layoutrt {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t data_begin = 0, data_end = 0;  // byte range in the data buffer
};

class SafetensorsFile {
 public:
  // Throws layoutrt::Error (kFormat, kDTypeMismatch for an unknown dtype, kNotFound / kIo from opening the file).
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // sorted by name
  const SafetensorsEntry* find(const std::string& name) const;               // nullptr if absent
  // Zero-copy view sharing the mapping; a copy when the data is misaligned for the dtype. kMissingTensor if absent.
  Tensor tensor(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  uint64_t data_start_ = 0;  // file offset of the data buffer: 8 + N
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: model.safetensors, or shards listed by model.safetensors.index.json
// ({"weight_map": {tensor name: shard file name}}). Like transformers, a single model.safetensors wins over an index.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open_dir(const std::string& dir);

  std::vector<std::string> names() const;  // sorted
  const SafetensorsEntry* find(const std::string& name) const;  // nullptr if absent
  Tensor tensor(const std::string& name) const;                 // kMissingTensor if absent
  std::string file_of(const std::string& name) const;           // the shard's path, for error messages

 private:
  const SafetensorsFile* shard_of(const std::string& name) const;

  std::string dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> shard_index_;  // tensor name -> index into shards_
};

}  // namespace layoutrt
