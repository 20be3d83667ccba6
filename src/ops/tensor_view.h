// TensorView: a small non-owning view that passes between ops. Owning buffers live in the runtime's workspace or the
// engine's weights. Views are contiguous and row-major; `device` says where `data` lives.
#pragma once

#include <array>
#include <cstdint>

#include "layoutrt/precision.h"

namespace layoutrt {

enum class Device : uint8_t { kCPU, kCUDA };

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::kCPU;
  int rank = 0;
  std::array<int64_t, 4> dims{};

  TensorView() = default;
  TensorView(void* p, DType t, Device d, std::initializer_list<int64_t> shape) : data(p), dtype(t), device(d) {
    for (int64_t s : shape) dims[rank++] = s;
  }
  bool defined() const { return data != nullptr; }
  int64_t dim(int i) const { return dims[i < 0 ? rank + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <class T> T* as() const { return static_cast<T*>(data); }
  // Rows [begin, begin + count) of a matrix view (first dim), same width.
  TensorView rows(int64_t begin, int64_t count) const {
    TensorView v = *this;
    v.data = static_cast<char*>(data) + begin * (nbytes() / (dims[0] ? dims[0] : 1));
    v.dims[0] = count;
    return v;
  }
  // The same memory seen as a [rows, cols] matrix.
  TensorView as_matrix(int64_t rows_, int64_t cols) const {
    TensorView v = *this;
    v.rank = 2;
    v.dims = {rows_, cols, 0, 0};
    return v;
  }
};

}  // namespace layoutrt
