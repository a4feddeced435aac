#include "slidesparse/numeric.hpp"

#include <cmath>
#include <cstring>

namespace slidesparse {

std::uint16_t float_to_bf16(float x) {
  const std::uint32_t u = bits_of(x);
  if (std::isnan(x)) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  const std::uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>((u + rounding) >> 16);
}

float bf16_to_float(std::uint16_t bits) { return float_of(static_cast<std::uint32_t>(bits) << 16); }

std::uint16_t float_to_fp16(float x) {
  const std::uint32_t u = bits_of(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u);   // NaN
  if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to inf
  const int exponent = static_cast<int>(abs >> 23) - 127;
  if (exponent >= -14) {  // normal half
    const std::uint32_t mant = abs & 0x7FFFFFu;
    std::uint32_t half = (static_cast<std::uint32_t>(exponent + 15) << 10) | (mant >> 13);
    const std::uint32_t rest = mant & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into exponent
    return static_cast<std::uint16_t>(sign | half);
  }
  if (exponent < -25) return sign;  // below half the smallest subnormal
  // Subnormal half: value = mant_full * 2^(exponent-23), unit 2^-24.
  const std::uint32_t mant_full = (abs & 0x7FFFFFu) | 0x800000u;
  const int shift = -exponent - 14 + 13;  // 14..24
  std::uint32_t half = mant_full >> shift;
  const std::uint32_t rest = mant_full & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
  return static_cast<std::uint16_t>(sign | half);
}

float fp16_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1Fu;
  const std::uint32_t mant = bits & 0x3FFu;
  if (exponent == 0x1F) return float_of(sign | 0x7F800000u | (mant << 13));
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -magnitude : magnitude;
  }
  return float_of(sign | ((exponent + 112) << 23) | (mant << 13));
}

std::uint8_t float_to_e4m3(float x) {
  const std::uint32_t u = bits_of(x);
  const std::uint8_t sign = static_cast<std::uint8_t>((u >> 24) & 0x80u);
  if (std::isnan(x)) return static_cast<std::uint8_t>(sign | 0x7Fu);
  const float a = std::fabs(x);
  if (a >= kE4M3Max) return static_cast<std::uint8_t>(sign | 0x7Eu);  // saturate (inf too)
  // frexp(0) reports exponent 0, which the normal path below would misread as a binade.
  if (a == 0.0f) return sign;
  // Smallest normal is 2^-6; subnormals have unit 2^-9.
  int exponent = 0;
  std::frexp(a, &exponent);  // a = f * 2^exponent, f in [0.5, 1)
  int e = exponent - 1;      // a = 1.m * 2^e
  if (e < -6) e = -6;        // subnormal range shares the unit of 2^-6 * 2^-3
  const float unit = std::ldexp(1.0f, e - 3);
  const float steps = std::nearbyint(a / unit);  // exact: a/unit is a power-of-two scaling
  // steps in [0, 16]; 16 means rounding carried into the next binade.
  std::uint32_t code;
  if (e == -6 && steps < 8.0f) {
    code = static_cast<std::uint32_t>(steps);  // subnormal (or zero)
  } else {
    int biased = e + 7;
    std::uint32_t m = static_cast<std::uint32_t>(steps);
    if (m == 16) {
      m = 8;
      ++biased;
    }
    code = (static_cast<std::uint32_t>(biased) << 3) | (m - 8);
  }
  if (code > 0x7Eu) code = 0x7Eu;
  return static_cast<std::uint8_t>(sign | code);
}

float e4m3_to_float(std::uint8_t bits) {
  const bool negative = bits & 0x80u;
  const std::uint32_t exponent = (bits >> 3) & 0xFu;
  const std::uint32_t mant = bits & 0x7u;
  float magnitude;
  if (exponent == 0xF && mant == 0x7) {
    magnitude = std::nanf("");
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mant), -9);
  } else {
    magnitude = std::ldexp(static_cast<float>(8 + mant), static_cast<int>(exponent) - 7 - 3);
  }
  return negative ? -magnitude : magnitude;
}

}  // namespace slidesparse
