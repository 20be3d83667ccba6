#include "io/atomic_file.h"

#include <cerrno>
#include <cstring>

#include "layoutrt/error.h"

namespace layoutrt {

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) throw_error(ErrorCode::kIo, path_, ": cannot create ", tmp_, ": ", std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (f_) std::fclose(f_);
  if (!tmp_.empty()) std::remove(tmp_.c_str());
}

void AtomicFileWriter::fail(const char* what) {
  const int err = errno;
  if (f_) std::fclose(f_);
  f_ = nullptr;
  std::remove(tmp_.c_str());
  tmp_.clear();
  throw_error(ErrorCode::kIo, path_, ": ", what, ": ", std::strerror(err));
}

void AtomicFileWriter::write(const void* data, size_t n) {
  if (!f_) throw_error(ErrorCode::kInternal, path_, ": write after commit");
  if (n && std::fwrite(data, 1, n, f_) != n) fail("write failed");
}

void AtomicFileWriter::commit() {
  if (!f_) throw_error(ErrorCode::kInternal, path_, ": commit twice");
  // fclose flushes; a full disk often only shows up here.
  const int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) fail("write failed");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename the temporary file into place");
  tmp_.clear();
}

}  // namespace layoutrt
