// Our CUTLASS sm_90a 2:4 GEMM with the dequantization in its epilogue, against the CPU
// reference linear on slid weights: bit for bit for INT8 (the epilogue rounds exactly as the
// reference: fma(float(acc), scale_x·scale_w, bias), then BF16 round-to-nearest), and within
// kFp8Tolerance relative L2 for FP8 (the tensor cores sum FP8 products in their own order and
// precision). Skipped where the backend is not built or the GPU is not cc 9.0.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
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

#ifdef SLIDESPARSE_HAVE_CUTLASS
#include "../../src/cutlass/cutlass_sparse_kernels.hpp"  // compressed_sizes: host code only
#endif

namespace slidesparse {
namespace {

using test::expect_matches;
using test::make_problem;
using test::Problem;
using test::run_layer;
using test::slid_matrix;

LinearOptions cutlass_options(std::int64_t max_m) {
  return test::cutlass_layer_options(max_m, GemmBackendKind::CutlassSparse);
}

// ---- rules (host only) -------------------------------------------------------------------------

TEST(CutlassSparseRules, NameRequirementsAndOutput) {
  EXPECT_STREQ(backend_name(GemmBackendKind::CutlassSparse), "cutlass");
  EXPECT_EQ(parse_backend("cutlass"), GemmBackendKind::CutlassSparse);
  for (Precision p : {Precision::INT8, Precision::FP8}) {
    const GemmRequirements req = gemm_requirements(p, GemmBackendKind::CutlassSparse);
    EXPECT_EQ(req.m_multiple, 1);
    EXPECT_EQ(req.n_multiple, 32);
    EXPECT_EQ(req.k_multiple, 32);
    EXPECT_EQ(gemm_output_type(p, GemmBackendKind::CutlassSparse), DType::BF16);
    EXPECT_EQ(cutlass_sparse_configs(p).size(), cutlass_sparse_available() ? 3u : 0u);
  }
  EXPECT_THROW(gemm_requirements(Precision::BF16, GemmBackendKind::CutlassSparse), InvalidArgument);
  EXPECT_TRUE(cutlass_sparse_configs(Precision::FP16).empty());
}

// The buffers the compressor writes, for a shape the factory accepts (N·K < 2^31) but past
// 2^29, where CUTLASS's get_compressed_tensor_A_bytes() overflows its int product (rows ×
// columns × 8 bits): kept values N × K/2 bytes, metadata 4 bits per group of 4 on the 64-row,
// 128-column padded grid.
TEST(CutlassSparseRules, CompressedSizesHoldForLargeWeights) {
#ifdef SLIDESPARSE_HAVE_CUTLASS
  for (Precision p : {Precision::INT8, Precision::FP8}) {
    for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{96, 160},
                               {32768, 32768},
                               {27648, 73728}}) {
      const cutlass_sparse::CompressedSizes sizes = cutlass_sparse::compressed_sizes(p, n, k);
      const std::int64_t n_padded = (n + 63) / 64 * 64, k_padded = (k + 127) / 128 * 128;
      EXPECT_EQ(sizes.values_bytes, static_cast<std::size_t>(n * (k / 2))) << n << "x" << k;
      EXPECT_EQ(sizes.metadata_bytes, static_cast<std::size_t>(n_padded * k_padded / 8))
          << n << "x" << k;
    }
  }
#else
  GTEST_SKIP() << "this build has no CUTLASS sparse GEMM";
#endif
}

// ---- the layer -------------------------------------------------------------------------------

struct LayerCase {
  Precision precision;
  const char* pattern;
};

class CutlassSparseLayer : public ::testing::TestWithParam<LayerCase> {};

