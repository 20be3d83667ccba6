// gelu_poly (src/cuda/gelu_poly.h, the Hopper FFN epilogue's GELU) against the exact GELU in long double, on a dense
// grid and at edge values: the error bounds its header states. The host build evaluates the same FP32 operations as
// the device (fmaf chain; exp2 here vs ex2.approx there, both within a few ulp of the argument's exp2).
#include "cuda/gelu_poly.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace layoutrt {
namespace {

long double gelu_exact(long double x) { return 0.5L * x * (1.0L + std::erf(x / std::sqrt(2.0L))); }

TEST(GeluPoly, ErrorBoundsOnADenseGrid) {
  double worst_scaled = 0, worst_rel = 0;
  float worst_x_scaled = 0, worst_x_rel = 0;
  for (int i = -1200000; i <= 1200000; ++i) {
    const float x = static_cast<float>(i) * 1e-5f;  // [-12, 12]
    const long double ref = gelu_exact(x);
    const double err = static_cast<double>(std::fabs(static_cast<long double>(gelu_poly(x)) - ref));
    const double scaled = err / std::max(1.0, static_cast<double>(std::fabs(ref)));
    if (scaled > worst_scaled) worst_scaled = scaled, worst_x_scaled = x;
    if (std::fabs(ref) > 1e-6L) {
      const double rel = err / static_cast<double>(std::fabs(ref));
      if (rel > worst_rel) worst_rel = rel, worst_x_rel = x;
    }
  }
  std::printf("[gelu_poly] max |err|/max(|gelu|,1) %.2e at x = %g; max rel (|gelu| > 1e-6) %.2e at x = %g\n",
              worst_scaled, worst_x_scaled, worst_rel, worst_x_rel);
  EXPECT_LE(worst_scaled, 2.5e-7);
  EXPECT_LE(worst_rel, 5e-6);
}

TEST(GeluPoly, EdgeValues) {
  EXPECT_EQ(gelu_poly(0.0f), 0.0f);
  EXPECT_NEAR(gelu_poly(1.0f), 0.8413447460685429f, 2e-7f);
  EXPECT_NEAR(gelu_poly(-1.0f), -0.15865525393145707f, 2e-7f);
  EXPECT_EQ(gelu_poly(100.0f), 100.0f);             // Φ = 1 − 7.7e−9 rounds to 1
  // Below the clamp (x < −4√2) the result is −4√2 · 7.7e−9 = −4.4e−8: |GELU| is smaller still.
  EXPECT_LT(gelu_poly(-100.0f), 0.0f);
  EXPECT_LE(std::fabs(gelu_poly(-100.0f)), 5e-8f);
  EXPECT_LE(std::fabs(gelu_poly(-std::numeric_limits<float>::infinity())), 5e-8f);
  EXPECT_EQ(gelu_poly(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(gelu_poly(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(gelu_poly(-std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace layoutrt
