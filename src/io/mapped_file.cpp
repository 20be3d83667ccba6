#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "layoutrt/error.h"

namespace layoutrt {

namespace {
const uint8_t kEmpty[1] = {0};
}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; it is rejected below instead.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) throw_error(ErrorCode::kNotFound, path, ": no such file");
    throw_error(ErrorCode::kIo, path, ": cannot open: ", std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_error(ErrorCode::kIo, path, ": cannot stat: ", std::strerror(err));
  }
  // Directories open fine with O_RDONLY, and pipes / devices cannot be mapped: reject both up front.
  if (S_ISDIR(st.st_mode)) { ::close(fd); throw_error(ErrorCode::kIo, path, ": is a directory, expected a file"); }
  if (!S_ISREG(st.st_mode)) { ::close(fd); throw_error(ErrorCode::kIo, path, ": is not a regular file"); }

  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {  // mmap of length 0 fails with EINVAL
    ::close(fd);
    return std::shared_ptr<const MappedFile>(new MappedFile(path, kEmpty, 0));
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  if (p == MAP_FAILED) throw_error(ErrorCode::kIo, path, ": cannot map ", size, " bytes: ", std::strerror(err));
  return std::shared_ptr<const MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(p), size));
}

MappedFile::~MappedFile() {
  if (size_ != 0) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace layoutrt