TEST_P(CutlassSparseLayer, EqualsTheCpuReference) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const auto [precision, pattern_name] = GetParam();
  const Pattern pattern = Pattern::parse(pattern_name);
  // Ragged K (not a multiple of L, 8 or 16); N = 96 runs without N padding (Y written in
  // place), N = 50 pads to 64 (Y through the staging copy). M = 1, 37 (not a multiple of any
  // tile) and 300 (two 256-token tiles, three 128-token ones).
  for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{96, 100}, {50, 200}}) {
    const Problem p = make_problem(300, n, k, static_cast<std::uint64_t>(n * k));
    const PackedLinear packed = pack_linear(p.w.data(), n, k, p.bias.data(), precision, pattern,
                                            PruneMode::Magnitude, "test.weight");
    SlideSparseLinear layer(ctx, packed, cutlass_options(300));
    ASSERT_TRUE(layer.sparse_gemm()->fuses_dequantize());
    for (const std::int64_t m : {1, 37, 300}) {
      const std::string what = std::string(precision_name(precision)) + " " + pattern_name +
                               " N=" + std::to_string(n) + " K=" + std::to_string(k) +
                               " M=" + std::to_string(m);
      const auto ref =
          reference_linear_sparse(p.x.data(), m, k, slid_matrix(packed), pattern, p.bias.data());
      const auto sparse = run_layer(layer, p, m, LinearPath::Sparse);
      expect_matches(sparse, ref, precision, what + " cutlass");
      if (precision == Precision::INT8) {
        // The dense path (cuBLASLt + dequantize kernel) on the same quantized values.
        EXPECT_EQ(sparse, run_layer(layer, p, m, LinearPath::Dense)) << what;
      }
    }
  }
}

std::vector<LayerCase> layer_cases() {
  std::vector<LayerCase> cases;
  for (Precision p : {Precision::INT8, Precision::FP8})
    for (const char* pattern : {"2_4", "2_8", "2_16", "2_inf"}) cases.push_back({p, pattern});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Int8AndFp8, CutlassSparseLayer, ::testing::ValuesIn(layer_cases()),
                         [](const ::testing::TestParamInfo<LayerCase>& info) {
                           return std::string(precision_name(info.param.precision)) + "_" +
                                  info.param.pattern;
                         });

TEST(CutlassSparseLayerStages, RunGemmThenDequantizeEqualsForward) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  constexpr std::int64_t kM = 37, kN = 50, kK = 200;
  const Problem p = make_problem(kM, kN, kK, 11);
  const PackedLinear packed = pack_linear(p.w.data(), kN, kK, p.bias.data(), Precision::INT8,
                                          Pattern::parse("6:8"), PruneMode::Magnitude, "w");
  SlideSparseLinear layer(ctx, packed, cutlass_options(kM));
  DeviceBuffer<std::uint16_t> x(static_cast<std::size_t>(kM * kK)),
      y(static_cast<std::size_t>(kM * kN));
  x.upload(p.x_bits.data(), x.size());
  y.fill_bytes(0xCD, nullptr);
  layer.quantize_input(x.get(), kM, LinearPath::Sparse, nullptr);
  layer.run_gemm(kM, LinearPath::Sparse, nullptr);
  layer.dequantize(kM, y.get(), LinearPath::Sparse, nullptr);
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<std::uint16_t> staged(y.size());
  y.download(staged.data(), staged.size());
  EXPECT_EQ(staged, run_layer(layer, p, kM, LinearPath::Sparse));
}

