// Where the lifting GEMM (cutlass_lift_mainloop.hpp) reads each lifted column, per K tile: the
// index arithmetic of its producer (which raw window of X a K tile loads) and of its consumers
// (which bytes of that window each lifted window takes). Plain C++, so the CPU tests check it
// against lift_source_column (DESIGN.md §4) for every pattern.
#pragma once

#include "slidesparse/cuda/exact_divide.hpp"  // SLIDESPARSE_HOST_DEVICE

namespace slidesparse::cutlass_lift {

// Window w of group g covers raw columns g·group_cols + 2w … + 3. A finite pattern of length
// L: group_cols = L, L/2 - 1 windows; 2_inf: group_cols = 2, 1 window.
struct LiftMap {
  int group_cols = 0;
  int windows = 0;

  SLIDESPARSE_HOST_DEVICE int lifted_per_group() const { return 4 * windows; }
  // The first raw column K tile `tile` (of `tile_k` lifted columns) reads: its first group's.
  SLIDESPARSE_HOST_DEVICE int raw_start(int tile, int tile_k) const {
    return (tile * tile_k) / lifted_per_group() * group_cols;
  }
  // Offset from raw_start of the window behind the tile's lifted columns 4·window_in_tile …+3.
  SLIDESPARSE_HOST_DEVICE int window_offset(int tile, int tile_k, int window_in_tile) const {
    const int first = tile * tile_k, s = first + 4 * window_in_tile;
    const int group = s / lifted_per_group(), first_group = first / lifted_per_group();
    const int w = (s - group * lifted_per_group()) / 4;
    return (group - first_group) * group_cols + 2 * w;
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

}  // namespace slidesparse::cutlass_lift
