// cuBLASLt with the dequantization in its epilogue (backend cublaslt_fused: FP8 E4M3, cc 9.0,
// outer-vector scales and a BF16 bias): the GEMM against the reference formula
// y = fma(acc, scale_x[m]·scale_w[n], bias[n]) on the same FP8 operands, its plans and search,
// and the layer's dense path on it against the CPU reference linear.
//
// Tolerance: ‖y − ref‖ / ‖ref‖ < 1e-2 (test::kFp8Tolerance, as every FP8 path). It is not bit
// for bit: Hopper's FP8 MMA keeps ~14 bits between promotions to FP32 (up to ~4e-3, the bound of
// test_gemm's FP8 accumulators), cuBLASLt applies the two scales in its own order, rounds the
// bias to BF16 (≤ 2^-9 of |bias|) and rounds y once to BF16 (≤ 2^-9). A layout error (the scale
// vectors swapped, D transposed) gives an error near 1. Where a scale is zero the output is the
// BF16 bias exactly, which is checked bit for bit.
// The rules and the automatic dense choice need no GPU; the rest skips without a cc 9.0 GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cutlass_test_util.hpp"
#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/reference_linear.hpp"
#include "slidesparse/tuning_db.hpp"

namespace slidesparse {
namespace {

using test::kFp8Tolerance;

// GTEST_SKIP()s unless the GPU is cc 9.0, where cuBLAS documents outer-vector scaling.
#define REQUIRE_OUTER_VECTOR_SCALING(ctx)                                                     \
  do {                                                                                        \
    if ((ctx).cc_major() != 9 || (ctx).cc_minor() != 0)                                       \
      GTEST_SKIP() << "cuBLASLt's outer-vector FP8 scaling runs on cc 9.0 only; this GPU is " \
                   << "cc " << (ctx).cc_major() << "." << (ctx).cc_minor();                   \
  } while (0)

// ---- rules and the automatic choice (no GPU) -----------------------------------------------

TEST(CublasLtFusedRules, NameRequirementsAndOutput) {
  EXPECT_STREQ(backend_name(GemmBackendKind::CublasLtFused), "cublaslt_fused");
  EXPECT_EQ(parse_backend("cublaslt_fused"), GemmBackendKind::CublasLtFused);
  const GemmRequirements req = gemm_requirements(Precision::FP8, GemmBackendKind::CublasLtFused);
  EXPECT_EQ(req.m_multiple, 1);
  EXPECT_EQ(req.n_multiple, 16);
  EXPECT_EQ(req.k_multiple, 16);
  EXPECT_EQ(gemm_output_type(Precision::FP8, GemmBackendKind::CublasLtFused), DType::BF16);
  for (Precision p : {Precision::INT8, Precision::BF16, Precision::FP16}) {
    try {
      gemm_requirements(p, GemmBackendKind::CublasLtFused);
      ADD_FAILURE() << precision_name(p) << " was accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("it runs fp8"), std::string::npos) << e.what();
    }
  }
  // The layer's auto choice keys the database by the plain cuBLASLt shape: the multiples agree.
  const GemmRequirements plain = gemm_requirements(Precision::FP8, GemmBackendKind::CublasLtDense);
  EXPECT_EQ(plain.n_multiple, req.n_multiple);
  EXPECT_EQ(plain.k_multiple, req.k_multiple);
}

TuningKey some_key() {
  TuningKey key;
  key.gpu_name = "NVIDIA H100 80GB HBM3";
  key.cc_major = 9;
  return key;
}

void put_dense(TuningDb& db, GemmBackendKind kind, std::int64_t n, std::int64_t k, std::int64_t m,
               double us) {
  db.put({backend_name(kind), "fp8", "dense", n, k, m, GemmAlgo{}.to_json(), us});
}

TEST(CublasLtFusedAuto, TakesTheFusedGemmWhereTheDatabaseTimedItFaster) {
  constexpr std::int64_t n = 3584, k = 3584;
  const auto choose = [&](const TuningDb* db, int cc_minor = 0, Precision p = Precision::FP8,
                          DType activation = DType::BF16) {
    return auto_dense_backend(9, cc_minor, p, activation, db, n, k);
  };
  TuningDb faster(some_key());
  put_dense(faster, GemmBackendKind::CublasLtDense, n, k, 64, 20.0);
  put_dense(faster, GemmBackendKind::CublasLtFused, n, k, 64, 18.0);
  put_dense(faster, GemmBackendKind::CublasLtDense, n, k, 4096, 300.0);
  put_dense(faster, GemmBackendKind::CublasLtFused, n, k, 4096, 310.0);    // geo-mean still < 1
  put_dense(faster, GemmBackendKind::CublasLtFused, n, k, 16384, 5000.0);  // no plain partner
  EXPECT_EQ(choose(&faster), GemmBackendKind::CublasLtFused);

  TuningDb slower(some_key());
  put_dense(slower, GemmBackendKind::CublasLtDense, n, k, 64, 20.0);
  put_dense(slower, GemmBackendKind::CublasLtFused, n, k, 64, 21.0);
  EXPECT_EQ(choose(&slower), GemmBackendKind::CublasLtDense);

  TuningDb only_plain(some_key()), other_shape(some_key());
  put_dense(only_plain, GemmBackendKind::CublasLtDense, n, k, 64, 20.0);
  put_dense(other_shape, GemmBackendKind::CublasLtDense, n, 2 * k, 64, 20.0);
  put_dense(other_shape, GemmBackendKind::CublasLtFused, n, 2 * k, 64, 10.0);
  EXPECT_EQ(choose(&only_plain), GemmBackendKind::CublasLtDense);
  EXPECT_EQ(choose(&other_shape), GemmBackendKind::CublasLtDense);
  EXPECT_EQ(choose(nullptr), GemmBackendKind::CublasLtDense);

  // Where the fused backend cannot run, the database does not matter.
  EXPECT_EQ(choose(&faster, 9), GemmBackendKind::CublasLtDense);  // cc 9.9
  EXPECT_EQ(auto_dense_backend(8, 9, Precision::FP8, DType::BF16, &faster, n, k),
            GemmBackendKind::CublasLtDense);
  EXPECT_EQ(auto_dense_backend(10, 0, Precision::FP8, DType::BF16, &faster, n, k),
            GemmBackendKind::CublasLtDense);
  EXPECT_EQ(choose(&faster, 0, Precision::INT8), GemmBackendKind::CublasLtDense);
  EXPECT_EQ(choose(&faster, 0, Precision::FP8, DType::F16), GemmBackendKind::CublasLtDense);
}

// ---- the GEMM against the reference formula ---------------------------------------------------

// A quantized problem as the layer makes it: W [n, k] and X [m, k] quantized per row to E4M3
// (realistic per-channel and per-token scales), one channel scale zeroed and, for M > 1, one
// token scale.
struct Fp8Problem {
  std::int64_t m, n, k;
  std::vector<std::uint8_t> wq, xq;
  std::vector<float> scale_w, scale_x, bias;  // bias empty: none
  std::int64_t zero_row, zero_channel;        // zero_row -1: none
};

Fp8Problem make_fp8_problem(std::int64_t m, std::int64_t n, std::int64_t k, bool with_bias,
                            std::uint64_t seed) {
  Fp8Problem p{m, n, k, {}, {}, {}, {}, {}, m > 1 ? m / 2 : -1, n / 3};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<std::size_t>(n * k)), x(static_cast<std::size_t>(m * k));
  for (std::int64_t r = 0; r < n; ++r)  // channels of different magnitudes
    for (std::int64_t c = 0; c < k; ++c)
      w[static_cast<std::size_t>(r * k + c)] =
          0.02f * (1.0f + static_cast<float>(r % 7)) * normal(rng);
  for (auto& v : x) v = normal(rng);
  p.wq.resize(w.size());
  p.xq.resize(x.size());
  p.scale_w.resize(static_cast<std::size_t>(n));
  p.scale_x.resize(static_cast<std::size_t>(m));
  quantize_rows(w.data(), n, k, Precision::FP8, p.wq.data(), p.scale_w.data());
  quantize_rows(x.data(), m, k, Precision::FP8, p.xq.data(), p.scale_x.data());
  if (p.zero_row >= 0) p.scale_x[static_cast<std::size_t>(p.zero_row)] = 0.0f;
  p.scale_w[static_cast<std::size_t>(p.zero_channel)] = 0.0f;
  if (with_bias) {
    p.bias.resize(static_cast<std::size_t>(n));
    for (auto& v : p.bias) v = 0.5f * normal(rng);
  }
  return p;
}

// The rows a reference is computed for: all of them for small problems, else the first, the
// last, the zeroed one and random others (32 in all).
// The rows checked against the CPU: the first, the last, the zero-scale one, and others up to
// about 30 million multiply-adds in all (every row of a small problem). The first H100/H200 run
// checked 300 million per M and spent minutes in this reference.
std::vector<std::int64_t> reference_rows(const Fp8Problem& p, std::mt19937& rng) {
  std::set<std::int64_t> rows{0, p.m - 1};
  if (p.zero_row >= 0) rows.insert(p.zero_row);
  const std::int64_t budget_rows = std::max<std::int64_t>(4, 30'000'000 / (p.n * p.k));
  if (p.m <= budget_rows) {
    for (std::int64_t r = 0; r < p.m; ++r) rows.insert(r);
  } else {
    std::uniform_int_distribution<std::int64_t> any(0, p.m - 1);
    while (static_cast<std::int64_t>(rows.size()) < std::min<std::int64_t>(budget_rows, 32))
      rows.insert(any(rng));
  }
  return {rows.begin(), rows.end()};
}

// E4M3 code -> float, decoded once for all 256 codes.
float e4m3_value(std::uint8_t code) {
  static const std::vector<float> table = [] {
    std::vector<float> t(256);
    for (int i = 0; i < 256; ++i)
      t[static_cast<std::size_t>(i)] = e4m3_to_float(static_cast<std::uint8_t>(i));
    return t;
  }();
  return table[code];
}

// fma(acc, scale_x·scale_w, bias) with acc summed in double from the exact E4M3 products.
float reference_y(const Fp8Problem& p, std::int64_t r, std::int64_t c) {
  double acc = 0.0;
  for (std::int64_t j = 0; j < p.k; ++j)
    acc += static_cast<double>(e4m3_value(p.xq[static_cast<std::size_t>(r * p.k + j)])) *
           e4m3_value(p.wq[static_cast<std::size_t>(c * p.k + j)]);
  return dequantize_output(static_cast<float>(acc), p.scale_x[static_cast<std::size_t>(r)],
                           p.scale_w[static_cast<std::size_t>(c)],
                           p.bias.empty() ? 0.0f : p.bias[static_cast<std::size_t>(c)]);
}

// The BF16 bits a zero scale must give: the bias as cuBLASLt holds it (BF16), or zero.
float zero_scale_output(const Fp8Problem& p, std::int64_t c) {
  return p.bias.empty() ? 0.0f : bf16_to_float(float_to_bf16(p.bias[static_cast<std::size_t>(c)]));
}

// Checks y [m, n] (BF16 bits) on `rows`: relative L2 against the reference, and the zeroed token
// row and channel column exactly.
void expect_fused_output(const Fp8Problem& p, const std::vector<std::uint16_t>& y,
                         const std::vector<std::int64_t>& rows, const std::string& what) {
  double diff2 = 0.0, ref2 = 0.0;
  int exact_misses = 0;
  for (std::int64_t r : rows)
    for (std::int64_t c = 0; c < p.n; ++c) {
      const float got = bf16_to_float(y[static_cast<std::size_t>(r * p.n + c)]);
      ASSERT_TRUE(std::isfinite(got)) << what << ": y[" << r << "," << c << "]";
      if (r == p.zero_row || c == p.zero_channel) {
        if (got != zero_scale_output(p, c) && exact_misses++ < 5)
          ADD_FAILURE() << what << ": y[" << r << "," << c << "] = " << got
                        << " where a scale is 0, expected the BF16 bias "
                        << zero_scale_output(p, c);
        continue;
      }
      const double want = reference_y(p, r, c);
      diff2 += (got - want) * (got - want);
      ref2 += want * want;
    }
  EXPECT_EQ(exact_misses, 0) << what;
  EXPECT_LT(std::sqrt(diff2 / std::max(ref2, 1e-300)), kFp8Tolerance) << what;
}

// The problem's operands on the device.
struct DeviceProblem {
  DeviceBuffer<std::uint8_t> w, x;
  DeviceBuffer<float> scale_w, scale_x, bias;
  DeviceBuffer<std::uint16_t> y;

