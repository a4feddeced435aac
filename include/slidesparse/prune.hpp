// Magnitude pruning to a (L-2):L pattern (DESIGN.md §2): at most L-2 non-zeros
// in every group of L consecutive weights along K.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "slidesparse/pattern.hpp"

namespace slidesparse {

enum class PruneMode { Magnitude, None };

// "magnitude" or "none"; anything else throws InvalidArgument.
PruneMode parse_prune_mode(const std::string& name);
const char* prune_mode_name(PruneMode mode);

// Zeroes the smallest |w| of every group of L along each row of w [rows, k] until
// at most L-2 non-zeros remain. A last, partial group counts as padded with zeros,
// so it keeps at most L-2 of its real values. Ties: among equal magnitudes the
// higher column is dropped first. No-op for 2_inf.
void prune_magnitude(float* w, std::int64_t rows, std::int64_t k, const Pattern& p);

struct GroupViolation {
  std::int64_t row;
  std::int64_t group;
  int nonzeros;
};

// The first (row, group), in row-major order, holding more than L-2 non-zeros.
// Never one for 2_inf.
std::optional<GroupViolation> find_group_violation(const float* w, std::int64_t rows,
                                                   std::int64_t k, const Pattern& p);

}  // namespace slidesparse
