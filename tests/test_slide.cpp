#include <gtest/gtest.h>

#include <algorithm>
#include <bitset>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {
namespace {

using Bytes = std::vector<std::uint8_t>;

const DType kSlidableTypes[] = {DType::I8,   DType::U8,  DType::F8_E4M3,
                                DType::BF16, DType::F16, DType::F32};

// Raw elements as unsigned integers of their width.
std::uint32_t get(const Bytes& b, std::int64_t i, DType t) {
  std::uint32_t v = 0;
  std::memcpy(&v, b.data() + i * static_cast<std::int64_t>(dtype_size(t)), dtype_size(t));
  return v;
}
void put(Bytes& b, std::int64_t i, DType t, std::uint32_t v) {
  std::memcpy(b.data() + i * static_cast<std::int64_t>(dtype_size(t)), &v, dtype_size(t));
}

// The bits that make a value non-zero: everything but the sign of the float formats.
std::uint32_t magnitude_bits(DType t) {
  switch (t) {
    case DType::F8_E4M3:
      return 0x7Fu;
    case DType::BF16:
    case DType::F16:
      return 0x7FFFu;
    case DType::F32:
      return 0x7FFFFFFFu;
    default:
      return 0xFFu;
  }
}
bool is_zero(std::uint32_t v, DType t) { return (v & magnitude_bits(t)) == 0; }
std::uint32_t sign_bit(DType t) {
  return t == DType::I8 || t == DType::U8 ? 0u : (magnitude_bits(t) + 1) & ~0u;
}

Bytes zeros(DType t, std::int64_t count) {
  return Bytes(static_cast<std::size_t>(count) * dtype_size(t), 0);
}

// Zeros written as all-zero bits: what unslide(slide(x)) gives back.
Bytes canonical(const Bytes& x, DType t, std::int64_t count) {
  Bytes out = x;
  for (std::int64_t i = 0; i < count; ++i)
    if (is_zero(get(x, i, t), t)) put(out, i, t, 0);
  return out;
}

// A random [rows, k] matrix that satisfies p: in every group a random number of
// non-zeros (0 .. L-2 of its real positions) at random places, random other bits
// (NaN and inf patterns included: sliding moves bits). Some zeros carry a sign bit;
// every fifth row is all zeros.
Bytes random_compliant(DType t, std::int64_t rows, std::int64_t k, const Pattern& p,
                       std::mt19937& rng) {
  Bytes x = zeros(t, rows * k);
  const std::uint32_t all_bits = magnitude_bits(t) | sign_bit(t);
  const auto random_nonzero = [&] {
    std::uint32_t v = static_cast<std::uint32_t>(rng()) & all_bits;
    return is_zero(v, t) ? v | 1u : v;
  };
  const auto random_zero = [&] { return (rng() & 1) ? sign_bit(t) : 0u; };
  const std::int64_t group = p.is_infinite() ? k : p.length();
  for (std::int64_t r = 0; r < rows; ++r) {
    if (r % 5 == 4) continue;
    for (std::int64_t start = 0; start < k; start += std::max<std::int64_t>(group, 1)) {
      const int size = static_cast<int>(std::min(group, k - start));
      const int room = p.is_infinite() ? size : std::min(size, p.length() - 2);
      const int nonzeros = static_cast<int>(rng() % static_cast<unsigned>(room + 1));
      std::vector<int> order(static_cast<std::size_t>(size));
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      for (int i = 0; i < size; ++i)
        put(x, r * k + start + order[static_cast<std::size_t>(i)], t,
            i < nonzeros ? random_nonzero() : random_zero());
    }
  }
  return x;
}

// Everything a slid matrix must satisfy against its source:
// 2:4 in every window; each non-zero slot holds x at lift column k(s), bit for bit;
// as many non-zero slots as non-zeros in x; unslide gives x back (zeros canonical).
void expect_valid_slide(DType t, const Bytes& x, std::int64_t rows, std::int64_t k,
                        const Pattern& p, const Bytes& slid) {
  const std::int64_t k_slide = p.k_slide(k);
  const std::string what =
      std::string(dtype_name(t)) + " " + p.zeros_name() + " K=" + std::to_string(k);
  const auto violation = find_2to4_violation(t, slid.data(), rows, k_slide);
  ASSERT_FALSE(violation) << what << " row " << violation->row << " window " << violation->window;
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t slots = 0, nonzeros = 0;
    for (std::int64_t s = 0; s < k_slide; ++s) {
      const std::uint32_t v = get(slid, r * k_slide + s, t);
      if (is_zero(v, t)) {
        ASSERT_EQ(v, 0u) << what << " row " << r << " slot " << s << ": zeros are all-zero bits";
        continue;
      }
      ++slots;
      const std::int64_t col = lift_source_column(s, p, k);
      ASSERT_GE(col, 0) << what << " row " << r << " slot " << s;
      ASSERT_EQ(v, get(x, r * k + col, t)) << what << " row " << r << " slot " << s;
    }
    for (std::int64_t c = 0; c < k; ++c) nonzeros += !is_zero(get(x, r * k + c, t), t);
    ASSERT_EQ(slots, nonzeros) << what << " row " << r;
  }
  Bytes back = zeros(t, rows * k);
  unslide_rows(t, slid.data(), rows, k, p, back.data());
  ASSERT_EQ(back, canonical(x, t, rows * k)) << what;
}

