// Relative-position bucket tables vs the tables torch computes (dumped by python/make_fixtures.py), for every
// distance -1100..1100 of the base configuration's 1D (32 bins, 128) and 2D (64 bins, 256) buckets.
#include <filesystem>

#include "model/rel_pos.h"
#include "model/safetensors.h"
#include "test_util.h"

namespace layoutrt {
namespace {

void check_against_dump(const std::string& file) {
  SafetensorsFile f = SafetensorsFile::open(file);
  const Tensor rel = f.tensor("rel"), b1 = f.tensor("buckets_1d"), b2 = f.tensor("buckets_2d");
  ASSERT_EQ(rel.numel(), 2201);
  int64_t mismatches = 0;
  for (int64_t i = 0; i < rel.numel(); ++i) {
    const int r = rel.data_as<int32_t>()[i];
    const int got1 = relative_position_bucket(r, 32, 128), got2 = relative_position_bucket(r, 64, 256);
    EXPECT_EQ(got1, b1.data_as<int32_t>()[i]) << "1D bucket of distance " << r << " (" << file << ")";
    EXPECT_EQ(got2, b2.data_as<int32_t>()[i]) << "2D bucket of distance " << r << " (" << file << ")";
    mismatches += got1 != b1.data_as<int32_t>()[i] || got2 != b2.data_as<int32_t>()[i];
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(RelPos, MatchesTorchCpuForEveryDistance) {
  check_against_dump(test::fixtures("rel_pos/buckets_torch_cpu.safetensors"));
}

TEST(RelPos, MatchesTorchCudaForEveryDistance) {
  const std::string f = test::fixtures("rel_pos/buckets_torch_cuda.safetensors");
  if (!std::filesystem::exists(f)) GTEST_SKIP() << "no CUDA bucket dump committed yet";
  check_against_dump(f);
}

// The boundary distances (log ratio an exact integer): the values transformers gives there, spelled out.
TEST(RelPos, BoundaryDistances) {
  // 1D: nb 16, max_exact 8: n = 16 -> 8 + 2 = 10, 32 -> 12, 64 -> 14, 128 -> 15 (clamped); positive side + 16.
  EXPECT_EQ(relative_position_bucket(16, 32, 128), 26);
  EXPECT_EQ(relative_position_bucket(-16, 32, 128), 10);
  EXPECT_EQ(relative_position_bucket(15, 32, 128), 25);
  EXPECT_EQ(relative_position_bucket(32, 32, 128), 28);
  EXPECT_EQ(relative_position_bucket(64, 32, 128), 30);
  EXPECT_EQ(relative_position_bucket(-128, 32, 128), 15);
  EXPECT_EQ(relative_position_bucket(0, 32, 128), 0);
  EXPECT_EQ(relative_position_bucket(7, 32, 128), 23);
  // 2D: nb 32, max_exact 16: n = 32 -> 20, 64 -> 24, 128 -> 28, 256 -> 31 (clamped).
  EXPECT_EQ(relative_position_bucket(-32, 64, 256), 20);
  EXPECT_EQ(relative_position_bucket(64, 64, 256), 56);
  EXPECT_EQ(relative_position_bucket(-128, 64, 256), 28);
  EXPECT_EQ(relative_position_bucket(1000, 64, 256), 63);
}

TEST(RelPos, GathersBiasByDistance) {
  Tensor w(DType::kF32, {2, 4});
  for (int i = 0; i < 8; ++i) w.mutable_data_as<float>()[i] = static_cast<float>(i) + 0.5f;
  const auto table = relative_position_bucket_table(3, 4, 8);  // nb 2, max_exact 1
  Tensor b(DType::kI32, {7});
  for (int i = 0; i < 7; ++i) b.mutable_data_as<int32_t>()[i] = table[i];
  const Tensor g = gather_bias_by_distance(w, b);
  ASSERT_EQ(g.shape(), (Shape{2, 7}));
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 7; ++i) EXPECT_EQ(g.data_as<float>()[h * 7 + i], w.data_as<float>()[h * 4 + table[i]]);
}

}  // namespace
}  // namespace layoutrt