  explicit DeviceProblem(const Fp8Problem& p)
      : w(p.wq.size()),
        x(p.xq.size()),
        scale_w(p.scale_w.size()),
        scale_x(p.scale_x.size()),
        bias(std::max<std::size_t>(p.bias.size(), 1)),
        y(static_cast<std::size_t>(p.m * p.n)) {
    w.upload(p.wq.data(), p.wq.size());
    x.upload(p.xq.data(), p.xq.size());
    scale_w.upload(p.scale_w.data(), p.scale_w.size());
    scale_x.upload(p.scale_x.data(), p.scale_x.size());
    if (!p.bias.empty()) bias.upload(p.bias.data(), p.bias.size());
  }
  const float* bias_or_null(const Fp8Problem& p) const {
    return p.bias.empty() ? nullptr : bias.get();
  }

  std::vector<std::uint16_t> run(Gemm& gemm, const Fp8Problem& p, cudaStream_t stream) {
    y.fill_bytes(0xCD, stream);
    gemm.run_dequantized(x.get(), scale_x.get(), scale_w.get(), bias_or_null(p), y.get(),
                         DType::BF16, p.m, stream);
    SLIDESPARSE_CHECK_CUDA(cudaStreamSynchronize(stream));
    std::vector<std::uint16_t> out(y.size());
    y.download(out.data(), out.size());
    return out;
  }
};

struct FusedShape {
  std::int64_t n, k;
  bool bias;
};

class CublasLtFusedGemm : public ::testing::TestWithParam<FusedShape> {};

TEST_P(CublasLtFusedGemm, MatchesTheReferenceFormulaForEveryM) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_OUTER_VECTOR_SCALING(ctx);
  const FusedShape shape = GetParam();
  std::mt19937 rng(static_cast<unsigned>(shape.n + shape.k));
  CudaStream stream;
  for (const std::int64_t m : {1, 17, 64, 1000, 4096}) {
    const Fp8Problem p = make_fp8_problem(m, shape.n, shape.k, shape.bias,
                                          static_cast<std::uint64_t>(m * 31 + shape.n));
    DeviceProblem d(p);
    auto gemm =
        make_cublaslt_fused_gemm(ctx, Precision::FP8, p.n, p.k, d.w.get(), d.bias_or_null(p));
    ASSERT_EQ(gemm->kind(), GemmBackendKind::CublasLtFused);
    ASSERT_TRUE(gemm->fuses_dequantize());
    ASSERT_EQ(gemm->output_type(), DType::BF16);
    if (m != 1) gemm->prepare(m, GemmAlgo{});  // M = 1 takes the unprepared (default) path
    const std::string what = "N=" + std::to_string(p.n) + " K=" + std::to_string(p.k) +
                             " M=" + std::to_string(m) + (shape.bias ? " bias" : " no bias");
    expect_fused_output(p, d.run(*gemm, p, stream.get()), reference_rows(p, rng), what);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CublasLtFusedGemm,
                         ::testing::Values(FusedShape{160, 304, true}, FusedShape{160, 304, false},
                                           FusedShape{3584, 3584, true},
                                           FusedShape{3584, 3584, false}),
                         [](const ::testing::TestParamInfo<FusedShape>& info) {
                           return "N" + std::to_string(info.param.n) + "_K" +
                                  std::to_string(info.param.k) +
                                  (info.param.bias ? "_bias" : "_no_bias");
                         });

TEST(CublasLtFusedGemmPlans, SearchPrepareAndRunAllocateNothingOnThePreparedM) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_OUTER_VECTOR_SCALING(ctx);
  const Fp8Problem p = make_fp8_problem(64, 256, 512, true, 5);
  DeviceProblem d(p);
  auto gemm = make_cublaslt_fused_gemm(ctx, Precision::FP8, p.n, p.k, d.w.get(), d.bias.get());
  CudaStream stream;
  std::mt19937 rng(3);
  const auto rows = reference_rows(p, rng);

