// Shared by the GPU tests of our CUTLASS GEMMs (sparse and dense): the skip where they cannot
// run, a random layer problem, running the layer, and the comparison with the CPU reference
// (INT8 bit for bit, FP8 within kFp8Tolerance); and the exact check of every tile configuration
// on small integers (INT8 and FP8 bit for bit).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/lift.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse::test {

// ‖y − ref‖ / ‖ref‖ for FP8: the products are exact, Hopper's FP8 accumulation keeps ~14 bits
// between promotions and the BF16 output rounds to 2^-9 (as for cuSPARSELt in test_linear).
constexpr double kFp8Tolerance = 1e-2;

// GTEST_SKIP()s unless this build has the backend and the GPU is cc 9.0.
#define REQUIRE_CUTLASS(ctx)                                                                      \
  do {                                                                                            \
    if (!cutlass_sparse_available())                                                              \
      GTEST_SKIP() << "this build has no CUTLASS GEMMs (CUTLASS headers not found or "            \
                      "sm_90a not among CMAKE_CUDA_ARCHITECTURES)";                               \
    if ((ctx).cc_major() != 9 || (ctx).cc_minor() != 0)                                           \
      GTEST_SKIP() << "the CUTLASS GEMMs run on cc 9.0 only; this GPU is cc " << (ctx).cc_major() \
                   << "." << (ctx).cc_minor();                                                    \
  } while (0)

// A BF16 layer of up to max_m tokens whose sparse path runs one of our CUTLASS GEMMs
// (CutlassSparse or CutlassSparseLift).
inline LinearOptions cutlass_layer_options(std::int64_t max_m, GemmBackendKind sparse_backend) {
  LinearOptions options;
  options.activation = DType::BF16;
  options.max_m = max_m;
  options.sparse_backend = sparse_backend;
  return options;
}

struct Problem {
  std::int64_t m, n, k;
  std::vector<float> w, bias, x;      // x holds values exactly representable in BF16
  std::vector<std::uint16_t> x_bits;  // X as BF16 bits
};

inline Problem make_problem(std::int64_t m, std::int64_t n, std::int64_t k, std::uint64_t seed) {
  Problem p{m, n, k, {}, {}, {}, {}};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  p.w.resize(static_cast<std::size_t>(n * k));
  for (auto& v : p.w) v = 0.05f * normal(rng);
  p.bias.resize(static_cast<std::size_t>(n));
  for (auto& v : p.bias) v = 0.1f * normal(rng);
  p.x.resize(static_cast<std::size_t>(m * k));
  p.x_bits.resize(p.x.size());
  for (std::size_t i = 0; i < p.x.size(); ++i) {
    p.x_bits[i] = float_to_bf16(normal(rng));
    p.x[i] = bf16_to_float(p.x_bits[i]);
  }
  return p;
}

inline std::vector<std::uint16_t> run_layer(SlideSparseLinear& layer, const Problem& p,
                                            std::int64_t m, LinearPath path) {
  DeviceBuffer<std::uint16_t> x(static_cast<std::size_t>(m * p.k)),
      y(static_cast<std::size_t>(m * p.n));
  x.upload(p.x_bits.data(), x.size());
  y.fill_bytes(0xCD, nullptr);
  layer.forward(x.get(), m, y.get(), nullptr, path);
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<std::uint16_t> out(y.size());
  y.download(out.data(), out.size());
  return out;
}

inline void expect_matches(const std::vector<std::uint16_t>& got, const std::vector<float>& ref,
                           Precision precision, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  if (precision == Precision::INT8) {
    int reported = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      if (got[i] != float_to_bf16(ref[i]) && reported++ < 5)
        ADD_FAILURE() << what << ": y[" << i << "] bits " << got[i] << " expected "
                      << float_to_bf16(ref[i]) << " (" << ref[i] << ")";
    EXPECT_EQ(reported, 0) << what << ": outputs differ from the reference";
    return;
  }
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = bf16_to_float(got[i]);
    ASSERT_TRUE(std::isfinite(g)) << what << ": y[" << i << "] not finite";
    diff += (g - ref[i]) * (g - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), kFp8Tolerance) << what;
}

// ---- every configuration, exactly --------------------------------------------------------------