// ---- the greedy ----------------------------------------------------------------------

// The proof of DESIGN.md §3 by exhaustion: for every L of the family and every mask of
// a group, the greedy places all non-zeros, two per window at most, each in a window
// that covers it, exactly when the mask has at most L-2 non-zeros (more cannot fit:
// L/2-1 windows hold L-2). slide_rows then lays the group out as the greedy says.
TEST(Slide, GreedySucceedsOnEveryMaskWithAtMostLMinus2NonZeros) {
  for (int l = 4; l <= 16; l += 2) {
    const Pattern p = Pattern::from_length(l);
    const int windows = l / 2 - 1;
    std::vector<std::uint32_t> fitting;
    for (std::uint32_t mask = 0; mask < (1u << l); ++mask) {
      std::vector<bool> nonzero(static_cast<std::size_t>(l));
      for (int pos = 0; pos < l; ++pos) nonzero[static_cast<std::size_t>(pos)] = (mask >> pos) & 1;
      const int count = static_cast<int>(std::bitset<32>(mask).count());
      if (count > l - 2) {
        ASSERT_THROW(assign_windows(nonzero, l), InvalidArgument) << "L=" << l << " mask " << mask;
        continue;
      }
      const std::vector<int> window_of = assign_windows(nonzero, l);
      ASSERT_EQ(window_of.size(), static_cast<std::size_t>(l));
      std::vector<int> fill(static_cast<std::size_t>(windows), 0);
      for (int pos = 0; pos < l; ++pos) {
        const int w = window_of[static_cast<std::size_t>(pos)];
        if (!nonzero[static_cast<std::size_t>(pos)]) {
          ASSERT_EQ(w, -1);
          continue;
        }
        ASSERT_TRUE(w == pos / 2 - 1 || w == pos / 2) << "L=" << l << " mask " << mask;
        ASSERT_TRUE(w >= 0 && w < windows) << "L=" << l << " mask " << mask;
        ASSERT_LE(++fill[static_cast<std::size_t>(w)], 2) << "L=" << l << " mask " << mask;
      }
      fitting.push_back(mask);
    }

    // All fitting masks as the rows of one I8 matrix, value pos+1 at each non-zero.
    const std::int64_t rows = static_cast<std::int64_t>(fitting.size());
    Bytes x = zeros(DType::I8, rows * l);
    Bytes expected = zeros(DType::I8, rows * p.k_slide(l));
    for (std::int64_t r = 0; r < rows; ++r) {
      std::vector<bool> nonzero(static_cast<std::size_t>(l));
      for (int pos = 0; pos < l; ++pos) {
        nonzero[static_cast<std::size_t>(pos)] = (fitting[static_cast<std::size_t>(r)] >> pos) & 1;
        if (nonzero[static_cast<std::size_t>(pos)]) put(x, r * l + pos, DType::I8, pos + 1u);
      }
      const std::vector<int> window_of = assign_windows(nonzero, l);
      for (int pos = 0; pos < l; ++pos)
        if (window_of[static_cast<std::size_t>(pos)] >= 0)
          put(expected,
              r * p.k_slide(l) + 4 * window_of[static_cast<std::size_t>(pos)] +
                  (pos - 2 * window_of[static_cast<std::size_t>(pos)]),
              DType::I8, pos + 1u);
    }
    Bytes slid = zeros(DType::I8, rows * p.k_slide(l));
    slide_rows(DType::I8, x.data(), rows, l, p, slid.data());
    ASSERT_EQ(slid, expected) << "L=" << l;
    expect_valid_slide(DType::I8, x, rows, l, p, slid);
  }
}

