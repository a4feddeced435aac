#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "slidesparse/numeric.hpp"

namespace slidesparse {
namespace {

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Independent decoders, straight from the format definitions, in double.
double e4m3_reference(unsigned code) {
  const unsigned e = (code >> 3) & 0xF, m = code & 7;
  const double sign = (code & 0x80) ? -1.0 : 1.0;
  if (e == 15 && m == 7) return std::nan("");
  if (e == 0) return sign * (m / 8.0) * std::pow(2.0, -6);
  return sign * (1.0 + m / 8.0) * std::pow(2.0, static_cast<int>(e) - 7);
}

double fp16_reference(unsigned code) {
  const unsigned e = (code >> 10) & 0x1F, m = code & 0x3FF;
  const double sign = (code & 0x8000) ? -1.0 : 1.0;
  if (e == 31) return m ? std::nan("") : sign * HUGE_VAL;
  if (e == 0) return sign * (m / 1024.0) * std::pow(2.0, -14);
  return sign * (1.0 + m / 1024.0) * std::pow(2.0, static_cast<int>(e) - 15);
}

// Round-to-nearest-even of |x| over an ascending table of non-negative values whose
// index is the code; beyond the last entry the last code is taken.
unsigned nearest_code(double magnitude, const std::vector<double>& values) {
  const auto upper = std::upper_bound(values.begin(), values.end(), magnitude);
  if (upper == values.end()) return static_cast<unsigned>(values.size() - 1);
  const unsigned hi = static_cast<unsigned>(upper - values.begin());
  const unsigned lo = hi - 1;
  const double mid = (values[lo] + values[hi]) / 2;  // exact in double
  if (magnitude < mid) return lo;
  if (magnitude > mid) return hi;
  return (lo & 1) ? hi : lo;
}

// Random floats of every magnitude: random bit patterns, NaN excluded.
std::vector<float> random_floats(std::size_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<float> out;
  while (out.size() < count) {
    const float x = float_of(static_cast<std::uint32_t>(rng()));
    if (!std::isnan(x)) out.push_back(x);
  }
  return out;
}

// ---- E4M3 --------------------------------------------------------------------------

TEST(E4M3, EveryCodeDecodesAsTheFormatDefines) {
  for (unsigned code = 0; code < 256; ++code) {
    const float v = e4m3_to_float(static_cast<std::uint8_t>(code));
    const double expected = e4m3_reference(code);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(v)) << code;
    } else {
      EXPECT_EQ(static_cast<double>(v), expected) << code;
    }
  }
}

TEST(E4M3, EveryCodeRoundTrips) {
  for (unsigned code = 0; code < 256; ++code) {
    // The NaN codes 0x7F and 0xFF come back as themselves: NaN keeps its sign.
    EXPECT_EQ(float_to_e4m3(e4m3_to_float(static_cast<std::uint8_t>(code))), code) << code;
  }
}

