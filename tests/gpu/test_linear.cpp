// The GPU linear layer against the CPU reference linear: quantize(+lift) → GEMM →
// dequantize on the GPU equals reference_linear_sparse / _dense on the CPU — bit for bit
// for INT8 (int32 accumulation is exact), within a stated tolerance for FP8, BF16 and FP16
// (the libraries sum in their own order; BF16/FP16 results are also rounded once more).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/reference_linear.hpp"

namespace slidesparse {
namespace {

using test::slid_matrix;

// ‖y − ref‖ / ‖ref‖ allowed for float GEMMs: FP8 products are exact but Hopper's FP8
// accumulation keeps ~14 bits and the BF16 output rounds to 2^-9; BF16/FP16 GEMMs round
// their 16-bit result once before the bias is added.
constexpr double kFloatTolerance = 1e-2;

struct Problem {
  std::int64_t m, n, k;
  std::vector<float> w, bias, x;      // x holds values exactly representable in `activation`
  std::vector<std::uint16_t> x_bits;  // X as BF16/F16 bits
};

DType activation_for(Precision p) { return p == Precision::FP16 ? DType::F16 : DType::BF16; }

Problem make_problem(std::int64_t m, std::int64_t n, std::int64_t k, DType activation,
                     std::uint64_t seed) {
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
    const float v = normal(rng);
    p.x_bits[i] = activation == DType::F16 ? float_to_fp16(v) : float_to_bf16(v);
    p.x[i] = activation == DType::F16 ? fp16_to_float(p.x_bits[i]) : bf16_to_float(p.x_bits[i]);
  }
  return p;
}

// Runs the layer on the GPU along `path`; returns Y as BF16/F16 bits.
std::vector<std::uint16_t> run_layer(SlideSparseLinear& layer, const Problem& p, LinearPath path) {
  DeviceBuffer<std::uint16_t> x(p.x_bits.size()), y(static_cast<std::size_t>(p.m * p.n));
  x.upload(p.x_bits.data(), p.x_bits.size());
  y.fill_bytes(0xCD, nullptr);
  layer.forward(x.get(), p.m, y.get(), nullptr, path);
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<std::uint16_t> out(static_cast<std::size_t>(p.m * p.n));
  y.download(out.data(), out.size());
  return out;
}

QuantizedMatrix dense_matrix(const PackedLinear& packed) {
  return {packed.precision, packed.n, packed.k, unpacked_weight(packed), packed.scale};
}

void expect_matches(const std::vector<std::uint16_t>& got, const std::vector<float>& ref,
                    DType activation, Precision precision, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size());
  if (precision == Precision::INT8) {
    int reported = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const std::uint16_t expected =
          activation == DType::F16 ? float_to_fp16(ref[i]) : float_to_bf16(ref[i]);
      if (got[i] != expected && reported++ < 5)
        ADD_FAILURE() << what << ": y[" << i << "] bits " << got[i] << " expected " << expected;
    }
    return;
  }
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = activation == DType::F16 ? fp16_to_float(got[i]) : bf16_to_float(got[i]);
    ASSERT_TRUE(std::isfinite(g)) << what << ": y[" << i << "] not finite";
    diff += (g - ref[i]) * (g - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), kFloatTolerance) << what;
}

struct LinearCase {
  Precision precision;
  const char* pattern;
};

void PrintTo(const LinearCase& c, std::ostream* os) {
  *os << precision_name(c.precision) << " " << c.pattern;
}

class LinearLayerTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearLayerTest, SparseAndDensePathsEqualTheCpuReference) {
  SLIDESPARSE_REQUIRE_GPU();
  const auto [precision, pattern_name] = GetParam();
  if (precision == Precision::FP8 && !supports_fp8(query_device()))
    GTEST_SKIP() << "no FP8 on this GPU";
  const Pattern pattern = Pattern::parse(pattern_name);
  const DType activation = activation_for(precision);
  GemmContext ctx;
  // Ragged K (not a multiple of L, 8 or 16) and N (not a multiple of 32); M = 1 included.
  for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{96, 100}, {50, 200}}) {
    const Problem big = make_problem(300, n, k, activation, static_cast<std::uint64_t>(n * k));
    const PackedLinear packed = pack_linear(big.w.data(), n, k, big.bias.data(), precision, pattern,
                                            PruneMode::Magnitude, "test.weight");
    LinearOptions options;
    options.activation = activation;
    options.max_m = 300;
    SlideSparseLinear layer(ctx, packed, options);
    for (const std::int64_t m : {1, 37, 300}) {
      Problem p = big;
      p.m = m;
      p.x.resize(static_cast<std::size_t>(m * k));
      p.x_bits.resize(p.x.size());
      const std::string what = std::string(precision_name(precision)) + " " + pattern_name +
                               " N=" + std::to_string(n) + " K=" + std::to_string(k) +
                               " M=" + std::to_string(m);
      const auto ref_sparse =
          reference_linear_sparse(p.x.data(), m, k, slid_matrix(packed), pattern, p.bias.data());
      const auto ref_dense =
          reference_linear_dense(p.x.data(), m, dense_matrix(packed), p.bias.data());
      const auto sparse = run_layer(layer, p, LinearPath::Sparse);
      const auto dense = run_layer(layer, p, LinearPath::Dense);
      expect_matches(sparse, ref_sparse, activation, precision, what + " sparse");
      expect_matches(dense, ref_dense, activation, precision, what + " dense");
      if (precision == Precision::INT8) {
        EXPECT_EQ(sparse, dense) << what;
      }
    }
  }
}

