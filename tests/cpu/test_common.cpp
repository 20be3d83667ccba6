#include <gtest/gtest.h>

#include <cmath>

#include "common/half.h"
#include "layoutrt/error.h"
#include "layoutrt/precision.h"
#include "layoutrt/tensor.h"

namespace layoutrt {
namespace {

TEST(Half, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), h) << "half bits " << h;
  }
}

TEST(Half, RoundsToNearestEven) {
  // 1 + 2^-11 lies exactly between two halves: ties to even (1.0); 1 + 3*2^-11 ties up to 1 + 2^-9.
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // overflow to inf
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
}

TEST(Tensor, ConvertsBetweenTypes) {
  Tensor t(DType::kI64, {2, 3});
  for (int i = 0; i < 6; ++i) t.mutable_data_as<int64_t>()[i] = i * 1000;
  Tensor f = t.to(DType::kF32);
  EXPECT_EQ(f.dtype(), DType::kF32);
  EXPECT_EQ(f.shape(), (Shape{2, 3}));
  EXPECT_FLOAT_EQ(f.data_as<float>()[5], 5000.0f);
  Tensor i32 = t.to(DType::kI32);
  EXPECT_EQ(i32.data_as<int32_t>()[4], 4000);
}

TEST(Tensor, ReshapeChecksNumel) {
  Tensor t(DType::kF32, {4, 6});
  EXPECT_EQ(t.reshaped({2, 12}).shape(), (Shape{2, 12}));
  EXPECT_THROW(t.reshaped({5, 5}), Error);
}

TEST(Precision, ParsesNames) {
  EXPECT_EQ(precision_from_name("FP16"), Precision::kFP16);
  EXPECT_EQ(precision_from_name("mixed"), Precision::kMixed);
  EXPECT_FALSE(precision_from_name("int4").has_value());
  EXPECT_EQ(dtype_from_name("BF16"), DType::kBF16);
  EXPECT_EQ(dtype_size(DType::kI64), 8u);
}

}  // namespace
}  // namespace layoutrt
