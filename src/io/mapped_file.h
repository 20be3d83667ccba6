// Read-only memory mapping of a whole file, shared by the tensors that point into it (zero-copy weights).
// If another process truncates the file while it is mapped, reading the lost pages raises SIGBUS; checkpoints are
// not rewritten in place by our own writers (they write a temporary file and rename it), which avoids that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace layoutrt {

class MappedFile {
 public:
  // Throws kNotFound when `path` does not exist, kIo when it is a directory, not a regular file or unreadable.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Never null, even for an empty file, so callers may pass it to memcpy with size 0.
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

}  // namespace layoutrt
