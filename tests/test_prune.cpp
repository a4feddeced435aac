#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse {
namespace {

TEST(Prune, ParsesModes) {
  EXPECT_EQ(parse_prune_mode("magnitude"), PruneMode::Magnitude);
  EXPECT_EQ(parse_prune_mode("none"), PruneMode::None);
  EXPECT_STREQ(prune_mode_name(PruneMode::Magnitude), "magnitude");
  EXPECT_STREQ(prune_mode_name(PruneMode::None), "none");
  for (const char* bad : {"", "Magnitude", "random", "wanda", "none "})
    EXPECT_THROW(parse_prune_mode(bad), InvalidArgument) << "'" << bad << "'";
}

TEST(Prune, DropsTheSmallestMagnitudesOfEachGroup) {
  std::vector<float> w = {1,  -8, 3, 0.5f, -2, 7, 6, -4,  // group 0: drops 0.5 and 1
                          -9, 9,  0, 0,    1,  2, 3, 4};  // group 1: two zeros, nothing to do
  prune_magnitude(w.data(), 1, 16, Pattern::parse("6:8"));
  const std::vector<float> expected = {0, -8, 3, 0, -2, 7, 6, -4, -9, 9, 0, 0, 1, 2, 3, 4};
  EXPECT_EQ(w, expected);
}

TEST(Prune, TiesDropTheHigherColumnFirst) {
  std::vector<float> all_equal(8, 1.0f);
  prune_magnitude(all_equal.data(), 1, 8, Pattern::parse("2_8"));
  EXPECT_EQ(all_equal, (std::vector<float>{1, 1, 1, 1, 1, 1, 0, 0}));

  std::vector<float> w = {2, 1, 3, -1, 5, 1, 6, 7};  // |1| three times: columns 5 and 3 go
  prune_magnitude(w.data(), 1, 8, Pattern::parse("2_8"));
  EXPECT_EQ(w, (std::vector<float>{2, 1, 3, 0, 5, 0, 6, 7}));

  std::vector<float> quad = {-3, 3, 3, -3};
  prune_magnitude(quad.data(), 1, 4, Pattern::parse("2:4"));
  EXPECT_EQ(quad, (std::vector<float>{-3, 3, 0, 0}));
}

TEST(Prune, PartialLastGroupCountsAsPaddedWithZeros) {
  // K = 11, L = 8: the last group has 3 real values, room for 6: untouched.
  std::vector<float> w(11);
  for (int i = 0; i < 11; ++i) w[i] = static_cast<float>(i + 1);
  prune_magnitude(w.data(), 1, 11, Pattern::parse("6:8"));
  EXPECT_EQ(w, (std::vector<float>{0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11}));

  // K = 15: the last group has 7 real values, keeps 6.
  std::vector<float> v(15);
  for (int i = 0; i < 15; ++i) v[i] = static_cast<float>(15 - i);
  prune_magnitude(v.data(), 1, 15, Pattern::parse("6:8"));
  EXPECT_EQ(v, (std::vector<float>{15, 14, 13, 12, 11, 10, 0, 0, 7, 6, 5, 4, 3, 2, 0}));

  // K = 7, L = 4: last group of 3 keeps 2.
  std::vector<float> u = {4, 3, 2, 1, 1, 9, 5};
  prune_magnitude(u.data(), 1, 7, Pattern::parse("2:4"));
  EXPECT_EQ(u, (std::vector<float>{4, 3, 0, 0, 0, 9, 5}));
}

TEST(Prune, InfiniteIsANoOp) {
  std::vector<float> w = {1, 2, 3, 4, 5, 6, 7};
  const auto before = w;
  prune_magnitude(w.data(), 1, 7, Pattern::infinite());
  EXPECT_EQ(w, before);
  EXPECT_FALSE(find_group_violation(w.data(), 1, 7, Pattern::infinite()));
}

// On random matrices: no violation remains, every group keeps exactly min(size, L-2)
// values, and they are the largest ones, unchanged.
TEST(Prune, RandomMatricesKeepTheLargestValues) {
  std::mt19937 rng(21);
  std::normal_distribution<float> value(0.0f, 1.0f);
  for (const Pattern& p : Pattern::all()) {
    if (p.is_infinite()) continue;
    const int l = p.length();
    for (std::int64_t k :
         {std::int64_t{1}, std::int64_t{l - 1}, std::int64_t{l}, std::int64_t{3 * l + 1},
          std::int64_t{3 * l + l - 1}, std::int64_t{100}}) {
      const std::int64_t rows = 6;
      std::vector<float> original(static_cast<std::size_t>(rows * k));
      for (float& v : original) v = value(rng);
      std::vector<float> w = original;
      prune_magnitude(w.data(), rows, k, p);
      ASSERT_FALSE(find_group_violation(w.data(), rows, k, p)) << p.zeros_name() << " K=" << k;
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t start = 0; start < k; start += l) {
          const std::int64_t end = std::min(start + l, k);
          int kept = 0;
          float smallest_kept = INFINITY, largest_dropped = 0.0f;
          for (std::int64_t c = start; c < end; ++c) {
            const float before = original[r * k + c], after = w[r * k + c];
            if (after != 0.0f) {
              ASSERT_EQ(after, before);
              ++kept;
              smallest_kept = std::min(smallest_kept, std::fabs(before));
            } else {
              largest_dropped = std::max(largest_dropped, std::fabs(before));
            }
          }
          ASSERT_EQ(kept, std::min<std::int64_t>(end - start, l - 2));
          ASSERT_GE(smallest_kept, largest_dropped);
        }
      }
    }
  }
}

TEST(Prune, FindsTheFirstViolationInRowMajorOrder) {
  const Pattern p = Pattern::parse("6:8");
  const std::int64_t rows = 4, k = 40;
  std::vector<float> w(rows * k, 0.0f);
  EXPECT_FALSE(find_group_violation(w.data(), rows, k, p));
  for (int c = 0; c < 7; ++c) w[2 * k + 3 * 8 + c] = 1.0f;  // row 2, group 3: 7 non-zeros
  for (int c = 0; c < 8; ++c) w[3 * k + 0 * 8 + c] = 1.0f;  // row 3, group 0: 8
  const auto v = find_group_violation(w.data(), rows, k, p);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->row, 2);
  EXPECT_EQ(v->group, 3);
  EXPECT_EQ(v->nonzeros, 7);

  for (int c = 0; c < 8; ++c) w[2 * k + 3 * 8 + c] = 0.0f;
  const auto next = find_group_violation(w.data(), rows, k, p);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->row, 3);
  EXPECT_EQ(next->group, 0);
  EXPECT_EQ(next->nonzeros, 8);
  EXPECT_FALSE(find_group_violation(w.data(), rows, k, Pattern::infinite()));
}

TEST(Prune, ViolationCountsOnlyRealNonZeros) {
  const Pattern p = Pattern::parse("2:4");
  // -0.0 is zero; the partial group [1, 1, 1] of K = 7 holds 3 > 2.
  std::vector<float> w = {1, -0.0f, 1, 0, 1, 1, 1};
  const auto v = find_group_violation(w.data(), 1, 7, p);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->group, 1);
  EXPECT_EQ(v->nonzeros, 3);
  w[6] = -0.0f;
  EXPECT_FALSE(find_group_violation(w.data(), 1, 7, p));
}

}  // namespace
}  // namespace slidesparse
