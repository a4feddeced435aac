#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {
namespace {

// BF16-representable weights, one in eight exactly zero.
std::vector<float> random_weights(std::int64_t n, std::int64_t k, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<std::size_t>(n * k));
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = i % 8 == 3 ? 0.0f : bf16_to_float(float_to_bf16(normal(rng)));
  return w;
}

std::vector<std::uint16_t> to_bf16(const std::vector<float>& w) {
  std::vector<std::uint16_t> out(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) out[i] = float_to_bf16(w[i]);
  return out;
}

// The packer's definition written out with the whole-matrix references: prune, quantize, slide.
PackedLinear reference_pack(std::vector<float> w, std::int64_t n, std::int64_t k,
                            Precision precision, const Pattern& pattern) {
  PackedLinear out;
  out.precision = precision;
  out.pattern = pattern;
  out.n = n;
  out.k = k;
  prune_magnitude(w.data(), n, k, pattern);
  const DType storage = precision_storage(precision);
  std::vector<std::uint8_t> q(static_cast<std::size_t>(n * k) * dtype_size(storage));
  out.scale.resize(static_cast<std::size_t>(n));
  quantize_rows(w.data(), n, k, precision, q.data(), out.scale.data());
  out.weight.resize(static_cast<std::size_t>(n * out.k_slide()) * dtype_size(storage));
  slide_rows(storage, q.data(), n, k, pattern, out.weight.data());
  return out;
}

TEST(PackLinear, MatchesPruneQuantizeSlideForEveryPatternAndPrecision) {
  const std::int64_t n = 37, k = 50;
  const auto w = random_weights(n, k, 1);
  const auto bf16 = to_bf16(w);
  for (const Pattern& pattern : Pattern::all()) {
    for (Precision precision :
         {Precision::INT8, Precision::FP8, Precision::BF16, Precision::FP16}) {
      SCOPED_TRACE(pattern.display_name() + " " + precision_name(precision));
      const PackedLinear expected = reference_pack(w, n, k, precision, pattern);
      const PackedLinear from_float =
          pack_linear(w.data(), n, k, nullptr, precision, pattern, PruneMode::Magnitude, "w", 2);
      const PackedLinear from_bf16 = pack_linear(DType::BF16, bf16.data(), n, k, nullptr, precision,
                                                 pattern, PruneMode::Magnitude, "w", 3);
      EXPECT_EQ(from_float.weight, expected.weight);
      EXPECT_EQ(from_float.scale, expected.scale);
      EXPECT_EQ(from_bf16.weight, expected.weight);
      EXPECT_EQ(from_bf16.scale, expected.scale);
      EXPECT_EQ(from_bf16.k_slide(), pattern.k_slide(k));
    }
  }
}

// Many row blocks per thread, and rows longer than one block.
TEST(PackLinear, BlockingAndThreadsDoNotChangeTheResult) {
  const Pattern pattern = Pattern::parse("6:8");
  for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{2001, 64}, {3, 70001}}) {
    SCOPED_TRACE(std::to_string(n) + "x" + std::to_string(k));
    const auto w = random_weights(n, k, 2);
    const PackedLinear expected = reference_pack(w, n, k, Precision::INT8, pattern);
    for (int threads : {1, 2, 5}) {
      const PackedLinear packed = pack_linear(w.data(), n, k, nullptr, Precision::INT8, pattern,
                                              PruneMode::Magnitude, "w", threads);
      EXPECT_EQ(packed.weight, expected.weight) << threads << " threads";
      EXPECT_EQ(packed.scale, expected.scale) << threads << " threads";
    }
  }
}

TEST(PackLinear, Float16Input) {
  const std::int64_t n = 9, k = 30;
  auto w = random_weights(n, k, 3);
  std::vector<std::uint16_t> fp16(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    fp16[i] = float_to_fp16(w[i]);
    w[i] = fp16_to_float(fp16[i]);
  }
  const Pattern pattern = Pattern::parse("4:6");
  const PackedLinear expected = reference_pack(w, n, k, Precision::FP8, pattern);
  const PackedLinear packed = pack_linear(DType::F16, fp16.data(), n, k, nullptr, Precision::FP8,
                                          pattern, PruneMode::Magnitude, "w");
  EXPECT_EQ(packed.weight, expected.weight);
  EXPECT_EQ(packed.scale, expected.scale);
}