// A GEMM on small integers (|v| <= 2), which INT8 and E4M3 hold exactly. FP8 too must then match
// the CPU bit for bit: the tensor cores promote FP8 partial sums to FP32 every 4 MMAs (at most
// 4 × 64 products, |sum| <= 1024: 11 bits, within the ~14 bits their FP8 accumulation keeps).
// Scales and bias differ per token and per channel and are not powers of two, so a transposed
// output, a swapped row / column broadcast or another rounding order shows.
struct SmallIntegerGemm {
  std::int64_t n = 0, k = 0;
  std::vector<int> w;                // W [n, k]
  std::vector<float> scale_w, bias;  // [n]
};

inline std::vector<int> small_integers(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> value(-2, 2);
  std::vector<int> v(count);
  for (auto& x : v) x = value(rng);
  return v;
}

inline std::uint8_t operand_code(int value, Precision precision) {
  return precision == Precision::INT8 ? static_cast<std::uint8_t>(static_cast<std::int8_t>(value))
                                      : float_to_e4m3(static_cast<float>(value));
}

inline std::vector<std::uint8_t> operand_codes(const std::vector<int>& values, Precision precision) {
  std::vector<std::uint8_t> codes(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) codes[i] = operand_code(values[i], precision);
  return codes;
}

inline void fill_channel_vectors(SmallIntegerGemm& p) {
  p.scale_w.resize(static_cast<std::size_t>(p.n));
  p.bias.resize(static_cast<std::size_t>(p.n));
  for (std::int64_t c = 0; c < p.n; ++c) {
    p.scale_w[static_cast<std::size_t>(c)] = 0.0031f * static_cast<float>(1 + c % 11);
    p.bias[static_cast<std::size_t>(c)] = 0.37f * static_cast<float>(c % 5) - 0.7f;
  }
}

// 2:4 weights of small integers whose groups hold two, at times one or no values; for FP8,
// some zeros are -0. Returns the operand codes; p.w, p.scale_w and p.bias are filled.
inline std::vector<std::uint8_t> mixed_two_four_weights(SmallIntegerGemm& p, Precision precision) {
  p.w.assign(static_cast<std::size_t>(p.n * p.k), 0);
  std::mt19937 rng(23);
  const int values[] = {-2, -1, 1, 2};
  for (std::size_t group = 0; group < p.w.size(); group += 4) {
    const unsigned kept = rng() % 8 == 0 ? rng() % 2 : 2;  // mostly two, at times one or none
    const unsigned first = rng() % 4, second = (first + 1 + rng() % 3) % 4;
    if (kept >= 1) p.w[group + first] = values[rng() % 4];
    if (kept == 2) p.w[group + second] = values[rng() % 4];
  }
  fill_channel_vectors(p);
  std::vector<std::uint8_t> codes = operand_codes(p.w, precision);
  if (precision == Precision::FP8)
    for (std::size_t i = 0; i < codes.size(); i += 3)
      if (codes[i] == 0) codes[i] = 0x80;
  return codes;
}

// The GEMM's input X for M tokens and the values W multiplies ([m, p.k], row-major). A GEMM
// that lifts its input gets the un-lifted rows [m, input_k()] at a stride of input_ld(), the
// padding between filled with ones (it must read past input_k() as zero), and W multiplies
// their lift by `pattern`; any other gets [m, p.k] as it is.
struct ExactInput {
  std::vector<std::uint8_t> codes;
  std::vector<int> multiplied;
};

inline ExactInput exact_input(const Gemm& gemm, Precision precision, const SmallIntegerGemm& p,
                              const Pattern* pattern, std::int64_t m) {
  ExactInput in;
  if (!gemm.lifts_input()) {
    in.multiplied = small_integers(static_cast<std::size_t>(m * p.k), 17 + m);
    in.codes = operand_codes(in.multiplied, precision);
    return in;
  }
  const std::int64_t raw_k = gemm.input_k(), ld = gemm.input_ld();
  const std::vector<int> raw = small_integers(static_cast<std::size_t>(m * raw_k), 17 + m);
  in.codes.assign(static_cast<std::size_t>(m * ld), operand_code(1, precision));
  in.multiplied.resize(static_cast<std::size_t>(m * p.k));
  for (std::int64_t r = 0; r < m; ++r) {
    const int* row = &raw[static_cast<std::size_t>(r * raw_k)];
    for (std::int64_t j = 0; j < raw_k; ++j)
      in.codes[static_cast<std::size_t>(r * ld + j)] = operand_code(row[j], precision);
    lift_row(DType::I32, row, raw_k, *pattern, &in.multiplied[static_cast<std::size_t>(r * p.k)],
             p.k);
  }
  return in;
}

