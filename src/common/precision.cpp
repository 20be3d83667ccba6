#include "layoutrt/precision.h"

#include <algorithm>
#include <cctype>

namespace layoutrt {

namespace {
struct DTypeEntry { DType t; const char* name; size_t size; };
constexpr DTypeEntry kDTypes[] = {
    {DType::kF32, "F32", 4},  {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2}, {DType::kF64, "F64", 8},
    {DType::kI64, "I64", 8},  {DType::kI32, "I32", 4}, {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},    {DType::kBool, "BOOL", 1}, {DType::kF8E4M3, "F8_E4M3", 1},
};
const DTypeEntry& entry(DType t) {
  for (const auto& e : kDTypes) if (e.t == t) return e;
  return kDTypes[0];
}
}  // namespace

size_t dtype_size(DType t) { return entry(t).size; }
const char* dtype_name(DType t) { return entry(t).name; }
std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& e : kDTypes) if (name == e.name) return e.t;
  return std::nullopt;
}
bool dtype_is_float(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64 || t == DType::kF8E4M3;
}
bool dtype_is_integer(DType t) { return !dtype_is_float(t); }

namespace {
constexpr std::pair<Precision, const char*> kPrecisions[] = {
    {Precision::kFP32, "fp32"}, {Precision::kTF32, "tf32"}, {Precision::kFP16, "fp16"},
    {Precision::kBF16, "bf16"}, {Precision::kMixed, "mixed"},
};
}  // namespace

const char* precision_name(Precision p) {
  for (const auto& [v, n] : kPrecisions) if (v == p) return n;
  return "?";
}
std::optional<Precision> precision_from_name(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const auto& [v, n] : kPrecisions) if (lower == n) return v;
  return std::nullopt;
}
std::string precision_choices() {
  std::string s;
  for (const auto& [v, n] : kPrecisions) { if (!s.empty()) s += "|"; s += n; }
  return s;
}

DType encoder_dtype(Precision p) {
  switch (p) {
    case Precision::kFP16: case Precision::kMixed: return DType::kF16;
    case Precision::kBF16: return DType::kBF16;
    default: return DType::kF32;
  }
}
DType embedding_dtype(Precision p) {
  switch (p) {
    case Precision::kFP16: return DType::kF16;
    case Precision::kBF16: return DType::kBF16;
    default: return DType::kF32;  // fp32, tf32, mixed
  }
}

}  // namespace layoutrt