std::vector<LinearCase> all_cases() {
  std::vector<LinearCase> cases;
  for (Precision p : {Precision::INT8, Precision::FP8, Precision::BF16, Precision::FP16})
    for (const char* pattern : {"2_4", "2_6", "2_8", "2_10", "2_16", "2_inf"})
      cases.push_back({p, pattern});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllPrecisionsAndPatterns, LinearLayerTest,
                         ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<LinearCase>& info) {
                           std::string name = std::string(precision_name(info.param.precision)) +
                                              "_" + info.param.pattern;
                           return name;
                         });

TEST(LinearLayer, RefusesMAboveItsCapacity) {
  SLIDESPARSE_REQUIRE_GPU();
  const Problem p = make_problem(8, 64, 64, DType::BF16, 3);
  const PackedLinear packed = pack_linear(p.w.data(), 64, 64, nullptr, Precision::INT8,
                                          Pattern::parse("6:8"), PruneMode::Magnitude, "w");
  GemmContext ctx;
  LinearOptions options;
  options.max_m = 8;
  SlideSparseLinear layer(ctx, packed, options);
  DeviceBuffer<std::uint16_t> x(16 * 64), y(16 * 64);
  EXPECT_THROW(layer.forward(x.get(), 9, y.get(), nullptr), InvalidArgument);
  EXPECT_THROW(layer.forward(x.get(), 0, y.get(), nullptr), InvalidArgument);
}

// Layers of different shapes sharing one LinearScratch (as a model's layers do) give the output
// of layers with buffers of their own, bit for bit (INT8), interleaved on one stream; the
// scratch holds the largest layer's buffers, not their sum.
TEST(LinearLayer, LayersSharingAScratchGiveTheirOwnResults) {
  SLIDESPARSE_REQUIRE_GPU();
  const Pattern pattern = Pattern::parse("6:8");
  const Problem small = make_problem(40, 64, 96, DType::BF16, 11);
  const Problem large = make_problem(40, 160, 256, DType::BF16, 12);
  const auto pack = [&](const Problem& p) {
    return pack_linear(p.w.data(), p.n, p.k, p.bias.data(), Precision::INT8, pattern,
                       PruneMode::Magnitude, "w");
  };
  const PackedLinear packed_small = pack(small), packed_large = pack(large);
  GemmContext ctx;
  LinearOptions own;
  own.max_m = 64;
  SlideSparseLinear own_small(ctx, packed_small, own), own_large(ctx, packed_large, own);
  LinearScratch scratch;
  LinearOptions shared = own;
  shared.scratch = &scratch;
  SlideSparseLinear shared_small(ctx, packed_small, shared);
  const std::uint64_t after_small = scratch.bytes();
  SlideSparseLinear shared_large(ctx, packed_large, shared);
  EXPECT_GT(scratch.bytes(), after_small);  // grown to the larger layer's needs
  SlideSparseLinear shared_small_again(ctx, packed_small, shared);
  const std::uint64_t after_all = scratch.bytes();
  for (LinearPath path : {LinearPath::Sparse, LinearPath::Dense}) {
    EXPECT_EQ(run_layer(shared_small, small, path), run_layer(own_small, small, path));
    EXPECT_EQ(run_layer(shared_large, large, path), run_layer(own_large, large, path));
    EXPECT_EQ(run_layer(shared_small_again, small, path), run_layer(own_small, small, path));
  }
  EXPECT_EQ(scratch.bytes(), after_all);  // running never grows it
}

// Qwen2.5-7B's down projection at M = 65536, where the reference system crashed with 32-bit
// index arithmetic: X holds 1.24e9 BF16 values (2.5e9 bytes, byte offsets past 2^31) and the
// lifted activations 1.86e9 INT8 values (6:8). Rows are checked on a sample: the first, those
// around the row where X's byte offset passes 2^31, and the last.
TEST(LinearLayerLarge, Qwen25_7BDownProjectionAtM65536) {
  SLIDESPARSE_REQUIRE_GPU();
  if (query_device().memory_bytes < (std::uint64_t{24} << 30)) GTEST_SKIP() << "needs 24 GiB";
  std::mt19937_64 rng(7);
  const test::LargeDownProjection down = test::large_down_projection(rng);
  GemmContext ctx;
  LinearOptions options;
  options.max_m = down.kM;
  options.build_dense = false;
  SlideSparseLinear layer(ctx, down.packed, options);
  test::expect_large_down_projection_matches(layer, down, rng);
}

}  // namespace
}  // namespace slidesparse