// N = 96 needs no padding, so an aligned y receives the GEMM's TMA stores directly; a y that
// is only 2-byte aligned must go through the staging copy and give the same values.
TEST(CutlassSparseLayerStages, UnalignedOutputGivesTheSameValues) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  constexpr std::int64_t kM = 37, kN = 96, kK = 200;
  const Problem p = make_problem(kM, kN, kK, 13);
  const PackedLinear packed = pack_linear(p.w.data(), kN, kK, p.bias.data(), Precision::INT8,
                                          Pattern::parse("6:8"), PruneMode::Magnitude, "w");
  SlideSparseLinear layer(ctx, packed, cutlass_options(kM));
  const auto aligned = run_layer(layer, p, kM, LinearPath::Sparse);
  DeviceBuffer<std::uint16_t> x(static_cast<std::size_t>(kM * kK)),
      y(static_cast<std::size_t>(kM * kN + 1));
  x.upload(p.x_bits.data(), x.size());
  y.fill_bytes(0xCD, nullptr);
  layer.forward(x.get(), kM, y.get() + 1, nullptr, LinearPath::Sparse);
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<std::uint16_t> shifted(y.size());
  y.download(shifted.data(), shifted.size());
  EXPECT_EQ(std::vector<std::uint16_t>(shifted.begin() + 1, shifted.end()), aligned);
  EXPECT_EQ(shifted.front(), 0xCDCD) << "wrote before y";
}

// ---- the Gemm --------------------------------------------------------------------------------

// Slid INT8 weights padded to the backend's multiples, on the device.
struct DeviceWeights {
  std::int64_t n = 0, k = 0;
  std::vector<std::uint8_t> host;
  DeviceBuffer<std::uint8_t> device;
};

DeviceWeights slid_weights(const PackedLinear& packed) {
  const GemmRequirements req = gemm_requirements(packed.precision, GemmBackendKind::CutlassSparse);
  DeviceWeights w;
  w.n = (packed.n + req.n_multiple - 1) / req.n_multiple * req.n_multiple;
  w.k = (packed.k_slide() + req.k_multiple - 1) / req.k_multiple * req.k_multiple;
  w.host.assign(static_cast<std::size_t>(w.n * w.k), 0);
  for (std::int64_t r = 0; r < packed.n; ++r)
    std::memcpy(&w.host[static_cast<std::size_t>(r * w.k)],
                &packed.weight[static_cast<std::size_t>(r * packed.k_slide())],
                static_cast<std::size_t>(packed.k_slide()));
  w.device = DeviceBuffer<std::uint8_t>(w.host.size());
  w.device.upload(w.host.data(), w.host.size());
  return w;
}

TEST(CutlassSparseGemm, SearchTimesEveryConfigurationAndPlansDoNotAllocate) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  constexpr std::int64_t kM = 300, kN = 256, kK = 512;
  const Problem p = make_problem(kM, kN, kK, 5);
  const PackedLinear packed = pack_linear(p.w.data(), kN, kK, nullptr, Precision::INT8,
                                          Pattern::parse("2:4"), PruneMode::Magnitude, "w");
  const DeviceWeights w = slid_weights(packed);
  auto gemm = make_cutlass_sparse_gemm(ctx, Precision::INT8, w.n, w.k, w.device.get());
  EXPECT_EQ(gemm->kind(), GemmBackendKind::CutlassSparse);
  EXPECT_EQ(gemm->output_type(), DType::BF16);
  EXPECT_TRUE(gemm->fuses_dequantize());

  // Quantized activations with small integers; unit scales make y = bf16(acc).
  std::vector<std::int8_t> xq(static_cast<std::size_t>(kM * w.k));
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> small(-8, 8);
  for (auto& v : xq) v = static_cast<std::int8_t>(small(rng));
  DeviceBuffer<std::int8_t> x(xq.size());
  x.upload(xq.data(), xq.size());
  DeviceBuffer<float> acc(static_cast<std::size_t>(kM * w.n));  // room for any output type
  DeviceBuffer<float> ones_x(static_cast<std::size_t>(kM)), ones_w(static_cast<std::size_t>(w.n));
  const std::vector<float> one_m(static_cast<std::size_t>(kM), 1.0f),
      one_n(static_cast<std::size_t>(w.n), 1.0f);
  ones_x.upload(one_m.data(), one_m.size());
  ones_w.upload(one_n.data(), one_n.size());

  EXPECT_THROW(gemm->run(x.get(), acc.get(), kM, nullptr), InvalidArgument);
  EXPECT_THROW(gemm->run_dequantized(x.get(), ones_x.get(), ones_w.get(), nullptr, acc.get(),
                                     DType::F16, kM, nullptr),
               InvalidArgument);

  SearchOptions options;
  options.warmup = 1;
  options.reps = 3;
  const auto timings = gemm->search(kM, x.get(), acc.get(), nullptr, options);
  ASSERT_EQ(timings.size(), cutlass_sparse_configs(Precision::INT8).size());
  for (const auto& t : timings) EXPECT_TRUE(t.ok) << t.algo.describe() << ": " << t.error;
  ASSERT_TRUE(gemm->prepared_algo(kM).has_value());
  EXPECT_EQ(*gemm->prepared_algo(kM), timings.front().algo);

  // Every configuration gives the exact accumulators, checked against the host product.
  std::vector<std::uint16_t> y(static_cast<std::size_t>(kM * w.n));
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
      for (std::int64_t c = 0; c < w.n; ++c) {
        std::int32_t sum = 0;
        for (std::int64_t j = 0; j < w.k; ++j)
          sum += static_cast<std::int32_t>(xq[static_cast<std::size_t>(r * w.k + j)]) *
                 static_cast<std::int8_t>(w.host[static_cast<std::size_t>(c * w.k + j)]);
        const std::uint16_t want = float_to_bf16(static_cast<float>(sum));
        if (y[static_cast<std::size_t>(r * w.n + c)] != want && reported++ < 5)
          ADD_FAILURE() << "config " << config << " y[" << r << "," << c
                        << "] = " << bf16_to_float(y[static_cast<std::size_t>(r * w.n + c)])
                        << ", expected " << sum;
      }
  }
  EXPECT_THROW(gemm->prepare(kM, GemmAlgo{99, 1, 0, -1, {}}), DeviceError);
}