TEST(E4M3, ZerosKeepTheirSign) {
  EXPECT_EQ(float_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
}

TEST(E4M3, SaturatesAtTheLargestFiniteValue) {
  EXPECT_EQ(float_to_e4m3(448.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(-448.0f), 0xFE);
  EXPECT_EQ(e4m3_to_float(float_to_e4m3(464.0f)), 448.0f);  // halfway to a non-existent 480
  EXPECT_EQ(float_to_e4m3(500.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(1e9f), 0x7E);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::max()), 0x7E);
  EXPECT_EQ(float_to_e4m3(kInf), 0x7E);
  EXPECT_EQ(float_to_e4m3(-kInf), 0xFE);
  EXPECT_EQ(e4m3_to_float(float_to_e4m3(-kInf)), -448.0f);
}

TEST(E4M3, NaNBecomesTheNaNCode) {
  EXPECT_EQ(float_to_e4m3(kNaN), 0x7F);
  EXPECT_EQ(float_to_e4m3(-kNaN), 0xFF);
  EXPECT_TRUE(std::isnan(e4m3_to_float(float_to_e4m3(kNaN))));
}

TEST(E4M3, Subnormals) {
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -9)), 0x01);   // smallest subnormal
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half of it: ties to even 0
  EXPECT_EQ(float_to_e4m3(-std::ldexp(1.0f, -10)), 0x80);
  EXPECT_EQ(float_to_e4m3(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
  EXPECT_EQ(float_to_e4m3(std::ldexp(3.0f, -10)), 0x02);   // 1.5 units: ties to even 2
  EXPECT_EQ(float_to_e4m3(std::ldexp(7.0f, -9)), 0x07);    // largest subnormal
  EXPECT_EQ(float_to_e4m3(std::ldexp(15.0f, -10)), 0x08);  // 7.5 units: up to 2^-6
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -6)), 0x08);    // smallest normal
  EXPECT_EQ(float_to_e4m3(1e-30f), 0x00);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST(E4M3, HalfwayBetweenNeighboursRoundsToEven) {
  for (unsigned code = 0; code < 0x7E; ++code) {
    const float lo = e4m3_to_float(static_cast<std::uint8_t>(code));
    const float hi = e4m3_to_float(static_cast<std::uint8_t>(code + 1));
    const float mid = (lo + hi) / 2;  // exact: one more bit than E4M3 holds
    const unsigned even = (code & 1) ? code + 1 : code;
    EXPECT_EQ(float_to_e4m3(mid), even) << "between codes " << code << " and " << code + 1;
    EXPECT_EQ(float_to_e4m3(-mid), even | 0x80) << code;
    EXPECT_EQ(float_to_e4m3(std::nextafter(mid, 0.0f)), code) << code;
    EXPECT_EQ(float_to_e4m3(std::nextafter(mid, kInf)), code + 1) << code;
  }
}

TEST(E4M3, MatchesBruteForceNearestOnRandomFloats) {
  std::vector<double> values;
  for (unsigned code = 0; code <= 0x7E; ++code) values.push_back(e4m3_reference(code));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> in_range(-500.0f, 500.0f);
  std::vector<float> xs = random_floats(200000, 1);
  for (int i = 0; i < 200000; ++i) xs.push_back(in_range(rng));
  for (int i = 0; i < 200000; ++i) xs.push_back(std::ldexp(in_range(rng), -12));
  for (const float x : xs) {
    const unsigned expected =
        nearest_code(std::fabs(static_cast<double>(x)), values) | (std::signbit(x) ? 0x80u : 0u);
    ASSERT_EQ(float_to_e4m3(x), expected) << x;
  }
}

// ---- FP16 --------------------------------------------------------------------------

TEST(FP16, EveryCodeDecodesAsTheFormatDefinesAndRoundTrips) {
  for (unsigned code = 0; code < 65536; ++code) {
    const auto bits = static_cast<std::uint16_t>(code);
    const float v = fp16_to_float(bits);
    const double expected = fp16_reference(code);
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(v)) << code;
      ASSERT_TRUE(std::isnan(fp16_to_float(float_to_fp16(v)))) << code;
      continue;
    }
    ASSERT_EQ(static_cast<double>(v), expected) << code;
    ASSERT_EQ(float_to_fp16(v), bits) << code;
  }
}