  SearchOptions options;
  options.warmup = 1;
  options.reps = 3;
  options.max_split_k = 4;
  options.max_heuristic_results = 8;
  DeviceBuffer<std::uint16_t> scratch(static_cast<std::size_t>(p.m * p.n));
  const auto timings = gemm->search(p.m, d.x.get(), scratch.get(), stream.get(), options);
  ASSERT_FALSE(timings.empty());
  ASSERT_TRUE(timings.front().ok) << timings.front().error;
  for (std::size_t i = 1; i < timings.size(); ++i)
    if (timings[i].ok) {
      EXPECT_TRUE(timings[i - 1].ok) << "candidates that ran come first";
      EXPECT_LE(timings[i - 1].median_us, timings[i].median_us);
    } else {
      EXPECT_FALSE(timings[i].error.empty()) << "a failed candidate says why";
    }
  ASSERT_TRUE(gemm->prepared_algo(p.m));
  EXPECT_EQ(*gemm->prepared_algo(p.m), timings.front().algo);

  // The searched plan with the real scales (the search ran on unit scales).
  const std::int64_t allocations = gemm_device_allocations();
  for (int i = 0; i < 10; ++i) d.run(*gemm, p, stream.get());
  expect_fused_output(p, d.run(*gemm, p, stream.get()), rows,
                      "best of search: " + timings.front().algo.describe());
  EXPECT_EQ(gemm_device_allocations(), allocations) << "run_dequantized on a prepared M allocated";
  gemm->prepare(p.m, timings.front().algo);
  EXPECT_EQ(gemm_device_allocations(), allocations) << "same M and algorithm: cached";
  EXPECT_EQ(gemm->cached_plans(), 1u);

