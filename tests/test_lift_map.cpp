// The index arithmetic of the lifting GEMM (src/cutlass/lift_map.hpp), which its producer and
// consumers run on the GPU, against the lift's definition (lift_source_column, DESIGN.md §4):
// every lifted column of every K tile must come from the raw column the lift names.
#include <gtest/gtest.h>

#include <string>

#include "../src/cutlass/lift_map.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse {
namespace {

using cutlass_lift::lift_map_of;
using cutlass_lift::LiftMap;

constexpr int kTileK = 128;  // the GEMM's K tile (lifted columns), and the raw box's width

TEST(LiftMap, EveryLiftedColumnOfEveryKTileReadsTheColumnTheLiftNames) {
  for (const Pattern& pattern : Pattern::all()) {
    const LiftMap map = lift_map_of(pattern);
    ASSERT_TRUE(map.fits(kTileK, kTileK)) << pattern.display_name();
    // Tiles up to a few periods of the offsets (they repeat after lifted_per_group() tiles).
    constexpr std::int64_t kHugeK = std::int64_t{1} << 40;  // no padding in the way
    for (int tile = 0; tile < 3 * map.lifted_per_group(); ++tile)
      for (int lane = 0; lane < kTileK / 4; ++lane) {
        const int offset = map.window_offset(tile, kTileK, lane);
        ASSERT_EQ(offset % 2, 0) << pattern.display_name();  // windows start at even columns
        ASSERT_GE(offset, 0);
        ASSERT_LE(offset + 4, kTileK) << pattern.display_name() << " tile " << tile;
        ASSERT_EQ(map.raw_start(tile, kTileK) % LiftMap::kBoxAlign, 0);  // TMA box starts
        for (int j = 0; j < 4; ++j) {
          const std::int64_t s = std::int64_t{tile} * kTileK + 4 * lane + j;
          EXPECT_EQ(map.raw_start(tile, kTileK) + offset + j,
                    lift_source_column(s, pattern, kHugeK))
              << pattern.display_name() << " lifted column " << s;
        }
      }
  }
}

// 6:8 (12 lifted columns per group of 8) is the pattern whose K tiles start inside a group;
// its third K tile's group also starts off the 16-column grid of TMA boxes.
TEST(LiftMap, SixOfEightTilesStartInsideGroups) {
  const LiftMap map = lift_map_of(Pattern::parse("6:8"));
  EXPECT_EQ(map.raw_start(0, kTileK), 0);
  EXPECT_EQ(map.raw_start(1, kTileK), 80);  // lifted 128 is in group 10 (column 8 of it)
  EXPECT_EQ(map.window_offset(1, kTileK, 0), 4);  // its window 2 starts 4 columns into the group
  EXPECT_EQ(map.first_group_column(2, kTileK), 168);  // lifted 256: group 21, column 4
  EXPECT_EQ(map.raw_start(2, kTileK), 160);           // the box starts on the 16-column grid
  EXPECT_EQ(map.window_offset(2, kTileK, 0), 10);     // 8 to the group, then its window 1
}

TEST(LiftMap, RefusesMapsOutsideTheFamilyAndBoxesTooNarrow) {
  EXPECT_FALSE((LiftMap{7, 3}.fits(kTileK, kTileK)));  // not L = 2·windows + 2
  EXPECT_FALSE((LiftMap{8, 2}.fits(kTileK, kTileK)));
  EXPECT_FALSE((LiftMap{0, 0}.fits(kTileK, kTileK)));
  // 2:4 lifts to itself: a K tile reads exactly 128 raw columns, not fewer.
  EXPECT_TRUE((LiftMap{4, 1}.fits(kTileK, kTileK)));
  EXPECT_FALSE((LiftMap{4, 1}.fits(kTileK, 96)));
  // 6:8 reads at most 96 raw columns per K tile from the 16-column grid.
  EXPECT_TRUE((LiftMap{8, 3}.fits(kTileK, 96)));
  EXPECT_FALSE((LiftMap{8, 3}.fits(kTileK, 80)));
}

}  // namespace
}  // namespace slidesparse