// For each M: search() must run every configuration; then each configuration, prepared and run
// with the problem's scales and bias, must give dequantize_output(Σ x·w) rounded to BF16. For a
// GEMM that lifts its input, x is the lift of its un-lifted rows by `pattern`. With
// `only_config` set, only that configuration runs (no search), so a failure names it alone.
inline void expect_every_configuration_exact(Gemm& gemm, Precision precision,
                                             const SmallIntegerGemm& p, std::size_t configs,
                                             const std::vector<std::int64_t>& ms,
                                             const Pattern* pattern = nullptr,
                                             int only_config = -1) {
  DeviceBuffer<float> scale_w(p.scale_w.size()), bias(p.bias.size());
  scale_w.upload(p.scale_w.data(), p.scale_w.size());
  bias.upload(p.bias.data(), p.bias.size());
  for (const std::int64_t m : ms) {
    const std::string at = std::string(precision_name(precision)) + " N=" + std::to_string(p.n) +
                           " K=" + std::to_string(p.k) + " M=" + std::to_string(m) +
                           (pattern ? " lifting " + pattern->display_name() : std::string());
    const ExactInput input = exact_input(gemm, precision, p, pattern, m);
    const std::vector<int>& xv = input.multiplied;
    const std::vector<std::uint8_t>& x_codes = input.codes;
    DeviceBuffer<std::uint8_t> x(x_codes.size());
    x.upload(x_codes.data(), x_codes.size());
    std::vector<float> sx(static_cast<std::size_t>(m));
    for (std::int64_t r = 0; r < m; ++r)
      sx[static_cast<std::size_t>(r)] = 0.013f * static_cast<float>(1 + r % 7);
    DeviceBuffer<float> scale_x(sx.size());
    scale_x.upload(sx.data(), sx.size());
    DeviceBuffer<std::uint16_t> y(static_cast<std::size_t>(m * p.n));

    if (only_config < 0) {
      SearchOptions options;
      options.warmup = 1;
      options.reps = 3;
      const auto timings = gemm.search(m, x.get(), y.get(), nullptr, options);
      ASSERT_EQ(timings.size(), configs) << at;
      for (const auto& t : timings) EXPECT_TRUE(t.ok) << at << " " << t.algo.describe() << ": " << t.error;
    }

    std::vector<std::uint16_t> want(static_cast<std::size_t>(m * p.n));
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t c = 0; c < p.n; ++c) {
        std::int64_t sum = 0;
        for (std::int64_t j = 0; j < p.k; ++j)
          sum += std::int64_t{xv[static_cast<std::size_t>(r * p.k + j)]} *
                 p.w[static_cast<std::size_t>(c * p.k + j)];
        const auto col = static_cast<std::size_t>(c);
        want[static_cast<std::size_t>(r * p.n + c)] = float_to_bf16(dequantize_output(
            static_cast<float>(sum), sx[static_cast<std::size_t>(r)], p.scale_w[col], p.bias[col]));
      }
    std::vector<std::uint16_t> got(want.size());
    for (int config = 0; config < static_cast<int>(configs); ++config) {
      if (only_config >= 0 && config != only_config) continue;
      gemm.prepare(m, GemmAlgo{config, 1, 0, -1, {}});
      y.fill_bytes(0xCD, nullptr);
      gemm.run_dequantized(x.get(), scale_x.get(), scale_w.get(), bias.get(), y.get(), DType::BF16,
                           m, nullptr);
      SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
      y.download(got.data(), got.size());
      int reported = 0;
      for (std::size_t i = 0; i < got.size(); ++i)
        if (got[i] != want[i] && reported++ < 5)
          ADD_FAILURE() << at << " config " << config << ": y[" << i / static_cast<std::size_t>(p.n)
                        << "," << i % static_cast<std::size_t>(p.n) << "] = " << bf16_to_float(got[i])
                        << ", expected " << bf16_to_float(want[i]);
      EXPECT_EQ(reported, 0) << at << " config " << config << " differs from the CPU";
    }
  }
}

}  // namespace slidesparse::test