  // The record survives JSON (the tuning database) and rebuilds the same plan.
  auto other = make_cublaslt_fused_gemm(ctx, Precision::FP8, p.n, p.k, d.w.get(), d.bias.get());
  other->prepare(p.m,
                 GemmAlgo::from_json(nlohmann::json::parse(timings.front().algo.to_json().dump())));
  EXPECT_EQ(*other->prepared_algo(p.m), timings.front().algo);
  expect_fused_output(p, d.run(*other, p, stream.get()), rows, "rebuilt from JSON");
}

TEST(CublasLtFusedGemmContract, NoAccumulatorsAndOnlyTheBiasItWasBuiltWith) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_OUTER_VECTOR_SCALING(ctx);
  const Fp8Problem p = make_fp8_problem(16, 64, 64, true, 9);
  DeviceProblem d(p);
  DeviceBuffer<float> other_bias(static_cast<std::size_t>(p.n));
  auto with_bias = make_cublaslt_fused_gemm(ctx, Precision::FP8, p.n, p.k, d.w.get(), d.bias.get());
  auto without_bias = make_cublaslt_fused_gemm(ctx, Precision::FP8, p.n, p.k, d.w.get(), nullptr);
  const auto run = [&](Gemm& gemm, const float* bias) {
    gemm.run_dequantized(d.x.get(), d.scale_x.get(), d.scale_w.get(), bias, d.y.get(), DType::BF16,
                         p.m, nullptr);
  };
  EXPECT_THROW(run(*with_bias, other_bias.get()), InvalidArgument);
  EXPECT_THROW(run(*with_bias, nullptr), InvalidArgument);
  EXPECT_THROW(run(*without_bias, d.bias.get()), InvalidArgument);
  EXPECT_THROW(with_bias->run(d.x.get(), d.y.get(), p.m, nullptr), InvalidArgument);
  EXPECT_THROW(with_bias->run_dequantized(d.x.get(), d.scale_x.get(), d.scale_w.get(), d.bias.get(),
                                          d.y.get(), DType::F16, p.m, nullptr),
               InvalidArgument);
  // The plain cuBLASLt GEMM has no epilogue to fold into.
  auto plain = make_cublaslt_gemm(ctx, Precision::FP8, p.n, p.k, d.w.get());
  EXPECT_FALSE(plain->fuses_dequantize());
  EXPECT_THROW(run(*plain, nullptr), InvalidArgument);
  // Shapes and precisions.
  EXPECT_THROW(make_cublaslt_fused_gemm(ctx, Precision::FP8, p.n, 72, d.w.get(), nullptr),
               InvalidArgument);
  EXPECT_THROW(make_cublaslt_fused_gemm(ctx, Precision::INT8, p.n, p.k, d.w.get(), nullptr),
               InvalidArgument);
}

