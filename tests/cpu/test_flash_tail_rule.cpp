// The attention tail split's rule (src/cuda/flash_tail.h): which grids split their partial last query tile over extra
// CTAs. Plain arithmetic, checked here without a GPU; the kernel itself is checked against the CPU twin in
// tests/gpu/test_flash_attention.cpp.
#include "cuda/flash_tail.h"

#include <gtest/gtest.h>

namespace layoutrt {
namespace {

using cuda::flash_tail_units_rule;

TEST(FlashTailRule, SplitsTheBaseShapeAtBatchOneOnA132SmGpu) {
  // T = 512: 709 rows = 11 full tiles + 5 rows; 12 heads. Unsplit 144 CTAs > 132: 12 SMs would run two.
  EXPECT_EQ(flash_tail_units_rule(709, 12, 132, 1), 6);  // 12 key tiles, one per unit warpgroup, 2 per CTA
  EXPECT_EQ(flash_tail_units_rule(709, 12, 132, 2), 3);
  EXPECT_EQ(flash_tail_units_rule(709, 12, 132, 5), 2);
}

TEST(FlashTailRule, NoSplitWithoutAPartialTileOrWhereNothingDoublesUp) {
  EXPECT_EQ(flash_tail_units_rule(704, 12, 132, 1), 0);  // 11 whole tiles
  EXPECT_EQ(flash_tail_units_rule(640, 12, 132, 1), 0);
  EXPECT_EQ(flash_tail_units_rule(645, 12, 132, 1), 0);  // 10 full + 1 partial: 132 CTAs, one per SM already
  EXPECT_EQ(flash_tail_units_rule(709, 12, 144, 1), 0);  // 144 SMs: the unsplit grid fits
  EXPECT_EQ(flash_tail_units_rule(40, 12, 132, 1), 0);   // no full tile
}

TEST(FlashTailRule, NoSplitWhereTheFullTilesOrTheUnitsDoNotFit) {
  EXPECT_EQ(flash_tail_units_rule(709, 24, 132, 1), 0);  // B = 2: 264 full tiles, more than one per SM
  EXPECT_EQ(flash_tail_units_rule(709, 12, 114, 1), 0);  // an H100 PCIe's 114 SMs: 132 full tiles do not fit
  // 1 full tile + 1 partial per pair (2 key tiles: one unit CTA of two warpgroups): 100 pairs on 132 SMs: the full
  // tiles fit, the 200 unsplit CTAs double up, full tiles + units = 200 ≤ 264.
  EXPECT_EQ(flash_tail_units_rule(100, 100, 132, 1), 1);
  EXPECT_EQ(flash_tail_units_rule(100, 140, 132, 1), 0);  // 140 full tiles > 132
  // 2 full + 1 partial per pair, 3 key tiles: 2 units per pair; 60 pairs: 120 full ≤ 132, 180 unsplit > 132, (2 + 2)
  // × 60 = 240 ≤ 264; 66 pairs: 264 ≤ 264; 67 pairs: 134 full tiles > 132.
  EXPECT_EQ(flash_tail_units_rule(150, 60, 132, 1), 2);
  EXPECT_EQ(flash_tail_units_rule(150, 66, 132, 1), 2);
  EXPECT_EQ(flash_tail_units_rule(150, 67, 132, 1), 0);
}

// The inline form: one sequence without query_rows, a partial tile of 1 .. 16 rows, ⌈key tiles / 2⌉ ≤ min(full, 6).
TEST(FlashTailRule, InlineFormFitsOneSequenceWithASmallPartialTile) {
  using cuda::flash_inline_tail_fits;
  EXPECT_TRUE(flash_inline_tail_fits(1, false, 709));   // B = 1, T = 512: 11 full tiles + 5 rows, 6 parts
  EXPECT_TRUE(flash_inline_tail_fits(1, false, 65));    // 1 full + 1 row: 2 key tiles, 1 part
  EXPECT_TRUE(flash_inline_tail_fits(1, false, 80));    // 16 rows
  EXPECT_TRUE(flash_inline_tail_fits(1, false, 129));   // 2 full + 1 row: 3 key tiles, 2 parts
  EXPECT_TRUE(flash_inline_tail_fits(1, false, 720));   // 11 full + 16 rows: 12 key tiles, 6 parts
  EXPECT_FALSE(flash_inline_tail_fits(1, false, 721));  // 17 rows: more than a strip
  EXPECT_FALSE(flash_inline_tail_fits(1, false, 704));  // no partial tile
  EXPECT_FALSE(flash_inline_tail_fits(1, false, 40));   // no full tile to run the strips
  EXPECT_FALSE(flash_inline_tail_fits(1, false, 769));  // 13 key tiles: 7 parts > 6
  EXPECT_FALSE(flash_inline_tail_fits(2, false, 709));  // two sequences (their lengths may differ)
  EXPECT_FALSE(flash_inline_tail_fits(1, true, 709));   // query_rows (the last layer's head rows)
  EXPECT_FALSE(flash_inline_tail_fits(0, false, 709));
  EXPECT_FALSE(flash_inline_tail_fits(1, false, 0));
}

TEST(FlashTailRule, RejectsDegenerateArguments) {
  EXPECT_EQ(flash_tail_units_rule(0, 12, 132, 1), 0);
  EXPECT_EQ(flash_tail_units_rule(709, 0, 132, 1), 0);
  EXPECT_EQ(flash_tail_units_rule(709, 12, 0, 1), 0);
  EXPECT_EQ(flash_tail_units_rule(709, 12, 132, 0), 0);
}

}  // namespace
}  // namespace layoutrt
