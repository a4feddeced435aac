// The lifting variant of our CUTLASS 2:4 GEMM (cutlass_lift): fed the un-lifted quantized rows,
// it must give exactly what the CPU computes on their lift (DESIGN.md §4), for every
// configuration and pattern, INT8 and FP8 bit for bit on small integers; and the layer built on
// it must match the CPU reference linear (INT8 bit for bit, FP8 within kFp8Tolerance) and the
// layer that lifts in the quantize kernel. Skipped where the backend is not built or the GPU is
// not cc 9.0.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cutlass_test_util.hpp"
#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/reference_linear.hpp"

namespace slidesparse {
namespace {

using test::expect_matches;
using test::make_problem;
using test::Problem;
using test::run_layer;

using test::round_up;

LinearOptions lift_options(std::int64_t max_m) {
  return test::cutlass_layer_options(max_m, GemmBackendKind::CutlassSparseLift);
}

TEST(CutlassLiftRules, NameRequirementsAndOutput) {
  EXPECT_STREQ(backend_name(GemmBackendKind::CutlassSparseLift), "cutlass_lift");
  EXPECT_EQ(parse_backend("cutlass_lift"), GemmBackendKind::CutlassSparseLift);
  for (Precision p : {Precision::INT8, Precision::FP8}) {
    const GemmRequirements req = gemm_requirements(p, GemmBackendKind::CutlassSparseLift);
    EXPECT_EQ(req.m_multiple, 1);
    EXPECT_EQ(req.n_multiple, 32);
    EXPECT_EQ(req.k_multiple, 32);
    EXPECT_EQ(gemm_output_type(p, GemmBackendKind::CutlassSparseLift), DType::BF16);
    EXPECT_EQ(cutlass_lift_configs(p).size(), cutlass_sparse_available() ? 3u : 0u);
  }
  EXPECT_THROW(gemm_requirements(Precision::FP16, GemmBackendKind::CutlassSparseLift),
               InvalidArgument);
}

// ---- the Gemm: every configuration and pattern, exactly ----------------------------------------

// The lifting GEMM of N small-integer weight rows (2:4 on the lifted width), fed rows of
// raw_k columns at stride raw_ld, against the CPU on their lift, for each M: every
// configuration, or only `only_config`.
void expect_lift_gemm_exact(GemmContext& ctx, Precision precision, const Pattern& pattern,
                            std::int64_t n, std::int64_t raw_k, std::int64_t raw_ld,
                            const std::vector<std::int64_t>& ms, int only_config = -1) {
  test::SmallIntegerGemm p;
  p.n = n;
  p.k = round_up(pattern.k_slide(raw_k), 32);
  const std::vector<std::uint8_t> codes = test::mixed_two_four_weights(p, precision);
  DeviceBuffer<std::uint8_t> w(codes.size());
  w.upload(codes.data(), codes.size());
  auto gemm = make_cutlass_lift_gemm(ctx, precision, p.n, p.k, w.get(), pattern, raw_k, raw_ld);
  EXPECT_EQ(gemm->kind(), GemmBackendKind::CutlassSparseLift);
  EXPECT_TRUE(gemm->lifts_input());
  EXPECT_EQ(gemm->input_k(), raw_k);
  EXPECT_EQ(gemm->input_ld(), raw_ld);
  test::expect_every_configuration_exact(*gemm, precision, p, cutlass_lift_configs(precision).size(),
                                         ms, &pattern, only_config);
}

using ExactCase = std::tuple<Precision, const char*>;
class CutlassLiftGemmExact : public ::testing::TestWithParam<ExactCase> {};

// Raw K = 517: not a multiple of any group, so the lift's last group reads past K (zeros),
// and the lifted width is padded to the K multiple of 32 (a partial last K tile). N = 320:
// three weight tiles. M = 1 and 300 (a partial token tile). The K tiles of 6:8 start inside a
// group (128 lifted columns are 10⅔ groups of 12), so their windows start at raw offsets 0, 8
// and 4 in turn, and the third tile's group at raw column 168, off the 16-column grid of TMA
// boxes.
TEST_P(CutlassLiftGemmExact, EveryConfigurationMatchesTheCpuOnTheLiftBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const auto [precision, pattern_name] = GetParam();
  expect_lift_gemm_exact(ctx, precision, Pattern::parse(pattern_name), 320, 517,
                         round_up(517, 16), {1, 300});
}

// A decode shape with many K tiles: Qwen2.5-7B's hidden size lifted by the pattern.
TEST_P(CutlassLiftGemmExact, ALongKAtDecodeSizesMatchesTheCpuBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const auto [precision, pattern_name] = GetParam();
  expect_lift_gemm_exact(ctx, precision, Pattern::parse(pattern_name), 256, 3584, 3584, {64});
}

std::vector<ExactCase> exact_cases() {
  std::vector<ExactCase> cases;
  for (Precision p : {Precision::INT8, Precision::FP8})
    for (const char* pattern : {"2_4", "2_6", "2_8", "2_10", "2_16", "2_inf"})
      cases.emplace_back(p, pattern);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Int8AndFp8, CutlassLiftGemmExact, ::testing::ValuesIn(exact_cases()),
                         [](const ::testing::TestParamInfo<ExactCase>& info) {
                           return std::string(precision_name(std::get<0>(info.param))) + "_" +
                                  std::get<1>(info.param);
                         });

// Each configuration on its own, in its own test: a kernel fault leaves the CUDA context
// unusable, and running one configuration per test names the one that faults. 6:8, whose K
// tiles start inside groups, at raw K = 517 and M = 300.
using ConfigCase = std::tuple<Precision, int>;
class CutlassLiftGemmConfig : public ::testing::TestWithParam<ConfigCase> {};

TEST_P(CutlassLiftGemmConfig, MatchesTheCpuOnTheLiftBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const auto [precision, config] = GetParam();
  expect_lift_gemm_exact(ctx, precision, Pattern::parse("6:8"), 320, 517, round_up(517, 16), {300},
                         config);
}

INSTANTIATE_TEST_SUITE_P(Int8AndFp8, CutlassLiftGemmConfig,
                         ::testing::Combine(::testing::Values(Precision::INT8, Precision::FP8),
                                            ::testing::Values(0, 1, 2)),
                         [](const ::testing::TestParamInfo<ConfigCase>& info) {
                           return std::string(precision_name(std::get<0>(info.param))) + "_config" +
                                  std::to_string(std::get<1>(info.param));
                         });

TEST(CutlassLiftGemm, RejectsBadInputShapes) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const Pattern pattern = Pattern::parse("6:8");
  constexpr std::int64_t kN = 64, kK = 192;  // the lift of 128 raw columns
  DeviceBuffer<std::int8_t> w(kN * kK);
  w.fill_zero(nullptr);
  EXPECT_NO_THROW(make_cutlass_lift_gemm(ctx, Precision::INT8, kN, kK, w.get(), pattern, 128, 128));
  // A row stride that is not a multiple of 16, or below raw K.
  EXPECT_THROW(make_cutlass_lift_gemm(ctx, Precision::INT8, kN, kK, w.get(), pattern, 120, 120),
               InvalidArgument);
  EXPECT_THROW(make_cutlass_lift_gemm(ctx, Precision::INT8, kN, kK, w.get(), pattern, 128, 112),
               InvalidArgument);
  // Weights narrower than the lift of raw K.
  EXPECT_THROW(make_cutlass_lift_gemm(ctx, Precision::INT8, kN, kK, w.get(), pattern, 144, 144),
               InvalidArgument);
  EXPECT_THROW(make_cutlass_lift_gemm(ctx, Precision::BF16, kN, kK, w.get(), pattern, 128, 128),
               InvalidArgument);
}

// ---- the layer ---------------------------------------------------------------------------------

using LayerCase = std::tuple<Precision, const char*>;
class CutlassLiftLayer : public ::testing::TestWithParam<LayerCase> {};

// Against the CPU reference on the slid weights, and (INT8) bit for bit against the layer that
// lifts in its quantize kernel. Ragged K (100, 200), N with and without padding, M = 1, 37, 300.
TEST_P(CutlassLiftLayer, EqualsTheCpuReferenceAndTheQuantizeKernelsLift) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const auto [precision, pattern_name] = GetParam();
  const Pattern pattern = Pattern::parse(pattern_name);
  for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{96, 100}, {50, 200}}) {
    const Problem p = make_problem(300, n, k, static_cast<std::uint64_t>(n * k + 1));
    const PackedLinear packed = pack_linear(p.w.data(), n, k, p.bias.data(), precision, pattern,
                                            PruneMode::Magnitude, "test.weight");
    LinearOptions options = lift_options(300);
    options.build_dense = false;
    SlideSparseLinear lifting(ctx, packed, options);
    ASSERT_TRUE(lifting.sparse_gemm()->lifts_input());
    options.sparse_backend = GemmBackendKind::CutlassSparse;
    SlideSparseLinear lifted_first(ctx, packed, options);
    for (const std::int64_t m : {1, 37, 300}) {
      const std::string what = std::string(precision_name(precision)) + " " + pattern_name +
                               " N=" + std::to_string(n) + " K=" + std::to_string(k) +
                               " M=" + std::to_string(m);
      const auto ref = reference_linear_sparse(p.x.data(), m, k, test::slid_matrix(packed),
                                               pattern, p.bias.data());
      const auto y = run_layer(lifting, p, m, LinearPath::Sparse);
      expect_matches(y, ref, precision, what + " cutlass_lift");
      if (precision == Precision::INT8) {
        EXPECT_EQ(y, run_layer(lifted_first, p, m, LinearPath::Sparse)) << what;
      }
    }
  }
}