TEST(CublasLtFusedGemmContract, RefusedOffHopper) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  if (ctx.cc_major() == 9 && ctx.cc_minor() == 0) GTEST_SKIP() << "a cc 9.0 GPU runs it";
  DeviceBuffer<std::uint8_t> w(64 * 64);
  EXPECT_THROW(make_cublaslt_fused_gemm(ctx, Precision::FP8, 64, 64, w.get(), nullptr),
               DeviceError);
}

// ---- the layer's dense path ---------------------------------------------------------------------

LinearOptions fused_dense_options(std::int64_t max_m, std::optional<GemmBackendKind> dense) {
  LinearOptions options;
  options.activation = DType::BF16;
  options.max_m = max_m;
  options.build_sparse = false;
  options.dense_backend = dense;
  return options;
}

QuantizedMatrix dense_matrix(const PackedLinear& packed) {
  return {packed.precision, packed.n, packed.k, unpacked_weight(packed), packed.scale};
}

TEST(CublasLtFusedLayer, DenseFp8LayerMatchesTheReferenceAndTheSeparateDequantize) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_OUTER_VECTOR_SCALING(ctx);
  // N = 96 writes Y in place (no N padding), N = 50 pads to 64 (Y through the staging copy);
  // K = 100 pads to 112. Pruned 6:8 weights, as the layer's dense fallback holds them.
  for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{96, 100}, {50, 200}}) {
    for (const bool with_bias : {true, false}) {
      test::Problem p = test::make_problem(1000, n, k, static_cast<std::uint64_t>(n * k + 7));
      constexpr std::int64_t kZeroRow = 5;  // an all-zero token: y = bias exactly
      for (std::int64_t c = 0; c < k; ++c) {
        p.x[static_cast<std::size_t>(kZeroRow * k + c)] = 0.0f;
        p.x_bits[static_cast<std::size_t>(kZeroRow * k + c)] = 0;
      }
      const PackedLinear packed =
          pack_linear(p.w.data(), n, k, with_bias ? p.bias.data() : nullptr, Precision::FP8,
                      Pattern::parse("6:8"), PruneMode::Magnitude, "test.weight");
      SlideSparseLinear fused(ctx, packed,
                              fused_dense_options(1000, GemmBackendKind::CublasLtFused));
      ASSERT_EQ(fused.dense_gemm()->kind(), GemmBackendKind::CublasLtFused);
      SlideSparseLinear plain(ctx, packed,
                              fused_dense_options(1000, GemmBackendKind::CublasLtDense));
      for (const std::int64_t m : {1, 17, 64, 1000}) {
        const std::string what = "N=" + std::to_string(n) + " K=" + std::to_string(k) +
                                 " M=" + std::to_string(m) + (with_bias ? " bias" : " no bias");
        const auto ref = reference_linear_dense(p.x.data(), m, dense_matrix(packed),
                                                with_bias ? p.bias.data() : nullptr);
        const auto got = test::run_layer(fused, p, m, LinearPath::Dense);
        test::expect_matches(got, ref, Precision::FP8, what + " cublaslt_fused vs reference");
        std::vector<float> separate;
        for (std::uint16_t bits : test::run_layer(plain, p, m, LinearPath::Dense))
          separate.push_back(bf16_to_float(bits));
        test::expect_matches(got, separate, Precision::FP8,
                             what + " cublaslt_fused vs cublaslt + dequantize");
        if (m <= kZeroRow) continue;
        for (std::int64_t c = 0; c < n; ++c) {
          const float bias = with_bias ? p.bias[static_cast<std::size_t>(c)] : 0.0f;
          EXPECT_EQ(bf16_to_float(got[static_cast<std::size_t>(kZeroRow * n + c)]),
                    bf16_to_float(float_to_bf16(bias)))
              << what << ": zero token, column " << c;
        }
      }
    }
  }
}

