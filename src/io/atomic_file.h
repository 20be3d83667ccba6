// Crash-safe file writing for the writers in src/io.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace layoutrt {

// Writes a file through `path + ".tmp"` and a rename, so that a failure (full disk, crash) never leaves a truncated
// file under the real name. Errors are kIo naming the path.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();  // removes the temporary file unless commit() succeeded
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);
  void commit();

 private:
  [[noreturn]] void fail(const char* what);

  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

}  // namespace layoutrt
