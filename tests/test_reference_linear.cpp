#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/reference_linear.hpp"

namespace slidesparse {
namespace {

const Precision kPrecisions[] = {Precision::INT8, Precision::FP8, Precision::BF16, Precision::FP16};

// Bit-for-bit equality, so that even the sign of a zero must agree.
void expect_identical(const std::vector<float>& a, const std::vector<float>& b,
                      const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(bits_of(a[i]), bits_of(b[i]))
        << what << " element " << i << ": " << a[i] << " vs " << b[i];
}

std::vector<float> normal_values(std::size_t count, float sigma, std::mt19937& rng) {
  std::normal_distribution<float> value(0.0f, sigma);
  std::vector<float> out(count);
  for (float& v : out) v = value(rng);
  return out;
}

// Small integers and ±absmax, where every quantization is exact: the result is known.
TEST(ReferenceLinear, ExactSmallIntegersByHand) {
  for (const Precision prec : kPrecisions) {
    const float top = prec == Precision::INT8 ? 127.0f : 448.0f;  // scale 1 for W8A8
    const float w[2 * 4] = {top, 0, -3, 0, 0, 5, 0, -top};
    const float x[2 * 4] = {1, 2, top, -4, 0, 0, 0, 0};
    const float bias[2] = {0.5f, -1.0f};
    const float y0 = top - 3 * top, y1 = 10 + 4 * top;
    const std::vector<float> expected_bias = {y0 + 0.5f, y1 - 1.0f, 0.5f, -1.0f};
    const std::vector<float> expected_plain = {y0, y1, 0.0f, 0.0f};

    const QuantizedMatrix q = quantize_matrix(w, 2, 4, prec);
    const std::string what = precision_name(prec);
    expect_identical(reference_linear_dense(x, 2, q, bias), expected_bias, what + " dense");
    expect_identical(reference_linear_dense(x, 2, q, nullptr), expected_plain, what + " dense");
    for (const Pattern& p : Pattern::all()) {
      const QuantizedMatrix slid = slide_matrix(q, p);
      expect_identical(reference_linear_sparse(x, 2, 4, slid, p, bias), expected_bias,
                       what + " " + p.zeros_name());
      expect_identical(reference_linear_sparse(x, 2, 4, slid, p, nullptr), expected_plain,
                       what + " " + p.zeros_name());
    }
  }
}

// prune -> quantize -> slide, then the sparse path equals the dense path bit for bit,
// for every pattern and precision. INT8 is exact by integer arithmetic. For FP8, BF16 and
// FP16 the tolerance is also zero, for three reasons: (1) both paths quantize X with the
// same row scale from the same K values, so each weight meets the same quantized
// activation; (2) each product of two such values is exact in float, and the greedy keeps
// the non-zero weights in increasing k order along the slid row, so the non-zero terms are
// added in the same order; (3) every other term is ±0, and adding ±0 leaves a float sum
// unchanged, because the sum starts at +0 and can never become -0 (x + (-x) is +0).
TEST(ReferenceLinear, SparseEqualsDenseBitForBit) {
  std::mt19937 rng(2024);
  for (const Pattern& p : Pattern::all()) {
    const std::int64_t unit = p.is_infinite() ? 2 : p.length();
    struct Shape {
      std::int64_t m, n, k;
    };
    const Shape shapes[] = {{1, 5, 3 * unit + 1}, {7, 6, 3 * unit + 3}, {3, 4, 64}, {2, 3, 1}};
    for (const Precision prec : kPrecisions) {
      for (const Shape& s : shapes) {
        std::vector<float> w = normal_values(static_cast<std::size_t>(s.n * s.k), 0.05f, rng);
        prune_magnitude(w.data(), s.n, s.k, p);
        const std::vector<float> x = normal_values(static_cast<std::size_t>(s.m * s.k), 1.5f, rng);
        const std::vector<float> bias = normal_values(static_cast<std::size_t>(s.n), 0.3f, rng);

        const QuantizedMatrix q = quantize_matrix(w.data(), s.n, s.k, prec);
        const QuantizedMatrix slid = slide_matrix(q, p);
        ASSERT_EQ(slid.cols, p.k_slide(s.k));
        ASSERT_EQ(slid.scales, q.scales);

        const std::string what = p.zeros_name() + " " + precision_name(prec) +
                                 " M=" + std::to_string(s.m) + " K=" + std::to_string(s.k);
        for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
          const auto dense = reference_linear_dense(x.data(), s.m, q, b);
          const auto sparse = reference_linear_sparse(x.data(), s.m, s.k, slid, p, b);
          expect_identical(sparse, dense, what + (b ? " bias" : " no bias"));
        }
      }
    }
  }
}

// How far a quantized value can be from the value, in the value's units.
double quantization_error(double v, double scale, Precision prec) {
  const double slack = 1.0 + 1e-5;  // the rounding of v / scale itself
  switch (prec) {
    case Precision::INT8:
      return slack * scale / 2;
    case Precision::FP8:
      return slack * (std::fabs(v) / 16 + scale * std::ldexp(1.0, -10));
    case Precision::BF16:
      return std::fabs(v) / 256 + std::ldexp(1.0, -134);
    case Precision::FP16:
      return std::fabs(v) / 2048 + std::ldexp(1.0, -25);
  }
  return 0;
}

// The dense reference against the exact product of the unquantized values, within the
// bound that quantization allows: Σ (|x|·e_w + |w|·e_x + e_x·e_w) over k, plus K float
// roundings of the running sum (not INT8: exact) and the epilogue's, relative 2^-24 each.
TEST(ReferenceLinear, DenseIsWithinTheQuantizationBoundOfTheExactProduct) {
  std::mt19937 rng(99);
  const std::int64_t m = 4, n = 8, k = 200;
  const std::vector<float> w = normal_values(static_cast<std::size_t>(n * k), 0.02f, rng);
  const std::vector<float> x = normal_values(static_cast<std::size_t>(m * k), 2.0f, rng);
  const std::vector<float> bias = normal_values(static_cast<std::size_t>(n), 0.5f, rng);
  for (const Precision prec : kPrecisions) {
    const QuantizedMatrix q = quantize_matrix(w.data(), n, k, prec);
    const std::vector<float> y = reference_linear_dense(x.data(), m, q, bias.data());
    for (std::int64_t r = 0; r < m; ++r) {
      double x_absmax = 0;
      for (std::int64_t i = 0; i < k; ++i)
        x_absmax = std::max(x_absmax, std::fabs(double{x[r * k + i]}));
      const double x_scale = quant_scale(static_cast<float>(x_absmax), prec);
      for (std::int64_t c = 0; c < n; ++c) {
        double exact = bias[c], bound = 0, magnitude = std::fabs(double{bias[c]});
        for (std::int64_t i = 0; i < k; ++i) {
          const double xv = x[r * k + i], wv = w[c * k + i];
          const double ex = quantization_error(xv, x_scale, prec);
          const double ew = quantization_error(wv, q.scales[c], prec);
          exact += xv * wv;
          bound += std::fabs(xv) * ew + std::fabs(wv) * ex + ex * ew;
          magnitude += (std::fabs(xv) + ex) * (std::fabs(wv) + ew);
        }
        const double roundings = prec == Precision::INT8 ? 3 : k + 3;
        bound += roundings * std::ldexp(1.0, -24) * magnitude;
        EXPECT_LE(std::fabs(y[r * n + c] - exact), bound)
            << precision_name(prec) << " m=" << r << " n=" << c;
      }
    }
  }
}

// Large enough to run on several threads; each row must match its own single-row
// (single-thread) result, and the sparse path still equals the dense one.
TEST(ReferenceLinear, ThreadedRowsMatchSingleRows) {
  std::mt19937 rng(8);
  const Pattern p = Pattern::parse("6:8");
  const std::int64_t m = 64, n = 256, k = 1030;
  std::vector<float> w = normal_values(static_cast<std::size_t>(n * k), 0.05f, rng);
  prune_magnitude(w.data(), n, k, p);
  const std::vector<float> x = normal_values(static_cast<std::size_t>(m * k), 1.0f, rng);
  for (const Precision prec : {Precision::INT8, Precision::FP8}) {
    const QuantizedMatrix q = quantize_matrix(w.data(), n, k, prec);
    const QuantizedMatrix slid = slide_matrix(q, p);
    const auto dense = reference_linear_dense(x.data(), m, q, nullptr);
    const auto sparse = reference_linear_sparse(x.data(), m, k, slid, p, nullptr);
    expect_identical(sparse, dense, precision_name(prec));
    for (const std::int64_t r : {std::int64_t{0}, std::int64_t{31}, std::int64_t{63}}) {
      const auto one = reference_linear_dense(x.data() + r * k, 1, q, nullptr);
      expect_identical(one, std::vector<float>(dense.begin() + r * n, dense.begin() + (r + 1) * n),
                       std::string(precision_name(prec)) + " row " + std::to_string(r));
    }
  }
}

TEST(ReferenceLinear, RejectsInconsistentOperands) {
  const Pattern p = Pattern::parse("6:8");
  const float w[2 * 8] = {1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};  // row 1: 8 of 8
  const float x[8] = {};
  const QuantizedMatrix q = quantize_matrix(w, 2, 8, Precision::INT8);
  try {
    slide_matrix(q, p);
    FAIL() << "an unpruned row was slid";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
  }
  const QuantizedMatrix pruned = quantize_matrix(w, 1, 8, Precision::INT8);
  const QuantizedMatrix slid = slide_matrix(pruned, p);
  EXPECT_THROW(reference_linear_sparse(x, 1, 8, pruned, p, nullptr), InvalidArgument);  // not slid
  EXPECT_THROW(reference_linear_sparse(x, 1, 7, slid, Pattern::parse("2:4"), nullptr),
               InvalidArgument);
  QuantizedMatrix broken = pruned;
  broken.data.pop_back();
  EXPECT_THROW(reference_linear_dense(x, 1, broken, nullptr), InvalidArgument);
  broken = pruned;
  broken.scales.push_back(1.0f);
  EXPECT_THROW(slide_matrix(broken, p), InvalidArgument);

  // An int32 accumulator would overflow: refused rather than wrapped.
  const std::int64_t too_long = 140000;
  QuantizedMatrix wide;
  wide.precision = Precision::INT8;
  wide.rows = 1;
  wide.cols = too_long;
  wide.data.assign(static_cast<std::size_t>(too_long), 127);
  wide.scales = {1.0f};
  const std::vector<float> long_x(static_cast<std::size_t>(too_long), 1.0f);
  EXPECT_THROW(reference_linear_dense(long_x.data(), 1, wide, nullptr), InvalidArgument);
}

}  // namespace
}  // namespace slidesparse
