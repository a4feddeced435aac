#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/lift.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {
namespace {

std::vector<std::int64_t> ragged_ks(const Pattern& p) {
  const std::int64_t unit = p.is_infinite() ? 2 : p.length();
  return {1, 2, 3, 5, unit - 1, unit, unit + 1, 3 * unit + 3, 64, 67};
}

// The identity of DESIGN.md §4 on integers: Σ_s Wslide[n,s]·Xlift[m,s] == Σ_k W[n,k]·X[m,k],
// exactly, for weights pruned to the pattern and slid, and any activations.
TEST(Lift, SlidProductEqualsTheOriginalProduct) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int> value(-127, 127);
  for (const Pattern& p : Pattern::all()) {
    for (const std::int64_t k : ragged_ks(p)) {
      const std::int64_t n = 9, m = 4, k_slide = p.k_slide(k);
      std::vector<float> wf(static_cast<std::size_t>(n * k));
      for (float& v : wf) v = static_cast<float>(value(rng));
      prune_magnitude(wf.data(), n, k, p);
      std::vector<std::int8_t> w(wf.begin(), wf.end());
      std::vector<std::int8_t> x(static_cast<std::size_t>(m * k));
      for (auto& v : x) v = static_cast<std::int8_t>(value(rng));

      std::vector<std::int8_t> w_slid(static_cast<std::size_t>(n * k_slide));
      slide_rows(DType::I8, w.data(), n, k, p, w_slid.data());
      std::vector<std::int8_t> x_lift(static_cast<std::size_t>(m * k_slide));
      for (std::int64_t r = 0; r < m; ++r)
        lift_row(DType::I8, x.data() + r * k, k, p, x_lift.data() + r * k_slide, k_slide);

      for (std::int64_t r = 0; r < m; ++r)
        for (std::int64_t c = 0; c < n; ++c) {
          std::int64_t dense = 0, sparse = 0;
          for (std::int64_t i = 0; i < k; ++i) dense += w[c * k + i] * x[r * k + i];
          for (std::int64_t s = 0; s < k_slide; ++s)
            sparse += w_slid[c * k_slide + s] * x_lift[r * k_slide + s];
          ASSERT_EQ(sparse, dense) << p.zeros_name() << " K=" << k << " m=" << r << " n=" << c;
        }
    }
  }
}

