#include "layoutrt/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "common/half.h"
#include "layoutrt/error.h"

namespace layoutrt {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)), writable_(true), defined_(true) {
  for (int64_t d : shape_)
    if (d < 0) throw_error(ErrorCode::kInvalidArgument, "tensor shape ", shape_str(shape_), " has a negative dim");
  const size_t bytes = nbytes();
  const size_t alloc = ((bytes + 63) / 64) * 64 + 64;
  void* p = std::aligned_alloc(64, alloc);
  if (!p) throw_error(ErrorCode::kOutOfMemory, "cannot allocate ", bytes, " bytes for a host tensor ", shape_str(shape_));
  std::memset(p, 0, alloc);
  owner_ = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  data_ = p;
}

Tensor::Tensor(DType dtype, Shape shape, std::shared_ptr<const void> owner, const void* data)
    : dtype_(dtype), shape_(std::move(shape)), owner_(std::move(owner)), data_(data), writable_(false),
      defined_(true) {}

Tensor::Tensor(DType dtype, Shape shape, std::shared_ptr<void> owner, void* data)
    : dtype_(dtype), shape_(std::move(shape)), owner_(std::move(owner)), data_(data), writable_(true),
      defined_(true) {}

void* Tensor::mutable_data() {
  if (!writable_) throw_error(ErrorCode::kInternal, "tensor ", shape_str(shape_), " is read-only (mapped)");
  return const_cast<void*>(data_);
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_);
  if (nbytes()) std::memcpy(t.mutable_data(), data_, nbytes());
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel())
    throw_error(ErrorCode::kShapeMismatch, "cannot reshape ", shape_str(shape_), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

namespace {
double load_as_double(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kF16: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::kBF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::kF64: return static_cast<const double*>(p)[i];
    case DType::kI64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::kI32: return static_cast<const int32_t*>(p)[i];
    case DType::kI16: return static_cast<const int16_t*>(p)[i];
    case DType::kI8: return static_cast<const int8_t*>(p)[i];
    case DType::kU8: return static_cast<const uint8_t*>(p)[i];
    case DType::kBool: return static_cast<const uint8_t*>(p)[i] != 0;
    default: break;
  }
  throw_error(ErrorCode::kUnsupported, "conversion from ", dtype_name(t), " is not supported");
}

int64_t load_as_int(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::kI64: return static_cast<const int64_t*>(p)[i];
    case DType::kI32: return static_cast<const int32_t*>(p)[i];
    case DType::kI16: return static_cast<const int16_t*>(p)[i];
    case DType::kI8: return static_cast<const int8_t*>(p)[i];
    case DType::kU8: return static_cast<const uint8_t*>(p)[i];
    case DType::kBool: return static_cast<const uint8_t*>(p)[i] != 0;
    default: return static_cast<int64_t>(load_as_double(t, p, i));
  }
}

void store(DType t, void* p, int64_t i, double v, int64_t iv, bool from_int) {
  switch (t) {
    case DType::kF32: static_cast<float*>(p)[i] = static_cast<float>(v); return;
    case DType::kF16: static_cast<uint16_t*>(p)[i] = float_to_half(static_cast<float>(v)); return;
    case DType::kBF16: static_cast<uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); return;
    case DType::kF64: static_cast<double*>(p)[i] = v; return;
    case DType::kI64: static_cast<int64_t*>(p)[i] = from_int ? iv : static_cast<int64_t>(v); return;
    case DType::kI32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(from_int ? iv : static_cast<int64_t>(v)); return;
    case DType::kI16: static_cast<int16_t*>(p)[i] = static_cast<int16_t>(from_int ? iv : static_cast<int64_t>(v)); return;
    case DType::kI8: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(from_int ? iv : static_cast<int64_t>(v)); return;
    case DType::kU8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(from_int ? iv : static_cast<int64_t>(v)); return;
    case DType::kBool: static_cast<uint8_t*>(p)[i] = (from_int ? iv != 0 : v != 0.0) ? 1 : 0; return;
    default: break;
  }
  throw_error(ErrorCode::kUnsupported, "conversion to ", dtype_name(t), " is not supported");
}
}  // namespace

Tensor Tensor::to(DType to) const {
  if (to == dtype_) return clone();
  Tensor out(to, shape_);
  const int64_t n = numel();
  void* dst = out.mutable_data();
  const bool from_int = dtype_is_integer(dtype_);
  if (dtype_ == DType::kF32 && to == DType::kF16) {  // the hot conversions, without the double detour
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = float_to_half(data_as<float>()[i]);
  } else if (dtype_ == DType::kF32 && to == DType::kBF16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(data_as<float>()[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      if (from_int) {
        const int64_t iv = load_as_int(dtype_, data_, i);
        store(to, dst, i, static_cast<double>(iv), iv, true);
      } else {
        store(to, dst, i, load_as_double(dtype_, data_, i), 0, false);
      }
    }
  }
  return out;
}

}  // namespace layoutrt
