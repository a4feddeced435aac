// The packer's fast kernels against the references they replace, bit for bit.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack_kernels.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {
namespace {

// Every float whose top 20 bits take each value, with low bits that probe rounding: exact,
// just above a tie, at a tie, just above, and all ones. Covers every rounding position of
// E4M3, normal and subnormal.
TEST(PackKernels, E4M3MatchesTheReference) {
  std::int64_t checked = 0;
  for (std::uint32_t high = 0; high < (1u << 20); ++high) {
    if (((high >> 11) & 0xFFu) == 0xFFu) continue;  // Inf / NaN: the packer never sees them
    for (std::uint32_t low : {0x000u, 0x001u, 0x7FFu, 0x800u, 0x801u, 0xFFFu}) {
      const float x = float_of(high << 12 | low);
      ASSERT_EQ(pack_kernels::float_to_e4m3(x), float_to_e4m3(x)) << std::hexfloat << x;
      ++checked;
    }
  }
  EXPECT_GT(checked, 6'000'000);
}

// Values from a small set, so that groups hold many equal magnitudes (the tie rule).
std::vector<float> tie_heavy(std::int64_t count, std::mt19937& rng) {
  const float choices[] = {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, 3.0f};
  std::uniform_int_distribution<int> pick(0, 8);
  std::vector<float> out(static_cast<std::size_t>(count));
  for (float& v : out) v = choices[pick(rng)];
  return out;
}

TEST(PackKernels, PruneMatchesTheReferenceWithTiesAndEveryTail) {
  std::mt19937 rng(11);
  for (const Pattern& pattern : Pattern::all()) {
    const int length = pattern.is_infinite() ? 2 : pattern.length();
    for (std::int64_t k = 5 * length; k < 6 * length; ++k) {  // every tail size
      SCOPED_TRACE(pattern.display_name() + " k=" + std::to_string(k));
      const std::int64_t rows = 7;
      auto expected = tie_heavy(rows * k, rng);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (std::int64_t i = 0; i < rows * k; i += 3) expected[i] = normal(rng);
      auto fast = expected;
      prune_magnitude(expected.data(), rows, k, pattern);
      pack_kernels::prune_magnitude(fast.data(), rows, k, pattern);
      ASSERT_EQ(std::memcmp(fast.data(), expected.data(), fast.size() * sizeof(float)), 0);
    }
  }
}

TEST(PackKernels, QuantizeMatchesTheReference) {
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::int64_t cols = 300;
  std::vector<float> x;
  // Random rows; a row whose values sit on the INT8 rounding ties (absmax 127: scale 1); a
  // row spanning FP8's subnormals (absmax 448: scale 1); a zero row; a single tiny value.
  for (int r = 0; r < 5; ++r)
    for (std::int64_t c = 0; c < cols; ++c) x.push_back(normal(rng) * (r + 1));
  for (std::int64_t c = 0; c < cols; ++c)
    x.push_back(c == 0 ? 127.0f : static_cast<float>(c % 255) - 127.5f);
  for (std::int64_t c = 0; c < cols; ++c)
    x.push_back(c == 0 ? 448.0f
                       : std::ldexp(1.0f + c % 16 / 16.0f, -12 + static_cast<int>(c % 10)));
  for (std::int64_t c = 0; c < cols; ++c) x.push_back(0.0f);
  for (std::int64_t c = 0; c < cols; ++c) x.push_back(c == 7 ? -1e-30f : 0.0f);
  const std::int64_t rows = static_cast<std::int64_t>(x.size()) / cols;
  for (Precision p : {Precision::INT8, Precision::FP8, Precision::BF16, Precision::FP16}) {
    SCOPED_TRACE(precision_name(p));
    const std::size_t bytes = x.size() * dtype_size(precision_storage(p));
    std::vector<std::uint8_t> expected(bytes), fast(bytes);
    std::vector<float> expected_scales(rows), fast_scales(rows);
    quantize_rows(x.data(), rows, cols, p, expected.data(), expected_scales.data());
    pack_kernels::quantize_rows(x.data(), rows, cols, p, fast.data(), fast_scales.data());
    EXPECT_EQ(fast, expected);
    EXPECT_EQ(fast_scales, expected_scales);
  }
}

TEST(PackKernels, SlideMatchesTheReference) {
  std::mt19937 rng(13);
  for (const Pattern& pattern : Pattern::all()) {
    const int length = pattern.is_infinite() ? 2 : pattern.length();
    for (std::int64_t k :
         {std::int64_t{4} * length, std::int64_t{4} * length + 1, std::int64_t{5} * length - 1}) {
      for (DType storage : {DType::I8, DType::F8_E4M3, DType::BF16, DType::F16}) {
        SCOPED_TRACE(pattern.display_name() + " k=" + std::to_string(k) + " " +
                     dtype_name(storage));
        const std::int64_t rows = 9;
        // Pruned values with negative zeros among them, stored as `storage`.
        auto w = tie_heavy(rows * k, rng);
        prune_magnitude(w.data(), rows, k, pattern);
        const std::size_t element = dtype_size(storage);
        std::vector<std::uint8_t> in(w.size() * element);
        for (std::size_t i = 0; i < w.size(); ++i)
          float_to_storage(w[i], in.data(), static_cast<std::int64_t>(i), storage);
        const std::size_t out_bytes = static_cast<std::size_t>(rows * pattern.k_slide(k)) * element;
        std::vector<std::uint8_t> expected(out_bytes), fast(out_bytes, 0xAB);
        slide_rows(storage, in.data(), rows, k, pattern, expected.data());
        pack_kernels::slide_rows(storage, in.data(), rows, k, pattern, fast.data());
        ASSERT_EQ(fast, expected);
      }
    }
  }
}

TEST(PackKernels, SlideRejectsAFullGroupNamingRowAndGroup) {
  const Pattern pattern = Pattern::parse("6:8");
  std::vector<std::int8_t> w(3 * 16, 1);  // every group holds 8 non-zeros
  std::vector<std::int8_t> out(3 * 24);
  try {
    pack_kernels::slide_rows(DType::I8, w.data(), 3, 16, pattern, out.data());
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("row 0, group 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace slidesparse
