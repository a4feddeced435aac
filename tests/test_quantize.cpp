#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {
namespace {

TEST(Quantize, ScaleFormulas) {
  EXPECT_EQ(quant_scale(254.0f, Precision::INT8), 2.0f);
  EXPECT_EQ(quant_scale(896.0f, Precision::FP8), 2.0f);
  EXPECT_EQ(quant_scale(1.0f, Precision::INT8), 1.0f / 127.0f);
  EXPECT_EQ(quant_scale(1.0f, Precision::FP8), 1.0f / 448.0f);
  for (Precision p : {Precision::INT8, Precision::FP8}) {
    EXPECT_EQ(quant_scale(0.0f, p), kMinQuantScale);
    EXPECT_EQ(quant_scale(1e-20f, p), kMinQuantScale);
  }
  for (Precision p : {Precision::BF16, Precision::FP16}) {
    EXPECT_EQ(quant_scale(0.0f, p), 1.0f);
    EXPECT_EQ(quant_scale(1000.0f, p), 1.0f);
  }
}

TEST(Quantize, Int8RoundsHalfToEven) {
  EXPECT_EQ(quantize_int8(2.5f, 1.0f), 2);
  EXPECT_EQ(quantize_int8(3.5f, 1.0f), 4);
  EXPECT_EQ(quantize_int8(-2.5f, 1.0f), -2);
  EXPECT_EQ(quantize_int8(0.5f, 1.0f), 0);
  EXPECT_EQ(quantize_int8(-0.5f, 1.0f), 0);
  EXPECT_EQ(quantize_int8(1.5f, 1.0f), 2);
  EXPECT_EQ(quantize_int8(5.0f, 2.0f), 2);  // 2.5 after the division
  EXPECT_EQ(quantize_int8(2.51f, 1.0f), 3);
  // The float division, not a multiplication by the reciprocal: 0.21f / 0.14f is
  // exactly 1.5 (-> 2) while 0.21f * (1 / 0.14f) = 1.4999999 (-> 1).
  EXPECT_EQ(quantize_int8(0.21f, 0.14f), 2);
  EXPECT_EQ(quantize_int8(1.0f, 0.1f), 10);
}

TEST(Quantize, Int8ClampsToSymmetricRange) {
  EXPECT_EQ(quantize_int8(127.0f, 1.0f), 127);
  EXPECT_EQ(quantize_int8(127.4f, 1.0f), 127);
  EXPECT_EQ(quantize_int8(200.0f, 1.0f), 127);
  EXPECT_EQ(quantize_int8(-200.0f, 1.0f), -127);  // never -128
  EXPECT_EQ(quantize_int8(-128.0f, 1.0f), -127);
  EXPECT_EQ(quantize_int8(1e30f, kMinQuantScale), 127);  // x / scale overflows to inf
  EXPECT_EQ(quantize_int8(-1e30f, kMinQuantScale), -127);
  EXPECT_EQ(quantize_int8(-0.0f, 1.0f), 0);
  EXPECT_EQ(quantize_int8(std::numeric_limits<float>::quiet_NaN(), 1.0f), 0);
}

TEST(Quantize, Int8StaysWithinHalfAStep) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> value(-300.0f, 300.0f);
  std::uniform_real_distribution<float> scale(0.01f, 3.0f);
  for (int i = 0; i < 100000; ++i) {
    const float x = value(rng), s = scale(rng);
    const float ratio = x / s;
    const int q = quantize_int8(x, s);
    if (std::fabs(ratio) <= 126.5f) {
      ASSERT_LE(std::fabs(ratio - static_cast<float>(q)), 0.5f) << x << " / " << s;
    } else {
      ASSERT_EQ(q, ratio > 0 ? 127 : -127) << x << " / " << s;
    }
  }
}

