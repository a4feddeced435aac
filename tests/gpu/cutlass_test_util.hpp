// Shared by the GPU tests of our CUTLASS GEMMs (sparse and dense): the skip where they cannot
// run, a random layer problem, running the layer, and the comparison with the CPU reference
// (INT8 bit for bit, FP8 within kFp8Tolerance).
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
#include "slidesparse/numeric.hpp"

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

}  // namespace slidesparse::test