TEST(Slide, AssignWindowsRejectsBadArguments) {
  EXPECT_THROW(assign_windows(std::vector<bool>(8, false), 6), InvalidArgument);
  EXPECT_THROW(assign_windows(std::vector<bool>(5, false), 5), InvalidArgument);
  EXPECT_THROW(assign_windows(std::vector<bool>(18, false), 18), InvalidArgument);
  EXPECT_THROW(assign_windows(std::vector<bool>(2, false), 2), InvalidArgument);
}

// ---- the layout ----------------------------------------------------------------------

TEST(Slide, DesignExample) {
  // [a b 0 c d 0 e f] -> [a b 0 0 | 0 c d 0 | 0 0 e f]
  const std::vector<int> window_of =
      assign_windows({true, true, false, true, true, false, true, true}, 8);
  EXPECT_EQ(window_of, (std::vector<int>{0, 0, -1, 1, 1, -1, 2, 2}));
  const std::int8_t x[8] = {1, 2, 0, 3, 4, 0, 5, 6};
  std::int8_t slid[12];
  std::memset(slid, 0x55, sizeof slid);
  slide_rows(DType::I8, x, 1, 8, Pattern::parse("6:8"), slid);
  const std::int8_t expected[12] = {1, 2, 0, 0, 0, 3, 4, 0, 0, 0, 5, 6};
  EXPECT_EQ(std::memcmp(slid, expected, sizeof slid), 0);
  std::int8_t back[8];
  unslide_rows(DType::I8, slid, 1, 8, Pattern::parse("6:8"), back);
  EXPECT_EQ(std::memcmp(back, x, sizeof back), 0);
}

TEST(Slide, InfiniteTakesTwoValuesPerWindow) {
  const std::uint16_t x[7] = {1, 0, 3, 4, 0, 0, 7};  // K odd: padded to 8
  std::uint16_t slid[16];
  std::memset(slid, 0x55, sizeof slid);
  slide_rows(DType::BF16, x, 1, 7, Pattern::infinite(), slid);
  const std::uint16_t expected[16] = {1, 0, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0};
  EXPECT_EQ(std::memcmp(slid, expected, sizeof slid), 0);
}

TEST(Slide, NativeTwoFourIsTheIdentityOnCompliantRows) {
  const std::uint8_t x[10] = {0x38, 0, 0x40, 0, 0, 0xB8, 0, 0x30, 0x44, 0x80};
  std::uint8_t slid[12];
  slide_rows(DType::F8_E4M3, x, 1, 10, Pattern::parse("2:4"), slid);
  const std::uint8_t expected[12] = {0x38, 0, 0x40, 0, 0, 0xB8, 0, 0x30, 0x44, 0, 0, 0};
  EXPECT_EQ(std::memcmp(slid, expected, sizeof slid), 0);  // F8 0x80 is -0: written as 0
}

TEST(Slide, RandomMatricesOfEveryPatternAndType) {
  std::mt19937 rng(1234);
  for (const Pattern& p : Pattern::all()) {
    const std::int64_t unit = p.is_infinite() ? 2 : p.length();
    for (DType t : kSlidableTypes) {
      for (std::int64_t k : {std::int64_t{1}, std::int64_t{2}, std::int64_t{3}, unit - 1, unit,
                             unit + 1, 5 * unit, 5 * unit + unit / 2 + 1, std::int64_t{4099}}) {
        const std::int64_t rows = 11;
        const Bytes x = random_compliant(t, rows, k, p, rng);
        Bytes slid = zeros(t, rows * p.k_slide(k));
        std::fill(slid.begin(), slid.end(), 0xA5);  // every slot must be written
        slide_rows(t, x.data(), rows, k, p, slid.data());
        expect_valid_slide(t, x, rows, k, p, slid);
      }
    }
  }
}

TEST(Slide, EmptyShapes) {
  const Pattern p = Pattern::parse("6:8");
  std::uint8_t dummy = 0;
  EXPECT_NO_THROW(slide_rows(DType::I8, &dummy, 0, 16, p, &dummy));
  EXPECT_NO_THROW(slide_rows(DType::I8, &dummy, 3, 0, p, &dummy));
  EXPECT_NO_THROW(unslide_rows(DType::I8, &dummy, 3, 0, p, &dummy));
  EXPECT_THROW(slide_rows(DType::I8, &dummy, -1, 16, p, &dummy), InvalidArgument);
}

// ---- errors --------------------------------------------------------------------------