TEST(Quantize, Fp8DividesThenRoundsSaturating) {
  EXPECT_EQ(quantize_fp8(896.0f, 2.0f), 0x7E);
  EXPECT_EQ(quantize_fp8(1000.0f, 1.0f), 0x7E);
  EXPECT_EQ(quantize_fp8(-1000.0f, 1.0f), 0xFE);
  EXPECT_EQ(quantize_fp8(-3.0f, 3.0f), 0xB8);  // -1
  EXPECT_EQ(quantize_fp8(1.5f, 3.0f), 0x30);   // 0.5
  EXPECT_EQ(quantize_fp8(0.0f, 1.0f), 0x00);
  EXPECT_EQ(quantize_fp8(-0.0f, 1.0f), 0x80);  // negative zero: still the value zero
  EXPECT_EQ(quantize_fp8(1.0f, kMinQuantScale), 0x7E);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> value(-1000.0f, 1000.0f);
  for (int i = 0; i < 10000; ++i) {
    const float x = value(rng);
    ASSERT_EQ(quantize_fp8(x, 0.37f), float_to_e4m3(x / 0.37f)) << x;
  }
}

TEST(Quantize, EpilogueIsOneFusedMultiplyAdd) {
  EXPECT_EQ(dequantize_output(3.0f, 0.5f, 0.25f, 1.0f), 1.375f);
  EXPECT_EQ(dequantize_output(-10.0f, 2.0f, 3.0f, 0.0f), -60.0f);
  // (1 + 2^-13)(1 - 2^-13) - 1 = -2^-26: a separate multiply rounds the product to 1.
  const float e = std::ldexp(1.0f, -13);
  EXPECT_EQ(dequantize_output(1.0f + e, 1.0f - e, 1.0f, -1.0f), -std::ldexp(1.0f, -26));
}

TEST(Quantize, StorageConversions) {
  std::int8_t i8[4] = {};
  float_to_storage(5.0f, i8, 0, DType::I8);
  float_to_storage(2.5f, i8, 1, DType::I8);
  float_to_storage(200.0f, i8, 2, DType::I8);
  float_to_storage(-200.0f, i8, 3, DType::I8);
  EXPECT_EQ(i8[0], 5);
  EXPECT_EQ(i8[1], 2);
  EXPECT_EQ(i8[2], 127);
  EXPECT_EQ(i8[3], -128);
  EXPECT_EQ(storage_to_float(i8, 3, DType::I8), -128.0f);

  std::uint8_t f8[2] = {};
  float_to_storage(1.0f, f8, 1, DType::F8_E4M3);
  EXPECT_EQ(f8[1], 0x38);
  EXPECT_EQ(storage_to_float(f8, 1, DType::F8_E4M3), 1.0f);

  std::uint16_t h[3] = {};
  float_to_storage(1.0f, h, 2, DType::BF16);
  EXPECT_EQ(h[2], 0x3F80);
  EXPECT_EQ(storage_to_float(h, 2, DType::BF16), 1.0f);
  float_to_storage(-2.0f, h, 1, DType::F16);
  EXPECT_EQ(h[1], 0xC000);
  EXPECT_EQ(storage_to_float(h, 1, DType::F16), -2.0f);

  float f[2] = {};
  float_to_storage(0.1f, f, 1, DType::F32);
  EXPECT_EQ(f[1], 0.1f);
  EXPECT_EQ(storage_to_float(f, 1, DType::F32), 0.1f);

  // Values representable in each format come back unchanged.
  for (DType t : {DType::I8, DType::F8_E4M3, DType::BF16, DType::F16, DType::F32}) {
    const std::vector<float> values =
        t == DType::I8 ? std::vector<float>{0, 1, -2, 3, 4, 16, -64, 127, -128}
                       : std::vector<float>{0, 1, -2, 3, -0.5f, 16, -64, 0.25f, 448};
    std::vector<std::uint8_t> buffer(values.size() * dtype_size(t));
    for (std::size_t i = 0; i < values.size(); ++i)
      float_to_storage(values[i], buffer.data(), static_cast<std::int64_t>(i), t);
    for (std::size_t i = 0; i < values.size(); ++i)
      EXPECT_EQ(storage_to_float(buffer.data(), static_cast<std::int64_t>(i), t), values[i])
          << dtype_name(t) << " " << values[i];
  }

  std::int32_t i32 = 0;
  EXPECT_THROW(storage_to_float(&i32, 0, DType::I32), InvalidArgument);
  EXPECT_THROW(float_to_storage(1.0f, &i32, 0, DType::I32), InvalidArgument);
}