TEST(FP16, SpotChecks) {
  EXPECT_EQ(float_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(float_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie: to even
  EXPECT_EQ(float_to_fp16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);  // tie: to even
  EXPECT_EQ(float_to_fp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3C01);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_fp16(65519.0f), 0x7BFF);
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7C00);  // tie between 65504 and 2^16: overflows
  EXPECT_EQ(float_to_fp16(1e9f), 0x7C00);
  EXPECT_EQ(float_to_fp16(-kInf), 0xFC00);
  EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(kNaN))));
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(float_to_fp16(std::ldexp(1023.0f, -24)), 0x03FF);  // largest subnormal
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -24)), 0x0001);     // smallest subnormal
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0x0000);     // half of it: to even 0
  EXPECT_EQ(float_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(float_to_fp16(std::ldexp(3.0f, -25)), 0x0002);     // 1.5 units: to even 2
  EXPECT_EQ(float_to_fp16(std::ldexp(2047.0f, -25)), 0x0400);  // carries into the normals
  EXPECT_EQ(float_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(FP16, HalfwayBetweenNeighboursRoundsToEven) {
  for (unsigned code = 0; code < 0x7BFF; ++code) {
    const float lo = fp16_to_float(static_cast<std::uint16_t>(code));
    const float hi = fp16_to_float(static_cast<std::uint16_t>(code + 1));
    const float mid = (lo + hi) / 2;
    const unsigned even = (code & 1) ? code + 1 : code;
    ASSERT_EQ(float_to_fp16(mid), even) << code;
    ASSERT_EQ(float_to_fp16(-mid), even | 0x8000) << code;
  }
}

TEST(FP16, MatchesBruteForceNearestOnRandomFloats) {
  // Codes 0 .. 0x7C00 in order; infinity stands at 2^16 where rounding sees it.
  std::vector<double> values;
  for (unsigned code = 0; code < 0x7C00; ++code) values.push_back(fp16_reference(code));
  values.push_back(65536.0);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> in_range(-70000.0f, 70000.0f);
  std::vector<float> xs = random_floats(300000, 2);
  for (int i = 0; i < 100000; ++i) xs.push_back(in_range(rng));
  for (int i = 0; i < 100000; ++i) xs.push_back(std::ldexp(in_range(rng), -30));
  for (const float x : xs) {
    const unsigned expected =
        nearest_code(std::fabs(static_cast<double>(x)), values) | (std::signbit(x) ? 0x8000u : 0u);
    ASSERT_EQ(float_to_fp16(x), expected) << x;
  }
}

// ---- BF16 --------------------------------------------------------------------------

TEST(BF16, SpotChecks) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie: to even
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3F82);  // tie: to even
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // overflows to inf
  EXPECT_EQ(float_to_bf16(float_of(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(float_to_bf16(kInf), 0x7F80);
  EXPECT_EQ(float_to_bf16(-kInf), 0xFF80);
  EXPECT_EQ(float_to_bf16(std::ldexp(1.0f, -133)), 0x0001);  // smallest bf16 subnormal
  EXPECT_EQ(float_to_bf16(std::ldexp(1.0f, -134)), 0x0000);  // half of it: to even 0
  EXPECT_EQ(float_to_bf16(std::ldexp(3.0f, -134)), 0x0002);  // tie: to even
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);
  const std::uint16_t nan = float_to_bf16(kNaN);
  EXPECT_TRUE(std::isnan(bf16_to_float(nan)));
  EXPECT_TRUE(nan & 0x0040);  // quiet
  // A signalling NaN whose payload lives only in the low bits must stay a NaN.
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(float_of(0x7F800001u)))));
  for (unsigned code = 0; code < 65536; ++code) {
    const float v = bf16_to_float(static_cast<std::uint16_t>(code));
    ASSERT_EQ(bits_of(v), code << 16);
    if (!std::isnan(v)) {
      ASSERT_EQ(float_to_bf16(v), code);
    }
  }
}

TEST(BF16, MatchesNearestEvenOnRandomFloats) {
  for (const float x : random_floats(1000000, 4)) {
    const std::uint32_t u = bits_of(x);
    const std::uint32_t lo = u >> 16;  // truncation toward zero; lo + 1 is the next value out
    const double vlo = std::fabs(static_cast<double>(float_of(lo << 16)));
    const double vhi = (lo & 0x7FFFu) == 0x7F7Fu
                           ? std::ldexp(1.0, 128)
                           : std::fabs(static_cast<double>(float_of((lo + 1) << 16)));
    const double a = std::fabs(static_cast<double>(x));
    std::uint32_t expected;
    if ((lo & 0x7FFFu) == 0x7F80u) {
      expected = lo;  // infinity
    } else {
      const double mid = (vlo + vhi) / 2;
      expected = a < mid ? lo : a > mid ? lo + 1 : ((lo & 1) ? lo + 1 : lo);
    }
    ASSERT_EQ(float_to_bf16(x), expected) << x;
  }
}

}  // namespace
}  // namespace slidesparse