// out[s] = in[k(s)] for every width, zero where k(s) = -1 and in the extra tail.
TEST(Lift, FollowsTheSourceColumnMap) {
  for (const Pattern& p : Pattern::all()) {
    for (const std::int64_t k : ragged_ks(p)) {
      const std::int64_t k_slide = p.k_slide(k), k_out = k_slide + 13;
      std::vector<float> in(static_cast<std::size_t>(k));
      for (std::int64_t i = 0; i < k; ++i)
        in[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
      std::vector<float> out(static_cast<std::size_t>(k_out), -7.0f);  // every slot must be written
      lift_row(DType::F32, in.data(), k, p, out.data(), k_out);
      for (std::int64_t s = 0; s < k_out; ++s) {
        const std::int64_t source = s < k_slide ? lift_source_column(s, p, k) : -1;
        ASSERT_EQ(out[static_cast<std::size_t>(s)],
                  source >= 0 ? static_cast<float>(source + 1) : 0.0f)
            << p.zeros_name() << " K=" << k << " s=" << s;
      }

      // The same map moves 1- and 2-byte elements, bit for bit.
      std::vector<std::uint16_t> in16(static_cast<std::size_t>(k));
      std::vector<std::uint8_t> in8(static_cast<std::size_t>(k));
      for (std::int64_t i = 0; i < k; ++i) {
        in16[static_cast<std::size_t>(i)] = static_cast<std::uint16_t>(0x8000 + i);
        in8[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(0x80 + i % 100);
      }
      std::vector<std::uint16_t> out16(static_cast<std::size_t>(k_out), 0xFFFF);
      std::vector<std::uint8_t> out8(static_cast<std::size_t>(k_out), 0xFF);
      lift_row(DType::BF16, in16.data(), k, p, out16.data(), k_out);
      lift_row(DType::F8_E4M3, in8.data(), k, p, out8.data(), k_out);
      for (std::int64_t s = 0; s < k_out; ++s) {
        const std::int64_t source = s < k_slide ? lift_source_column(s, p, k) : -1;
        const auto at = static_cast<std::size_t>(s);
        ASSERT_EQ(out16[at], source >= 0 ? in16[static_cast<std::size_t>(source)] : 0);
        ASSERT_EQ(out8[at], source >= 0 ? in8[static_cast<std::size_t>(source)] : 0);
      }
    }
  }
}

TEST(Lift, DesignExampleRow) {
  // L = 8, K = 8: windows read columns 0-3, 2-5, 4-7.
  const std::int8_t x[8] = {10, 11, 12, 13, 14, 15, 16, 17};
  std::int8_t out[12];
  lift_row(DType::I8, x, 8, Pattern::parse("6:8"), out, 12);
  const std::int8_t expected[12] = {10, 11, 12, 13, 12, 13, 14, 15, 14, 15, 16, 17};
  EXPECT_EQ(std::memcmp(out, expected, sizeof out), 0);
}

TEST(Lift, RejectsANarrowOutputAndWideTypes) {
  const float x[8] = {};
  float out[16];
  EXPECT_THROW(lift_row(DType::F32, x, 8, Pattern::parse("6:8"), out, 11), InvalidArgument);
  EXPECT_THROW(lift_row(DType::I64, x, 2, Pattern::parse("2:4"), out, 4), InvalidArgument);
  std::uint8_t q[16];
  EXPECT_THROW(quantize_lift_row(x, 8, Pattern::infinite(), Precision::INT8, q, 15),
               InvalidArgument);
}

// The fused kernel's reference is exactly quantize_rows then lift_row, with the scale
// from the K real values only.
TEST(Lift, QuantizeLiftIsQuantizeThenLift) {
  std::mt19937 rng(5);
  std::normal_distribution<float> value(0.0f, 2.0f);
  for (const Pattern& p : Pattern::all()) {
    for (const Precision prec :
         {Precision::INT8, Precision::FP8, Precision::BF16, Precision::FP16}) {
      const DType storage = precision_storage(prec);
      const std::size_t width = dtype_size(storage);
      for (const std::int64_t k : ragged_ks(p)) {
        const std::int64_t k_out = p.k_slide(k) + 8;
        std::vector<float> x(static_cast<std::size_t>(k));
        for (float& v : x) v = value(rng);
        float absmax = 0.0f;
        for (float v : x) absmax = std::max(absmax, std::fabs(v));

        std::vector<std::uint8_t> fused(static_cast<std::size_t>(k_out) * width, 0xEE);
        const float scale = quantize_lift_row(x.data(), k, p, prec, fused.data(), k_out);
        EXPECT_EQ(scale, quant_scale(absmax, prec));

        std::vector<std::uint8_t> q(static_cast<std::size_t>(k) * width);
        float row_scale = 0.0f;
        quantize_rows(x.data(), 1, k, prec, q.data(), &row_scale);
        std::vector<std::uint8_t> lifted(static_cast<std::size_t>(k_out) * width, 0x11);
        lift_row(storage, q.data(), k, p, lifted.data(), k_out);
        ASSERT_EQ(fused, lifted) << p.zeros_name() << " " << precision_name(prec) << " K=" << k;
        ASSERT_EQ(scale, row_scale);
      }
    }
  }
}

TEST(Lift, QuantizeLiftByHand) {
  // INT8, absmax 254 -> scale 2; 2_inf lifts [a b c] to [a b c 0 | c 0 0 0].
  const float x[3] = {254.0f, -5.0f, 3.0f};
  std::int8_t q[10];
  std::memset(q, 0x7F, sizeof q);
  const float scale = quantize_lift_row(x, 3, Pattern::infinite(), Precision::INT8, q, 10);
  EXPECT_EQ(scale, 2.0f);
  const std::int8_t expected[10] = {127, -2, 2, 0, 2, 0, 0, 0, 0, 0};  // -2.5 -> -2, 1.5 -> 2
  EXPECT_EQ(std::memcmp(q, expected, sizeof q), 0);

  const float zero[4] = {};
  std::uint8_t f8[4];
  EXPECT_EQ(quantize_lift_row(zero, 4, Pattern::parse("2:4"), Precision::FP8, f8, 4),
            kMinQuantScale);
  for (const std::uint8_t v : f8) EXPECT_EQ(v, 0);
}

}  // namespace
}  // namespace slidesparse