// The converter reuses two PackedLinear for every tensor: a reused one must hold exactly what
// a fresh one would, whatever it held before.
TEST(PackLinear, PackIntoReusesBuffersWithoutLeftovers) {
  const Pattern pattern = Pattern::parse("6:8");
  const auto big = to_bf16(random_weights(64, 96, 7));
  const auto small = to_bf16(random_weights(5, 24, 8));
  std::vector<float> bias(64, 0.5f);
  PackedLinear reused;
  pack_linear_into(reused, DType::BF16, big.data(), 64, 96, bias.data(), Precision::BF16, pattern,
                   PruneMode::Magnitude, "big");
  for (Precision precision : {Precision::INT8, Precision::FP8}) {
    pack_linear_into(reused, DType::BF16, small.data(), 5, 24, nullptr, precision, pattern,
                     PruneMode::Magnitude, "small");
    const PackedLinear fresh = pack_linear(DType::BF16, small.data(), 5, 24, nullptr, precision,
                                           pattern, PruneMode::Magnitude, "small");
    EXPECT_EQ(reused.weight, fresh.weight);
    EXPECT_EQ(reused.scale, fresh.scale);
    EXPECT_TRUE(reused.bias.empty());
    EXPECT_EQ(reused.n, 5);
    EXPECT_EQ(reused.k, 24);
    EXPECT_EQ(reused.precision, precision);
  }
}

TEST(PackLinear, KeepsBiasAndUnpacksToThePrunedQuantizedWeights) {
  const std::int64_t n = 11, k = 40;
  auto w = random_weights(n, k, 4);
  std::vector<float> bias(n);
  for (std::int64_t i = 0; i < n; ++i) bias[i] = 0.25f * static_cast<float>(i) - 1.0f;
  const Pattern pattern = Pattern::parse("2_10");
  const PackedLinear packed =
      pack_linear(w.data(), n, k, bias.data(), Precision::INT8, pattern, PruneMode::Magnitude, "w");
  EXPECT_EQ(packed.bias, bias);
  prune_magnitude(w.data(), n, k, pattern);
  std::vector<std::uint8_t> q(static_cast<std::size_t>(n * k));
  std::vector<float> scales(n);
  quantize_rows(w.data(), n, k, Precision::INT8, q.data(), scales.data());
  EXPECT_EQ(unpacked_weight(packed), q);
  EXPECT_EQ(packed.scale, scales);
}

TEST(PackLinear, NonFiniteWeightNamesTheFirstRowWhateverTheThreads) {
  const std::int64_t n = 40, k = 16;
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    auto w = random_weights(n, k, 5);
    w[30 * k + 1] = bad;  // in the second thread's rows
    w[17 * k + 3] = bad;  // in the first thread's rows: this one is reported
    for (int threads : {1, 2, 4}) {
      try {
        pack_linear(w.data(), n, k, nullptr, Precision::INT8, Pattern::parse("6:8"),
                    PruneMode::Magnitude, "layer.weight", threads);
        FAIL() << "expected InvalidArgument";
      } catch (const InvalidArgument& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("layer.weight: row 17, column 3"), std::string::npos) << message;
        EXPECT_NE(message.find(std::isnan(bad) ? "NaN" : "Inf"), std::string::npos) << message;
      }
    }
  }
}

TEST(PackLinear, PruneNoneRejectsAViolationNamingRowAndGroup) {
  const std::int64_t n = 300, k = 24;
  const Pattern pattern = Pattern::parse("4:6");
  auto w = random_weights(n, k, 6);
  prune_magnitude(w.data(), n, k, pattern);
  EXPECT_NO_THROW(
      pack_linear(w.data(), n, k, nullptr, Precision::INT8, pattern, PruneMode::None, "w"));
  for (int c = 12; c < 18; ++c) w[211 * k + c] = 1.0f;  // group 2 of row 211: 6 non-zeros
  try {
    pack_linear(w.data(), n, k, nullptr, Precision::INT8, pattern, PruneMode::None, "up.weight", 2);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("up.weight: row 211, group 2 has 6 non-zeros"),
              std::string::npos)
        << e.what();
  }
}

TEST(PackLinear, RejectsBadShapesAndDtypes) {
  const float w[4] = {1, 2, 3, 4};
  const Pattern pattern = Pattern::parse("6:8");
  EXPECT_THROW(pack_linear(w, 0, 4, nullptr, Precision::INT8, pattern, PruneMode::Magnitude, "w"),
               InvalidArgument);
  EXPECT_THROW(pack_linear(w, 1, -4, nullptr, Precision::INT8, pattern, PruneMode::Magnitude, "w"),
               InvalidArgument);
  EXPECT_THROW(
      pack_linear(DType::I8, w, 1, 4, nullptr, Precision::INT8, pattern, PruneMode::Magnitude, "w"),
      InvalidArgument);
}

}  // namespace
}  // namespace slidesparse
