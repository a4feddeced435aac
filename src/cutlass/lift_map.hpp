// Where the lifting GEMM (cutlass_lift_mainloop.hpp) reads each lifted column, per K tile: the
// index arithmetic of its producer (which raw window of X a K tile loads) and of its consumers
// (which bytes of that window each lifted window takes). Plain C++, so the CPU tests check it
// against lift_source_column (DESIGN.md §4) for every pattern.
#pragma once

#include "slidesparse/cuda/exact_divide.hpp"  // SLIDESPARSE_HOST_DEVICE
#include "slidesparse/pattern.hpp"

namespace slidesparse::cutlass_lift {

// Window w of group g covers raw columns g·group_cols + 2w … + 3. A finite pattern of length
// L: group_cols = L, L/2 - 1 windows; 2_inf: group_cols = 2, 1 window.
struct LiftMap {
  // TMA boxes must start at a 16-byte multiple in the row: on the H100 a box of X starting at
  // raw column 168 (6:8's third K tile) raised an illegal instruction in the TMA load.
  static constexpr int kBoxAlign = 16;  // columns of 8-bit values

  int group_cols = 0;
  int windows = 0;

  SLIDESPARSE_HOST_DEVICE int lifted_per_group() const { return 4 * windows; }
  // The first raw column of K tile `tile`'s (of `tile_k` lifted columns) first group.
  SLIDESPARSE_HOST_DEVICE int first_group_column(int tile, int tile_k) const {
    return (tile * tile_k) / lifted_per_group() * group_cols;
  }
  // Where the tile's box of X starts: its first group's column, rounded down to kBoxAlign.
  SLIDESPARSE_HOST_DEVICE int raw_start(int tile, int tile_k) const {
    return first_group_column(tile, tile_k) / kBoxAlign * kBoxAlign;
  }
  // Offset from raw_start of the window behind the tile's lifted columns 4·window_in_tile …+3.
  SLIDESPARSE_HOST_DEVICE int window_offset(int tile, int tile_k, int window_in_tile) const {
    const int first = tile * tile_k, s = first + 4 * window_in_tile;
    const int group = s / lifted_per_group(), first_group = first / lifted_per_group();
    const int w = (s - group * lifted_per_group()) / 4;
    return first_group_column(tile, tile_k) - raw_start(tile, tile_k) +
           (group - first_group) * group_cols + 2 * w;
  }
  // Whether the map is one of the family's and every K tile's windows stay inside a raw box
  // of `box` columns (each tile reads 128/γ columns and part of a group at most).
  SLIDESPARSE_HOST_DEVICE bool fits(int tile_k, int box) const {
    const bool finite = windows >= 1 && 2 * windows + 2 == group_cols;
    const bool infinite = group_cols == 2 && windows == 1;
    if ((!finite && !infinite) || tile_k % 4 != 0) return false;
    // The offsets repeat after lifted_per_group() tiles.
    for (int tile = 0; tile < lifted_per_group(); ++tile)
      if (window_offset(tile, tile_k, tile_k / 4 - 1) + 4 > box) return false;
    return true;
  }
};

// The map of a pattern of the family (host code).
inline LiftMap lift_map_of(const Pattern& pattern) {
  return pattern.is_infinite() ? LiftMap{2, 1}
                               : LiftMap{pattern.length(), pattern.windows_per_group()};
}

}  // namespace slidesparse::cutlass_lift
