// The CUTLASS sm_90a dense GEMM with the same dequantizing epilogue as our 2:4 GEMM (the fair
// dense baseline), through the layer's dense path: bit for bit against the CPU reference and
// against the cuBLASLt dense path (cuBLASLt + dequantize kernel) for INT8, within
// kFp8Tolerance relative L2 for FP8. Skipped where the backend is not built or the GPU is not
// cc 9.0.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cutlass_test_util.hpp"
#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/reference_linear.hpp"

namespace slidesparse {
namespace {

using test::expect_matches;
using test::make_problem;
using test::Problem;

QuantizedMatrix dense_matrix(const PackedLinear& packed) {
  return {packed.precision, packed.n, packed.k, unpacked_weight(packed), packed.scale};
}

LinearOptions dense_options(std::int64_t max_m, GemmBackendKind dense_backend) {
  LinearOptions options;
  options.activation = DType::BF16;
  options.max_m = max_m;
  options.build_sparse = false;
  options.dense_backend = dense_backend;
  return options;
}

std::vector<std::uint16_t> run_dense(SlideSparseLinear& layer, const Problem& p, std::int64_t m) {
  return test::run_layer(layer, p, m, LinearPath::Dense);
}

// ---- rules (host only) -------------------------------------------------------------------------

TEST(CutlassDenseRules, NameRequirementsAndOutput) {
  EXPECT_STREQ(backend_name(GemmBackendKind::CutlassDense), "cutlass_dense");
  EXPECT_EQ(parse_backend("cutlass_dense"), GemmBackendKind::CutlassDense);
  for (Precision p : {Precision::INT8, Precision::FP8}) {
    const GemmRequirements req = gemm_requirements(p, GemmBackendKind::CutlassDense);
    EXPECT_EQ(req.m_multiple, 1);
    EXPECT_EQ(req.n_multiple, 8);
    EXPECT_EQ(req.k_multiple, 16);
    EXPECT_EQ(gemm_output_type(p, GemmBackendKind::CutlassDense), DType::BF16);
    EXPECT_EQ(cutlass_dense_configs(p).size(), cutlass_sparse_available() ? 2u : 0u);
  }
  EXPECT_THROW(gemm_requirements(Precision::BF16, GemmBackendKind::CutlassDense), InvalidArgument);
  EXPECT_TRUE(cutlass_dense_configs(Precision::FP16).empty());
}

// ---- the layer's dense path --------------------------------------------------------------------

class CutlassDenseLayer : public ::testing::TestWithParam<Precision> {};

TEST_P(CutlassDenseLayer, EqualsTheCpuReferenceAndCublasLt) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const Precision precision = GetParam();
  // Ragged K (pads to a multiple of 16); N = 96 runs without N padding (Y written in place),
  // N = 50 pads (Y through the staging copy). M = 1, 37 (not a multiple of any tile) and 300
  // (two 256-token tiles, three 128-token ones). Pruned 2:4 weights, as the layer's dense
  // fallback holds them.
  for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{96, 100}, {50, 200}}) {
    const Problem p = make_problem(300, n, k, static_cast<std::uint64_t>(n * k + 11));
    const PackedLinear packed =
        pack_linear(p.w.data(), n, k, p.bias.data(), precision, Pattern::parse("2_4"),
                    PruneMode::Magnitude, "test.weight");
    SlideSparseLinear cutlass(ctx, packed, dense_options(300, GemmBackendKind::CutlassDense));
    ASSERT_EQ(cutlass.dense_gemm()->kind(), GemmBackendKind::CutlassDense);
    ASSERT_TRUE(cutlass.dense_gemm()->fuses_dequantize());
    SlideSparseLinear cublaslt(ctx, packed, dense_options(300, GemmBackendKind::CublasLtDense));
    for (const std::int64_t m : {1, 37, 300}) {
      const std::string what = std::string(precision_name(precision)) + " N=" + std::to_string(n) +
                               " K=" + std::to_string(k) + " M=" + std::to_string(m);
      const auto ref = reference_linear_dense(p.x.data(), m, dense_matrix(packed), p.bias.data());
      const auto got = run_dense(cutlass, p, m);
      expect_matches(got, ref, precision, what + " cutlass_dense");
      if (precision == Precision::INT8) {
        EXPECT_EQ(got, run_dense(cublaslt, p, m)) << what << ": cutlass_dense vs cublaslt";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Int8AndFp8, CutlassDenseLayer,
                         ::testing::Values(Precision::INT8, Precision::FP8),
                         [](const ::testing::TestParamInfo<Precision>& info) {
                           return std::string(precision_name(info.param));
                         });

TEST(CutlassDenseLayerOptions, RejectsF16ActivationsAndSparseKinds) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const Problem p = make_problem(1, 64, 64, 3);
  const PackedLinear packed = pack_linear(p.w.data(), 64, 64, nullptr, Precision::INT8,
                                          Pattern::parse("2_4"), PruneMode::Magnitude, "w");
  LinearOptions f16 = dense_options(16, GemmBackendKind::CutlassDense);
  f16.activation = DType::F16;
  EXPECT_THROW(SlideSparseLinear(ctx, packed, f16), InvalidArgument);
  EXPECT_THROW(SlideSparseLinear(ctx, packed, dense_options(16, GemmBackendKind::CusparseLt)),
               InvalidArgument);
}

// ---- the GEMM
// ------------------------------------------------------------------------------------

TEST(CutlassDenseGemm, SearchTimesEveryConfigurationAndGivesExactAccumulators) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  constexpr std::int64_t kM = 300, kN = 264, kK = 528;  // N, K not multiples of any tile
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-8, 8);
  std::vector<std::int8_t> wq(static_cast<std::size_t>(kN * kK)),
      xq(static_cast<std::size_t>(kM * kK));
  for (auto& v : wq) v = static_cast<std::int8_t>(small(rng));
  for (auto& v : xq) v = static_cast<std::int8_t>(small(rng));
  DeviceBuffer<std::int8_t> w(wq.size()), x(xq.size());
  w.upload(wq.data(), wq.size());
  x.upload(xq.data(), xq.size());
  auto gemm = make_cutlass_dense_gemm(ctx, Precision::INT8, kN, kK, w.get());
  EXPECT_EQ(gemm->kind(), GemmBackendKind::CutlassDense);
  EXPECT_EQ(gemm->output_type(), DType::BF16);
  EXPECT_TRUE(gemm->fuses_dequantize());
  EXPECT_THROW(make_cutlass_dense_gemm(ctx, Precision::INT8, kN, 520, w.get()), InvalidArgument);
  EXPECT_THROW(make_cutlass_dense_gemm(ctx, Precision::BF16, kN, kK, w.get()), InvalidArgument);

  DeviceBuffer<float> acc(static_cast<std::size_t>(kM * kN));
  DeviceBuffer<float> ones_x(static_cast<std::size_t>(kM)), ones_w(static_cast<std::size_t>(kN));
  const std::vector<float> one_m(static_cast<std::size_t>(kM), 1.0f),
      one_n(static_cast<std::size_t>(kN), 1.0f);
  ones_x.upload(one_m.data(), one_m.size());
  ones_w.upload(one_n.data(), one_n.size());
  EXPECT_THROW(gemm->run(x.get(), acc.get(), kM, nullptr), InvalidArgument);

  SearchOptions options;
  options.warmup = 1;
  options.reps = 3;
  const auto timings = gemm->search(kM, x.get(), acc.get(), nullptr, options);
  ASSERT_EQ(timings.size(), cutlass_dense_configs(Precision::INT8).size());
  for (const auto& t : timings) EXPECT_TRUE(t.ok) << t.algo.describe() << ": " << t.error;
  ASSERT_TRUE(gemm->prepared_algo(kM).has_value());

  // Unit scales make y = bf16(acc): the exact host sum rounded to BF16 as the epilogue does.
  std::vector<std::uint16_t> y(static_cast<std::size_t>(kM * kN));
  for (int config = 0; config < static_cast<int>(timings.size()); ++config) {
    gemm->prepare(kM, GemmAlgo{config, 1, 0, -1, {}});
    const std::int64_t allocations = gemm_device_allocations();
    gemm->run_dequantized(x.get(), ones_x.get(), ones_w.get(), nullptr, acc.get(), DType::BF16, kM,
                          nullptr);
    SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
    EXPECT_EQ(gemm_device_allocations(), allocations) << "run allocated";
    SLIDESPARSE_CHECK_CUDA(
        cudaMemcpy(y.data(), acc.get(), y.size() * sizeof(std::uint16_t), cudaMemcpyDeviceToHost));
    int reported = 0;
    for (std::int64_t r = 0; r < kM; ++r)
      for (std::int64_t c = 0; c < kN; ++c) {
        std::int32_t sum = 0;
        for (std::int64_t j = 0; j < kK; ++j)
          sum += static_cast<std::int32_t>(xq[static_cast<std::size_t>(r * kK + j)]) *
                 wq[static_cast<std::size_t>(c * kK + j)];
        const std::uint16_t want = float_to_bf16(static_cast<float>(sum));
        if (y[static_cast<std::size_t>(r * kN + c)] != want && reported++ < 5)
          ADD_FAILURE() << "config " << config << " y[" << r << "," << c
                        << "] = " << bf16_to_float(y[static_cast<std::size_t>(r * kN + c)])
                        << ", expected " << sum;
      }
  }
  EXPECT_THROW(gemm->prepare(kM, GemmAlgo{99, 1, 0, -1, {}}), DeviceError);
}

