// Sliding-window decomposition of the weights (DESIGN.md §3).
//
// Sliding only moves values, it never changes one (quantize first, slide second),
// so it works on the raw storage of any element type: I8, U8, F8_E4M3, BF16, F16, F32.
// A value is zero when its bits, sign ignored, are zero (I8/U8: byte 0; F8_E4M3:
// bits & 0x7F; BF16/F16: bits & 0x7FFF; F32: value == 0). Padding and slots that hold
// no value are written as all-zero bits, so a negative zero comes back as +0.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse {

// The greedy assignment for one group of `length` positions: for each position, the
// window (0 .. length/2-2) that holds it, or -1 for a zero. Each non-zero goes to the
// earliest covering window that still has room for it. Throws InvalidArgument when a
// non-zero finds no room, which happens only with more than length-2 non-zeros.
std::vector<int> assign_windows(const std::vector<bool>& nonzero, int length);

// in [rows, k] -> out [rows, p.k_slide(k)]. For 2_inf, window w is
// [x(2w), x(2w+1), 0, 0]. Throws InvalidArgument naming the row and group when a
// group holds more than L-2 non-zeros.
void slide_rows(DType t, const void* in, std::int64_t rows, std::int64_t k, const Pattern& p,
                void* out);

// Exact inverse of slide_rows: in [rows, p.k_slide(k)] -> out [rows, k]. Throws
// InvalidArgument when `in` cannot come from slide_rows: a non-zero in the padding
// or two non-zeros that claim the same column.
void unslide_rows(DType t, const void* in, std::int64_t rows, std::int64_t k, const Pattern& p,
                  void* out);

struct WindowViolation {
  std::int64_t row;
  std::int64_t window;
  int nonzeros;
};

// The first aligned window of 4 along a row of data [rows, cols] with more than 2
// non-zeros, i.e. what cuSPARSELt would reject as not 2:4. cols must be a multiple of 4.
std::optional<WindowViolation> find_2to4_violation(DType t, const void* data, std::int64_t rows,
                                                   std::int64_t cols);

}  // namespace slidesparse
