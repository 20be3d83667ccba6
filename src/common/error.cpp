#include "layoutrt/error.h"

namespace layoutrt {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kIo: return "I/O error";
    case ErrorCode::kFormat: return "bad file format";
    case ErrorCode::kChecksum: return "checksum mismatch";
    case ErrorCode::kVersion: return "unsupported version";
    case ErrorCode::kMissingTensor: return "missing tensor";
    case ErrorCode::kUnexpectedTensor: return "unexpected tensor";
    case ErrorCode::kShapeMismatch: return "shape mismatch";
    case ErrorCode::kDTypeMismatch: return "dtype mismatch";
    case ErrorCode::kInputOutOfRange: return "input out of range";
    case ErrorCode::kOutOfMemory: return "out of memory";
    case ErrorCode::kCuda: return "CUDA error";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInternal: return "internal error";
  }
  return "error";
}

int exit_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 2;
    case ErrorCode::kInputOutOfRange:
    case ErrorCode::kShapeMismatch:
    case ErrorCode::kDTypeMismatch: return 3;
    case ErrorCode::kNotFound:
    case ErrorCode::kIo:
    case ErrorCode::kFormat:
    case ErrorCode::kChecksum:
    case ErrorCode::kVersion:
    case ErrorCode::kMissingTensor:
    case ErrorCode::kUnexpectedTensor: return 4;
    case ErrorCode::kOutOfMemory:
    case ErrorCode::kCuda: return 5;
    case ErrorCode::kUnsupported: return 6;
    case ErrorCode::kInternal: return 70;
  }
  return 1;
}

}  // namespace layoutrt
