#include "slidesparse/prune.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {
void require_shape(std::int64_t rows, std::int64_t k, const char* what) {
  SLIDESPARSE_REQUIRE(rows >= 0 && k >= 0, InvalidArgument,
                      std::string(what) + ": negative shape [" + std::to_string(rows) + ", " +
                          std::to_string(k) + "]");
}

// Zeroes the `drop` (< size) smallest magnitudes of group[0 .. size); on equal
// magnitudes the higher column goes first. A scan per dropped value: drop is 1 or 2
// for a full group, cheaper than sorting billions of groups in the converter.
void drop_smallest(float* group, int size, int drop) {
  bool dropped[Pattern::kMaxLength] = {};
  for (int d = 0; d < drop; ++d) {
    int victim = 0;
    while (dropped[victim]) ++victim;  // d < drop < size: one is left
    for (int i = victim + 1; i < size; ++i)
      if (!dropped[i] && std::fabs(group[i]) <= std::fabs(group[victim])) victim = i;
    dropped[victim] = true;
    group[victim] = 0.0f;
  }
}
}  // namespace

PruneMode parse_prune_mode(const std::string& name) {
  if (name == "magnitude") return PruneMode::Magnitude;
  if (name == "none") return PruneMode::None;
  throw InvalidArgument("unknown prune mode '" + name + "' (expected magnitude or none)");
}

const char* prune_mode_name(PruneMode mode) {
  return mode == PruneMode::Magnitude ? "magnitude" : "none";
}

void prune_magnitude(float* w, std::int64_t rows, std::int64_t k, const Pattern& p) {
  require_shape(rows, k, "prune_magnitude");
  if (p.is_infinite()) return;
  const int length = p.length();
  const int keep = length - 2;
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = w + r * k;
    for (std::int64_t start = 0; start < k; start += length) {
      const int size = static_cast<int>(std::min<std::int64_t>(length, k - start));
      if (size > keep) drop_smallest(row + start, size, size - keep);
    }
  }
}

std::optional<GroupViolation> find_group_violation(const float* w, std::int64_t rows,
                                                   std::int64_t k, const Pattern& p) {
  require_shape(rows, k, "find_group_violation");
  if (p.is_infinite()) return std::nullopt;
  const int length = p.length();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * k;
    for (std::int64_t start = 0; start < k; start += length) {
      const std::int64_t end = std::min<std::int64_t>(start + length, k);
      int nonzeros = 0;
      for (std::int64_t c = start; c < end; ++c) nonzeros += row[c] != 0.0f;
      if (nonzeros > length - 2) return GroupViolation{r, start / length, nonzeros};
    }
  }
  return std::nullopt;
}

}  // namespace slidesparse
