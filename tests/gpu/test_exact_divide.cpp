// The quantization kernels divide by the row scale through exact_divide (no division
// per element). This CPU test runs the very same code against IEEE division over a
// sample of the kernels' whole input domain: every BF16/F16 x with |x| <= absmax, for
// absmax values spread over all finite 16-bit values (the full sweep, every absmax,
// was run once when the kernel was written: 4.1e9 pairs, no difference).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "slidesparse/cuda/exact_divide.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {
namespace {

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

int int8_code(float q) { return static_cast<int>(std::clamp(std::rint(q), -127.0f, 127.0f)); }

struct Domain {
  const char* name;
  float (*to_float)(std::uint16_t);
};

void check_domain(const Domain& domain, float quant_max, int absmax_stride) {
  std::vector<float> xs;
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const float v = domain.to_float(static_cast<std::uint16_t>(b));
    if (std::isfinite(v)) xs.push_back(v);
  }
  std::vector<std::uint16_t> absmax_codes;
  for (std::uint32_t b = 0; b < 0x8000u; b += absmax_stride)
    absmax_codes.push_back(static_cast<std::uint16_t>(b));
  // Ends of the range: smallest values (clamped scale), largest finite values.
  for (std::uint16_t b : {1, 2, 3, 0x7B00, 0x7BFF, 0x7F7F, 0x7F7E}) absmax_codes.push_back(b);

  std::int64_t checked = 0;
  int failures = 0;
  for (const std::uint16_t code : absmax_codes) {
    const float absmax = domain.to_float(code);
    if (!std::isfinite(absmax)) continue;
    const float scale = std::fmax(absmax / quant_max, kMinQuantScale);
    const ExactDivisor divisor = make_exact_divisor(scale);
    for (const float x : xs) {
      if (std::fabs(x) > absmax) continue;
      ++checked;
      const float expected = x / scale;
      const float got = exact_divide(x, divisor);
      const bool same_codes =
          int8_code(got) == int8_code(expected) && float_to_e4m3(got) == float_to_e4m3(expected);
      const bool exact_where_it_matters =
          std::fabs(expected) < 0x1p-20f || bits(got) == bits(expected);
      if ((!same_codes || !exact_where_it_matters || std::signbit(got) != std::signbit(expected)) &&
          ++failures <= 5)
        ADD_FAILURE() << domain.name << " x=" << std::hexfloat << x << " scale=" << scale
                      << " x/scale=" << expected << " exact_divide=" << got << std::defaultfloat;
    }
  }
  EXPECT_EQ(failures, 0) << "over " << checked << " pairs";
  EXPECT_GT(checked, 1000000);
}

const Domain kBf16{"BF16", bf16_to_float};
const Domain kF16{"F16", fp16_to_float};

TEST(ExactDivide, MatchesIeeeDivisionForInt8ScalesOfBf16) { check_domain(kBf16, kInt8Max, 97); }
TEST(ExactDivide, MatchesIeeeDivisionForFp8ScalesOfBf16) { check_domain(kBf16, kE4M3Max, 97); }
TEST(ExactDivide, MatchesIeeeDivisionForInt8ScalesOfF16) { check_domain(kF16, kInt8Max, 89); }
TEST(ExactDivide, MatchesIeeeDivisionForFp8ScalesOfF16) { check_domain(kF16, kE4M3Max, 89); }

TEST(ExactDivide, KeepsTheSignOfZero) {
  const ExactDivisor divisor = make_exact_divisor(0.37f);
  EXPECT_TRUE(std::signbit(exact_divide(-0.0f, divisor)));
  EXPECT_FALSE(std::signbit(exact_divide(0.0f, divisor)));
}

}  // namespace
}  // namespace slidesparse