TEST(Slide, TooManyNonZerosThrowsNamingRowAndGroup) {
  for (const Pattern& p : Pattern::all()) {
    if (p.is_infinite()) continue;
    const int l = p.length();
    const std::int64_t rows = 4, k = 3 * l;
    for (DType t : kSlidableTypes) {
      Bytes x = zeros(t, rows * k);
      for (int pos = 0; pos < l - 1; ++pos) put(x, 2 * k + l + pos, t, 0x31);  // row 2, group 1
      Bytes slid = zeros(t, rows * p.k_slide(k));
      try {
        slide_rows(t, x.data(), rows, k, p, slid.data());
        FAIL() << p.zeros_name() << " accepted a group of " << l - 1 << " non-zeros";
      } catch (const InvalidArgument& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("row 2"), std::string::npos) << message;
        EXPECT_NE(message.find("group 1"), std::string::npos) << message;
        EXPECT_NE(message.find(std::to_string(l - 1) + " non-zeros"), std::string::npos) << message;
      }
    }
  }
}

TEST(Slide, UnsupportedTypesThrow) {
  std::int32_t x[8] = {};
  std::int32_t out[12] = {};
  EXPECT_THROW(slide_rows(DType::I32, x, 1, 8, Pattern::parse("6:8"), out), InvalidArgument);
  EXPECT_THROW(unslide_rows(DType::I64, x, 1, 4, Pattern::parse("2:4"), out), InvalidArgument);
  EXPECT_THROW(find_2to4_violation(DType::I32, x, 1, 8), InvalidArgument);
}

TEST(Slide, UnslideRejectsWhatSlideCannotProduce) {
  const Pattern p = Pattern::parse("6:8");
  std::int8_t slid[12] = {};
  std::int8_t out[8];
  slid[2] = 1;  // window 0 offset 2: column 2
  slid[4] = 2;  // window 1 offset 0: column 2 again
  EXPECT_THROW(unslide_rows(DType::I8, slid, 1, 8, p, out), InvalidArgument);

  std::int8_t padded[12] = {};
  padded[11] = 1;  // column 7, beyond K = 6
  EXPECT_THROW(unslide_rows(DType::I8, padded, 1, 6, p, out), InvalidArgument);
  padded[11] = 0;
  padded[9] = 3;  // column 5: fine
  unslide_rows(DType::I8, padded, 1, 6, p, out);
  EXPECT_EQ(out[5], 3);

  std::int8_t inf[8] = {1, 2, 3, 0, 4, 0, 0, 0};  // slot 2 (column 2) and slot 4 (column 2)
  EXPECT_THROW(unslide_rows(DType::I8, inf, 1, 4, Pattern::infinite(), out), InvalidArgument);
}

TEST(Slide, Find2to4ViolationFindsPlantedWindows) {
  for (DType t : kSlidableTypes) {
    const std::int64_t rows = 5, cols = 24;
    Bytes x = zeros(t, rows * cols);
    // Two non-zeros and a signed zero per window everywhere: still 2:4.
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t w = 0; w < cols / 4; ++w) {
        put(x, r * cols + 4 * w, t, 0x11);
        put(x, r * cols + 4 * w + 3, t, 0x22);
        put(x, r * cols + 4 * w + 1, t, sign_bit(t));
      }
    EXPECT_FALSE(find_2to4_violation(t, x.data(), rows, cols)) << dtype_name(t);
    put(x, 3 * cols + 4 * 5 + 2, t, 0x33);  // row 3, window 5: three
    put(x, 4 * cols + 4 * 0 + 1, t, 0x33);  // later in row-major order
    put(x, 4 * cols + 4 * 0 + 2, t, 0x33);  // row 4, window 0: four
    auto v = find_2to4_violation(t, x.data(), rows, cols);
    ASSERT_TRUE(v) << dtype_name(t);
    EXPECT_EQ(v->row, 3);
    EXPECT_EQ(v->window, 5);
    EXPECT_EQ(v->nonzeros, 3);
    put(x, 3 * cols + 4 * 5 + 2, t, 0);
    v = find_2to4_violation(t, x.data(), rows, cols);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->row, 4);
    EXPECT_EQ(v->window, 0);
    EXPECT_EQ(v->nonzeros, 4);
  }
  std::uint8_t x[6] = {};
  EXPECT_THROW(find_2to4_violation(DType::I8, x, 1, 6), InvalidArgument);
}

}  // namespace
}  // namespace slidesparse