// Every configuration of both precisions (FP8 configuration 1 runs nowhere else) against the
// CPU bit for bit, at M = 1 (one token tile: the 1×2 cluster's second CTA has no tokens) and
// 300, on N = 320 (three weight tiles: the 2×1 cluster's last one has no rows) and K = 544 (a
// partial last K tile). The 2:4 groups hold two, one or no values; for FP8, some zeros are -0.
class CutlassSparseGemmExact : public ::testing::TestWithParam<Precision> {};

// Every configuration on mixed 2:4 weights of N × K, bit for bit against the CPU at each M.
void expect_every_configuration_exact_on(Precision precision, std::int64_t n, std::int64_t k,
                                         const std::vector<std::int64_t>& ms) {
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  test::SmallIntegerGemm p;
  p.n = n;
  p.k = k;
  const std::vector<std::uint8_t> codes = test::mixed_two_four_weights(p, precision);
  DeviceBuffer<std::uint8_t> w(codes.size());
  w.upload(codes.data(), codes.size());
  auto gemm = make_cutlass_sparse_gemm(ctx, precision, p.n, p.k, w.get());
  test::expect_every_configuration_exact(*gemm, precision, p,
                                         cutlass_sparse_configs(precision).size(), ms);
}

TEST_P(CutlassSparseGemmExact, EveryConfigurationMatchesTheCpuBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  expect_every_configuration_exact_on(GetParam(), 320, 544, {1, 300});
}

// A decode shape: two weight tiles and 64 K tiles, so the stream-K configuration splits each
// tile's K loop over many SMs and reduces in the workspace. The search runs every
// configuration several times before the checked run, so stale stream-K locks would show.
TEST_P(CutlassSparseGemmExact, StreamKSplitsOfALongKMatchTheCpuBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  expect_every_configuration_exact_on(GetParam(), 256, 8192, {1, 64});
}

INSTANTIATE_TEST_SUITE_P(Int8AndFp8, CutlassSparseGemmExact,
                         ::testing::Values(Precision::INT8, Precision::FP8),
                         [](const ::testing::TestParamInfo<Precision>& info) {
                           return std::string(precision_name(info.param));
                         });