std::vector<LayerCase> layer_cases() {
  std::vector<LayerCase> cases;
  for (Precision p : {Precision::INT8, Precision::FP8})
    for (const char* pattern : {"2_6", "2_8", "2_16", "2_inf"}) cases.emplace_back(p, pattern);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Int8AndFp8, CutlassLiftLayer, ::testing::ValuesIn(layer_cases()),
                         [](const ::testing::TestParamInfo<LayerCase>& info) {
                           return std::string(precision_name(std::get<0>(info.param))) + "_" +
                                  std::get<1>(info.param);
                         });

// Qwen2.5-7B's down projection at M = 65536 with 6:8 through the lifting layer: the un-lifted
// INT8 X is 1.24e9 bytes, its rows at 64-bit offsets past 2^31 in the BF16 input.
TEST(CutlassLiftLarge, Qwen25_7BDownProjectionAtM65536) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  if (query_device().memory_bytes < (std::uint64_t{24} << 30)) GTEST_SKIP() << "needs 24 GiB";
  std::mt19937_64 rng(7);
  const test::LargeDownProjection down = test::large_down_projection(rng);
  LinearOptions options = lift_options(down.kM);
  options.build_dense = false;
  SlideSparseLinear layer(ctx, down.packed, options);
  layer.prepare({down.kM});
  test::expect_large_down_projection_matches(layer, down, rng);
}

}  // namespace
}  // namespace slidesparse
