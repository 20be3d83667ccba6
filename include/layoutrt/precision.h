// Element types and precision policies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace layoutrt {

// Element type of a tensor. Names follow the safetensors spelling (F32, BF16, I64, ...).
enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool, kF8E4M3 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);                                 // "F32", "BF16", ...
std::optional<DType> dtype_from_name(std::string_view name);     // inverse of dtype_name
bool dtype_is_float(DType t);
bool dtype_is_integer(DType t);  // includes kBool

// How the engine computes. Stored in the plan.
//   fp32  : FP32 everywhere, tensor-core TF32 off (the exact mode; matches torch fp32 with TF32 off)
//   tf32  : FP32 storage, TF32 tensor-core GEMMs
//   fp16  : FP16 weights and activations, FP32 accumulation, softmax and LayerNorm statistics
//   bf16  : as fp16 with bfloat16
//   mixed : embeddings and relative-position biases FP32, encoder FP16 (the original TensorRT port's choice)
enum class Precision : uint8_t { kFP32, kTF32, kFP16, kBF16, kMixed };

const char* precision_name(Precision p);                            // "fp32", "tf32", ...
std::optional<Precision> precision_from_name(std::string_view name);  // case-insensitive
std::string precision_choices();                                     // "fp32|tf32|fp16|bf16|mixed"

// Storage type of the encoder's weights and activations under policy p (FP32 for fp32/tf32).
DType encoder_dtype(Precision p);
// Storage type of the embedding tables (word/position/2D/patch) under policy p.
DType embedding_dtype(Precision p);

}  // namespace layoutrt
