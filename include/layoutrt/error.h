// layoutrt public error type. Every failure the engine can diagnose is thrown as layoutrt::Error with a code and a
// message that names the file / tensor / index / value at fault. The CLI prints e.what() on one line and exits with
// exit_code(code).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace layoutrt {

enum class ErrorCode {
  kInvalidArgument = 1,  // bad option or API argument
  kNotFound,             // file or directory missing
  kIo,                   // read/write failure
  kFormat,               // malformed file (safetensors, npy, plan, json)
  kChecksum,             // plan checksum mismatch
  kVersion,              // plan written by a newer format version
  kMissingTensor,        // checkpoint lacks a required tensor
  kUnexpectedTensor,     // checkpoint holds a tensor we do not know
  kShapeMismatch,        // tensor has the wrong shape
  kDTypeMismatch,        // tensor has the wrong / unsupported dtype
  kInputOutOfRange,      // an input value is outside its valid range (ids >= vocab, boxes, T > 512, ...)
  kOutOfMemory,          // host or device allocation failed
  kCuda,                 // CUDA / cuBLAS error
  kUnsupported,          // valid request the engine does not support (yet)
  kInternal,             // a bug: an invariant of ours broke
};

const char* error_code_name(ErrorCode code);

// Process exit status used by the CLI for each error family: 2 usage, 3 bad input data, 4 bad file, 5 resources /
// device, 6 unsupported, 70 internal.
int exit_code(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// throw_error(kShapeMismatch, "tensor ", name, ": expected ", a, " got ", b) concatenates its arguments with <<.
template <class... Args>
[[noreturn]] void throw_error(ErrorCode code, const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  throw Error(code, s.str());
}

}  // namespace layoutrt