TEST(CublasLtFusedLayer, RejectsF16ActivationsAndInt8) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  const test::Problem p = test::make_problem(1, 64, 64, 3);
  for (Precision precision : {Precision::INT8, Precision::FP8}) {
    const PackedLinear packed = pack_linear(p.w.data(), 64, 64, nullptr, precision,
                                            Pattern::parse("2_4"), PruneMode::Magnitude, "w");
    LinearOptions f16 = fused_dense_options(16, GemmBackendKind::CublasLtFused);
    f16.activation = DType::F16;
    EXPECT_THROW(SlideSparseLinear(ctx, packed, f16), InvalidArgument) << precision_name(precision);
    if (precision != Precision::INT8) continue;
    // cuBLASLt folds no per-token scale for INT8.
    EXPECT_THROW(
        SlideSparseLinear(ctx, packed, fused_dense_options(16, GemmBackendKind::CublasLtFused)),
        InvalidArgument);
  }
}

TEST(CublasLtFusedLayer, AnUnsetDenseBackendFollowsTheTuningDatabase) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_OUTER_VECTOR_SCALING(ctx);
  const test::Problem p = test::make_problem(64, 96, 100, 21);
  const PackedLinear packed = pack_linear(p.w.data(), 96, 100, p.bias.data(), Precision::FP8,
                                          Pattern::parse("2_4"), PruneMode::Magnitude, "w");
  LinearOptions options = fused_dense_options(64, std::nullopt);
  options.build_sparse = true;  // the shape key includes the sparse path's N padding
  SlideSparseLinear untuned(ctx, packed, options);
  EXPECT_EQ(untuned.dense_gemm()->kind(), GemmBackendKind::CublasLtDense);
  const std::int64_t n_gemm = untuned.n_gemm(), k_gemm = untuned.k_gemm(LinearPath::Dense);

  TuningDb db(some_key());
  put_dense(db, GemmBackendKind::CublasLtDense, n_gemm, k_gemm, 64, 10.0);
  put_dense(db, GemmBackendKind::CublasLtFused, n_gemm, k_gemm, 64, 8.0);
  options.tuning = &db;
  SlideSparseLinear tuned(ctx, packed, options);
  ASSERT_EQ(tuned.dense_gemm()->kind(), GemmBackendKind::CublasLtFused);
  EXPECT_EQ(tuned.n_gemm(), n_gemm);
  tuned.prepare({64});
  const auto ref = reference_linear_dense(p.x.data(), 64, dense_matrix(packed), p.bias.data());
  test::expect_matches(test::run_layer(tuned, p, 64, LinearPath::Dense), ref, Precision::FP8,
                       "auto-chosen cublaslt_fused");
}

}  // namespace
}  // namespace slidesparse