TEST(Quantize, RowsInt8ByHand) {
  const float x[2][4] = {{127.0f, -63.5f, 0.5f, -254.0f}, {1.0f, 2.0f, 3.0f, 127.0f}};
  std::int8_t q[2][4];
  float scales[2];
  quantize_rows(&x[0][0], 2, 4, Precision::INT8, q, scales);
  EXPECT_EQ(scales[0], 2.0f);
  EXPECT_EQ(scales[1], 1.0f);
  const std::int8_t expected[2][4] = {{64, -32, 0, -127}, {1, 2, 3, 127}};  // 63.5 -> 64
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(q[r][c], expected[r][c]) << r << "," << c;
}

TEST(Quantize, RowsFp8ByHand) {
  const float x[3] = {1344.0f, -3.0f, 1.5f};
  std::uint8_t q[3];
  float scale;
  quantize_rows(x, 1, 3, Precision::FP8, q, &scale);
  EXPECT_EQ(scale, 3.0f);
  EXPECT_EQ(q[0], 0x7E);
  EXPECT_EQ(q[1], 0xB8);
  EXPECT_EQ(q[2], 0x30);
}

TEST(Quantize, RowsBf16AndFp16AreRoundedWithScaleOne) {
  const float x[4] = {1.0f + std::ldexp(1.0f, -8), -3.0f, 1e6f, 0.1f};
  std::uint16_t q[4];
  float scale = 0.0f;
  quantize_rows(x, 1, 4, Precision::BF16, q, &scale);
  EXPECT_EQ(scale, 1.0f);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q[i], float_to_bf16(x[i]));
  scale = 0.0f;
  quantize_rows(x, 1, 4, Precision::FP16, q, &scale);
  EXPECT_EQ(scale, 1.0f);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q[i], float_to_fp16(x[i]));
}

TEST(Quantize, ZeroRows) {
  const float zeros[5] = {0.0f, 0.0f, -0.0f, 0.0f, -0.0f};
  std::int8_t qi[5];
  float scale = 0.0f;
  quantize_rows(zeros, 1, 5, Precision::INT8, qi, &scale);
  EXPECT_EQ(scale, kMinQuantScale);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(qi[i], 0);
  std::uint8_t qf[5];
  quantize_rows(zeros, 1, 5, Precision::FP8, qf, &scale);
  EXPECT_EQ(scale, kMinQuantScale);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(qf[i] & 0x7F, 0) << i;                              // the value zero
    EXPECT_EQ(qf[i], std::signbit(zeros[i]) ? 0x80 : 0x00) << i;  // sign kept, as on the GPU
  }
}

TEST(Quantize, AbsmaxElementMapsToTheTopOfTheRange) {
  std::mt19937 rng(9);
  std::normal_distribution<float> value(0.0f, 3.0f);
  const int rows = 200, cols = 37;
  std::vector<float> x(rows * cols);
  for (float& v : x) v = value(rng);
  std::vector<std::int8_t> qi(x.size());
  std::vector<std::uint8_t> qf(x.size());
  std::vector<float> si(rows), sf(rows);
  quantize_rows(x.data(), rows, cols, Precision::INT8, qi.data(), si.data());
  quantize_rows(x.data(), rows, cols, Precision::FP8, qf.data(), sf.data());
  for (int r = 0; r < rows; ++r) {
    int top = 0;
    for (int c = 1; c < cols; ++c)
      if (std::fabs(x[r * cols + c]) > std::fabs(x[r * cols + top])) top = c;
    const float absmax = std::fabs(x[r * cols + top]);
    ASSERT_EQ(si[r], quant_scale(absmax, Precision::INT8));
    ASSERT_EQ(sf[r], quant_scale(absmax, Precision::FP8));
    const bool negative = x[r * cols + top] < 0;
    ASSERT_EQ(qi[r * cols + top], negative ? -127 : 127) << r;
    ASSERT_EQ(qf[r * cols + top], negative ? 0xFE : 0x7E) << r;
    for (int c = 0; c < cols; ++c) {
      ASSERT_EQ(qi[r * cols + c], quantize_int8(x[r * cols + c], si[r]));
      ASSERT_EQ(qf[r * cols + c], quantize_fp8(x[r * cols + c], sf[r]));
    }
  }
}

}  // namespace
}  // namespace slidesparse
