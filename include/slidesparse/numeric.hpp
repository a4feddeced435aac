// Host conversions between float and the 16- and 8-bit formats, bit-exact with
// the GPU's conversions: round-to-nearest-even everywhere, E4M3 saturating to ±448.
#pragma once

#include <cstdint>
#include <cstring>

namespace slidesparse {

// The IEEE bit pattern of a float, and back.
inline std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline float float_of(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// BF16 stored as its bit pattern.
std::uint16_t float_to_bf16(float x);  // RNE; NaN stays NaN
float bf16_to_float(std::uint16_t bits);

// IEEE half stored as its bit pattern.
std::uint16_t float_to_fp16(float x);  // RNE, subnormals kept, overflow to ±inf
float fp16_to_float(std::uint16_t bits);

// FP8 E4M3 (OCP "E4M3FN": no infinities, 0x7F/0xFF are NaN, max finite 448).
// RNE, finite values beyond ±448 saturate to ±448 (like CUDA's __NV_SATFINITE),
// ±inf saturates too, NaN becomes 0x7F / 0xFF.
std::uint8_t float_to_e4m3(float x);
float e4m3_to_float(std::uint8_t bits);

constexpr float kE4M3Max = 448.0f;
constexpr float kInt8Max = 127.0f;

}  // namespace slidesparse