// Every configuration of both precisions (FP8 configuration 1 runs nowhere else) against the
// CPU bit for bit on small integers, with per-token and per-channel scales and a bias, at M = 1
// and 300 on N = 264, K = 528 (partial tiles in every dimension).
class CutlassDenseGemmExact : public ::testing::TestWithParam<Precision> {};

TEST_P(CutlassDenseGemmExact, EveryConfigurationMatchesTheCpuBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const Precision precision = GetParam();
  test::SmallIntegerGemm p;
  p.n = 264;
  p.k = 528;
  p.w = test::small_integers(static_cast<std::size_t>(p.n * p.k), 29);
  test::fill_channel_vectors(p);
  const std::vector<std::uint8_t> codes = test::operand_codes(p.w, precision);
  DeviceBuffer<std::uint8_t> w(codes.size());
  w.upload(codes.data(), codes.size());
  auto gemm = make_cutlass_dense_gemm(ctx, precision, p.n, p.k, w.get());
  test::expect_every_configuration_exact(*gemm, precision, p,
                                         cutlass_dense_configs(precision).size(), {1, 300});
}

INSTANTIATE_TEST_SUITE_P(Int8AndFp8, CutlassDenseGemmExact,
                         ::testing::Values(Precision::INT8, Precision::FP8),
                         [](const ::testing::TestParamInfo<Precision>& info) {
                           return std::string(precision_name(info.param));
                         });

}  // namespace
}  // namespace slidesparse