TEST(CutlassSparseGemm, RejectsWeightsThatAreNotTwoToFourAndSixteenBitPrecisions) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  constexpr std::int64_t kN = 64, kK = 64;
  std::vector<std::int8_t> host(static_cast<std::size_t>(kN * kK), 0);
  for (std::size_t i = 0; i < host.size(); i += 4) host[i] = host[i + 1] = 1;
  host[2] = 1;  // the first group of 4 of row 0 holds three values
  DeviceBuffer<std::int8_t> w(host.size());
  w.upload(host.data(), host.size());
  EXPECT_THROW(make_cutlass_sparse_gemm(ctx, Precision::INT8, kN, kK, w.get()), InvalidArgument);
  EXPECT_THROW(make_cutlass_sparse_gemm(ctx, Precision::BF16, kN, kK, w.get()), InvalidArgument);
  EXPECT_THROW(make_cutlass_sparse_gemm(ctx, Precision::INT8, kN, 48, w.get()), InvalidArgument);
}

// E4M3 -0 (0x80) in a group that already keeps two values: a zero for the product, so the
// 2:4 check must not count it and the compressor must not keep it as a third value.
TEST(CutlassSparseGemm, Fp8NegativeZerosAreZeros) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  constexpr std::int64_t kM = 37, kN = 64, kK = 128;
  const Problem p = make_problem(kM, kN, kK, 9);
  PackedLinear packed = pack_linear(p.w.data(), kN, kK, p.bias.data(), Precision::FP8,
                                    Pattern::parse("2:4"), PruneMode::Magnitude, "w");
  const auto ref = reference_linear_sparse(p.x.data(), kM, kK, slid_matrix(packed),
                                           Pattern::parse("2:4"), p.bias.data());
  int flipped = 0;
  for (auto& byte : packed.weight)
    if (byte == 0) {
      byte = 0x80;
      ++flipped;
    }
  ASSERT_GT(flipped, 0);
  LinearOptions options = cutlass_options(kM);
  options.build_dense = false;  // only the CUTLASS path reads the flipped bytes
  SlideSparseLinear layer(ctx, packed, options);
  expect_matches(run_layer(layer, p, kM, LinearPath::Sparse), ref, Precision::FP8,
                 "fp8 with -0 weights");
}

TEST(CutlassSparseGemm, RefusesGpusOtherThanCc90) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  if (!cutlass_sparse_available()) GTEST_SKIP() << "this build has no CUTLASS sparse GEMM";
  if (ctx.cc_major() == 9 && ctx.cc_minor() == 0) GTEST_SKIP() << "this GPU is cc 9.0";
  DeviceBuffer<std::int8_t> w(64 * 64);
  w.fill_zero(nullptr);
  EXPECT_THROW(make_cutlass_sparse_gemm(ctx, Precision::INT8, 64, 64, w.get()), DeviceError);
}

// Qwen2.5-7B's down projection at M = 65536 with 6:8 (K = 18944 → K_slide = 28416): X holds
// 2.5e9 bytes and the lifted INT8 activations 1.86e9, the GEMM's B operand. Rows are checked on
// a sample: the first, those around the row where X's byte offset passes 2^31, and the last.
TEST(CutlassSparseLarge, Qwen25_7BDownProjectionAtM65536) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  if (query_device().memory_bytes < (std::uint64_t{24} << 30)) GTEST_SKIP() << "needs 24 GiB";
  std::mt19937_64 rng(7);
  const test::LargeDownProjection down = test::large_down_projection(rng);
  ASSERT_EQ(down.pattern.k_slide(down.kK), 28416);
  LinearOptions options = cutlass_options(down.kM);
  options.build_dense = false;
  SlideSparseLinear layer(ctx, down.packed, options);
  layer.prepare({down.kM});
  test::expect_large_down_projection_matches(layer, down, rng);
}

}  // namespace
}  // namespace slidesparse
