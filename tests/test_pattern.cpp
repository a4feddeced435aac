#include <gtest/gtest.h>

#include <string>

#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse {
namespace {

TEST(Pattern, ParsesBothSpellingsOfEveryFiniteLength) {
  for (int length = 4; length <= 16; length += 2) {
    const std::string paper = std::to_string(length - 2) + ":" + std::to_string(length);
    const std::string zeros = "2_" + std::to_string(length);
    const Pattern a = Pattern::parse(paper);
    const Pattern b = Pattern::parse(zeros);
    EXPECT_EQ(a, b) << paper << " vs " << zeros;
    EXPECT_FALSE(a.is_infinite());
    EXPECT_EQ(a.length(), length);
    EXPECT_EQ(a.paper_name(), paper);
    EXPECT_EQ(a.zeros_name(), zeros);
    EXPECT_EQ(a.display_name(), paper + " (" + zeros + ")");
    EXPECT_EQ(Pattern::from_length(length), a);
  }
}

TEST(Pattern, ParsesTheInfinitePattern) {
  for (const char* text : {"2_inf", "inf", "dense"}) {
    const Pattern p = Pattern::parse(text);
    EXPECT_TRUE(p.is_infinite()) << text;
    EXPECT_EQ(p, Pattern::infinite());
    EXPECT_EQ(p.zeros_name(), "2_inf");
    EXPECT_EQ(p.paper_name(), "dense");
    EXPECT_THROW(p.length(), InvalidArgument);
  }
}

TEST(Pattern, RejectsWhatIsNotInTheFamily) {
  for (const char* text : {"3:8",   "2_5",  "0_4",  "8:8",  "2_18",  "",    "6:",    "abc",
                           "16:18", "0:2",  "2_2",  "2_0",  "4:6:8", ":8",  "_8",    "2_",
                           "2_8x",  "-2_8", " 6:8", "6:8 ", "2:inf", "3_8", "2_1000"}) {
    EXPECT_THROW(Pattern::parse(text), InvalidArgument) << "'" << text << "'";
  }
  for (int length : {-4, 0, 2, 3, 5, 18, 20}) {
    EXPECT_THROW(Pattern::from_length(length), InvalidArgument) << length;
  }
}

TEST(Pattern, ErrorMessageQuotesTheInput) {
  try {
    Pattern::parse("3:8");
    FAIL() << "3:8 was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'3:8'"), std::string::npos) << e.what();
  }
}

// The DESIGN.md §2 table: γ = 2(L-2)/L and the speedup bound L/(L-2), to its 3 decimals.
TEST(Pattern, GammaAndBoundFollowTheDesignTable) {
  struct Row {
    const char* name;
    double gamma;
    double bound;
  };
  const Row table[] = {{"2_4", 1.000, 2.00},  {"2_6", 1.333, 1.50},  {"2_8", 1.500, 1.33},
                       {"2_10", 1.600, 1.25}, {"2_12", 1.667, 1.20}, {"2_14", 1.714, 1.17},
                       {"2_16", 1.750, 1.14}, {"2_inf", 2.000, 1.00}};
  for (const Row& row : table) {
    const Pattern p = Pattern::parse(row.name);
    EXPECT_NEAR(p.gamma(), row.gamma, 0.0005) << row.name;
    EXPECT_NEAR(p.speedup_bound(), row.bound, 0.005) << row.name;
    if (!p.is_infinite()) {
      const int l = p.length();
      EXPECT_DOUBLE_EQ(p.gamma(), 2.0 * (l - 2) / l) << row.name;
      EXPECT_DOUBLE_EQ(p.speedup_bound(), static_cast<double>(l) / (l - 2)) << row.name;
      EXPECT_EQ(p.windows_per_group(), l / 2 - 1);
      EXPECT_EQ(p.slid_group_width(), 2 * l - 4);
    }
  }
}

