// Host tensors for the public API: contiguous, row-major, owning (or sharing ownership of a mapped file).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layoutrt/precision.h"

namespace layoutrt {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[3, 224, 224]"
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  // Allocates numel * dtype_size bytes, zero-filled, 64-byte aligned.
  Tensor(DType dtype, Shape shape);
  // Wraps memory owned by `owner` (e.g. a memory-mapped file) without copying: read-only.
  Tensor(DType dtype, Shape shape, std::shared_ptr<const void> owner, const void* data);
  // The same for writable memory (e.g. Engine::host_tensor's page-locked buffers): mutable_data works.
  Tensor(DType dtype, Shape shape, std::shared_ptr<void> owner, void* data);

  bool defined() const { return defined_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  const void* data() const { return data_; }
  // Mutable access; only for tensors that own their storage (constructed with dtype + shape).
  void* mutable_data();
  template <class T> const T* data_as() const { return static_cast<const T*>(data_); }
  template <class T> T* mutable_data_as() { return static_cast<T*>(mutable_data()); }

  // A copy converted to `to` (float <-> float via fp32; integer <-> integer with range check by the caller).
  Tensor to(DType to) const;
  // A deep copy that owns its storage.
  Tensor clone() const;
  // Same storage, new shape of equal numel.
  Tensor reshaped(Shape shape) const;

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  std::shared_ptr<const void> owner_;
  const void* data_ = nullptr;
  bool writable_ = false;
  bool defined_ = false;
};

}  // namespace layoutrt