TEST(Pattern, PaddedAndSlidWidths) {
  const Pattern p8 = Pattern::parse("6:8");
  EXPECT_EQ(p8.k_padded(0), 0);
  EXPECT_EQ(p8.k_padded(1), 8);
  EXPECT_EQ(p8.k_padded(8), 8);
  EXPECT_EQ(p8.k_padded(9), 16);
  EXPECT_EQ(p8.k_slide(8), 12);
  EXPECT_EQ(p8.k_slide(4096), 6144);
  EXPECT_EQ(p8.k_slide(4097), 6156);

  const Pattern p4 = Pattern::parse("2:4");
  EXPECT_EQ(p4.k_slide(4096), 4096);
  EXPECT_EQ(p4.k_slide(6), 8);

  const Pattern p6 = Pattern::parse("4:6");
  EXPECT_EQ(p6.k_padded(4096), 4098);
  EXPECT_EQ(p6.k_slide(4096), 4098 / 6 * 8);

  const Pattern inf = Pattern::infinite();
  EXPECT_EQ(inf.k_padded(7), 8);
  EXPECT_EQ(inf.k_slide(7), 16);
  EXPECT_EQ(inf.k_slide(4096), 8192);

  // γ·K_pad for every pattern; 64-bit K survives.
  const std::int64_t big = (std::int64_t{1} << 33) + 3;
  for (const Pattern& p : Pattern::all()) {
    for (std::int64_t k :
         {std::int64_t{1}, std::int64_t{13}, std::int64_t{4096}, std::int64_t{14336}, big}) {
      const std::int64_t pad = p.k_padded(k);
      const std::int64_t unit = p.is_infinite() ? 2 : p.length();
      EXPECT_EQ(pad % unit, 0);
      EXPECT_GE(pad, k);
      EXPECT_LT(pad - k, unit);
      EXPECT_DOUBLE_EQ(static_cast<double>(p.k_slide(k)), p.gamma() * static_cast<double>(pad))
          << p.zeros_name() << " K=" << k;
    }
  }
}

TEST(Pattern, AllListsTheFamilyInOrder) {
  const auto all = Pattern::all();
  ASSERT_EQ(all.size(), 8u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(all[static_cast<std::size_t>(i)].length(), 4 + 2 * i);
  EXPECT_TRUE(all.back().is_infinite());
}

// DESIGN.md §4: k(s) = g·L + 2w + j with g = s / 4(N-1), w = (s % 4(N-1)) / 4, j = s % 4.
TEST(Pattern, LiftSourceColumnFollowsTheFormula) {
  const Pattern p8 = Pattern::parse("6:8");
  const std::int64_t expected[12] = {0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7};
  for (std::int64_t s = 0; s < 12; ++s) {
    EXPECT_EQ(lift_source_column(s, p8, 8), expected[s]) << s;
    EXPECT_EQ(lift_source_column(s + 12, p8, 16), expected[s] + 8) << s;
  }
  // Padding: K = 5 in a group of 8.
  for (std::int64_t s = 0; s < 12; ++s)
    EXPECT_EQ(lift_source_column(s, p8, 5), expected[s] < 5 ? expected[s] : -1) << s;

  for (const Pattern& p : Pattern::all()) {
    if (p.is_infinite()) continue;
    const int l = p.length();
    const int width = 2 * l - 4;
    for (std::int64_t s = 0; s < 3 * width; ++s) {
      const std::int64_t g = s / width, w = (s % width) / 4, j = s % 4;
      EXPECT_EQ(lift_source_column(s, p, 3 * l), g * l + 2 * w + j);
    }
  }
  // 2_inf: window w at stride 2 reads x(2w) .. x(2w+3).
  const Pattern inf = Pattern::infinite();
  for (std::int64_t s = 0; s < 16; ++s) {
    const std::int64_t source = 2 * (s / 4) + s % 4;
    EXPECT_EQ(lift_source_column(s, inf, 7), source < 7 ? source : -1) << s;
  }
}

}  // namespace
}  // namespace slidesparse
