// The GEMM backends against a CPU reference in double precision. Tests that need a GPU skip
// themselves when none is visible; the algorithm-record and requirement tests run anywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gpu_test_util.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/check.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/numeric.hpp"

namespace slidesparse {
namespace {

// Device bytes for the tests' inputs and outputs (at least 16, so every pointer is valid),
// on the project's one device-memory owner.
class DeviceBytes {
 public:
  explicit DeviceBytes(std::size_t bytes)
      : buffer_(std::max<std::size_t>(bytes, 16)), bytes_(bytes) {}
  void* get() const { return buffer_.get(); }
  void upload(const std::vector<std::uint8_t>& host) { buffer_.upload(host.data(), host.size()); }
  std::vector<std::uint8_t> download() const {
    std::vector<std::uint8_t> host(bytes_);
    buffer_.download(host.data(), bytes_);
    return host;
  }

 private:
  DeviceBuffer<std::uint8_t> buffer_;
  std::size_t bytes_;
};

// A row-major matrix in the GEMM's storage type, with each element also decoded to float
// (every INT8, E4M3, BF16 and FP16 value is exact in float) for the reference.
struct HostMatrix {
  Precision precision;
  std::int64_t rows, cols;
  std::vector<std::uint8_t> bytes;
  std::vector<float> values;

  HostMatrix(Precision p, std::int64_t r, std::int64_t c)
      : precision(p),
        rows(r),
        cols(c),
        bytes(static_cast<std::size_t>(r * c) * dtype_size(precision_storage(p)), 0),
        values(static_cast<std::size_t>(r * c), 0.0f) {}

  void set_code(std::int64_t i, std::uint32_t code, float value) {
    const std::size_t size = dtype_size(precision_storage(precision));
    for (std::size_t b = 0; b < size; ++b)
      bytes[static_cast<std::size_t>(i) * size + b] = static_cast<std::uint8_t>(code >> (8 * b));
    values[static_cast<std::size_t>(i)] = value;
  }
  float at(std::int64_t r, std::int64_t c) const {
    return values[static_cast<std::size_t>(r * cols + c)];
  }
};

// INT8 in [-127, 127]; E4M3 any code but the two NaNs; BF16/FP16 uniform in [-1, 1] rounded.
void fill_random(HostMatrix& m, std::mt19937& rng, std::int64_t used_cols) {
  std::uniform_int_distribution<int> int8(-127, 127);
  std::uniform_int_distribution<int> e4m3(0, 253);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (std::int64_t c = 0; c < used_cols; ++c) {
      const std::int64_t i = r * m.cols + c;
      switch (m.precision) {
        case Precision::INT8: {
          const int v = int8(rng);
          m.set_code(i, static_cast<std::uint8_t>(static_cast<std::int8_t>(v)),
                     static_cast<float>(v));
          break;
        }
        case Precision::FP8: {
          int code = e4m3(rng);
          if (code >= 0x7F) ++code;  // skip 0x7F; 0xFF is above the range
          m.set_code(i, static_cast<std::uint32_t>(code),
                     e4m3_to_float(static_cast<std::uint8_t>(code)));
          break;
        }
        case Precision::BF16: {
          const std::uint16_t bits = float_to_bf16(unit(rng));
          m.set_code(i, bits, bf16_to_float(bits));
          break;
        }
        case Precision::FP16: {
          const std::uint16_t bits = float_to_fp16(unit(rng));
          m.set_code(i, bits, fp16_to_float(bits));
          break;
        }
      }
    }
}

// Zeroes 2 random positions in every aligned group of 4 along the columns (2:4 along K).
void prune_two_of_four(HostMatrix& w, std::mt19937& rng) {
  std::uniform_int_distribution<int> pick(0, 5);
  constexpr int kPairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  for (std::int64_t r = 0; r < w.rows; ++r)
    for (std::int64_t g = 0; g < w.cols; g += 4) {
      const auto& drop = kPairs[pick(rng)];
      for (int d : drop) w.set_code(r * w.cols + g + d, 0, 0.0f);
    }
}

// ref[row][n] = Σ_k x[row][k]·w[n][k] in double (exact for INT8: |sums| < 2^53).
std::vector<double> reference_rows(const HostMatrix& x, const HostMatrix& w,
                                   const std::vector<std::int64_t>& rows) {
  std::vector<double> out(rows.size() * static_cast<std::size_t>(w.rows));
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::int64_t n = 0; n < w.rows; ++n) {
      double sum = 0.0;
      const float* xr = &x.values[static_cast<std::size_t>(rows[i] * x.cols)];
      const float* wr = &w.values[static_cast<std::size_t>(n * w.cols)];
      for (std::int64_t k = 0; k < x.cols; ++k) sum += static_cast<double>(xr[k]) * wr[k];
      out[i * static_cast<std::size_t>(w.rows) + static_cast<std::size_t>(n)] = sum;
    }
  return out;
}

double decode_output(const std::vector<std::uint8_t>& bytes, DType type, std::size_t index) {
  switch (type) {
    case DType::I32: {
      std::int32_t v;
      std::memcpy(&v, &bytes[index * 4], 4);
      return v;
    }
    case DType::F32: {
      float v;
      std::memcpy(&v, &bytes[index * 4], 4);
      return v;
    }
    case DType::BF16:
    case DType::F16: {
      std::uint16_t v;
      std::memcpy(&v, &bytes[index * 2], 2);
      return type == DType::BF16 ? bf16_to_float(v) : fp16_to_float(v);
    }
    default:
      throw InvalidArgument("unexpected GEMM output type");
  }
}

// ‖out − ref‖₂ / ‖ref‖₂ bound for float outputs:
//   FP32 output of BF16/FP16 inputs: the products are exact in FP32, only the FP32 summation
//     rounds, about sqrt(K)·2⁻²⁴ ≈ 4e-6 at K = 3584: 2e-5 leaves room for truncating adders.
//   FP32 output of E4M3 inputs: Hopper's FP8 MMA keeps about 14 bits while it accumulates
//     before the FP32 promotion, errors of 1e-4..1e-3: 4e-3 (a layout error gives about 1).
//   BF16 / FP16 output (cuSPARSELt): one rounding of the result, 2⁻⁹ / 2⁻¹¹ relative: 2⁻⁸ / 2⁻¹⁰.
double tolerance(Precision precision, DType output) {
  if (output == DType::BF16) return 1.0 / 256;
  if (output == DType::F16) return 1.0 / 1024;
  return precision == Precision::FP8 ? 4e-3 : 2e-5;
}

// Compares `out` ([m, n_pad] of `type`) with the reference on `rows` and the first n columns;
// the padded columns (zero weights) must be exactly zero.
void expect_matches(const std::vector<std::uint8_t>& out, DType type, std::int64_t n,
                    std::int64_t n_pad, const std::vector<std::int64_t>& rows,
                    const std::vector<double>& ref, Precision precision, const std::string& what) {
  double err2 = 0.0, ref2 = 0.0;
  std::int64_t mismatches = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (std::int64_t c = 0; c < n_pad; ++c) {
      const double got = decode_output(out, type, static_cast<std::size_t>(rows[i] * n_pad + c));
      if (c >= n) {
        if (got != 0.0 && ++mismatches <= 3)
          ADD_FAILURE() << what << ": padded column " << c << " of row " << rows[i] << " is "
                        << got;
        continue;
      }
      const double want = ref[i * static_cast<std::size_t>(n) + static_cast<std::size_t>(c)];
      if (type == DType::I32) {
        if (got != want && ++mismatches <= 3)
          ADD_FAILURE() << what << ": row " << rows[i] << " col " << c << " is " << got
                        << ", the exact sum is " << want;
      } else {
        err2 += (got - want) * (got - want);
        ref2 += want * want;
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
  if (type != DType::I32) {
    const double relative = std::sqrt(err2 / std::max(ref2, 1e-300));
    EXPECT_LT(relative, tolerance(precision, type)) << what << ": relative error " << relative;
  }
}

struct Shape {
  std::int64_t n, k;  // as the model has them; padded below to what both backends accept
};

std::int64_t padded(std::int64_t v, std::int64_t multiple) {
  return (v + multiple - 1) / multiple * multiple;
}

std::int64_t n_padded(Precision p, std::int64_t n) {
  return padded(n, std::max({std::int64_t{16},
                             gemm_requirements(p, GemmBackendKind::CublasLtDense).n_multiple,
                             gemm_requirements(p, GemmBackendKind::CusparseLt).n_multiple}));
}

std::int64_t k_padded(Precision p, std::int64_t k) {
  return padded(k, std::max({std::int64_t{64},
                             gemm_requirements(p, GemmBackendKind::CublasLtDense).k_multiple,
                             gemm_requirements(p, GemmBackendKind::CusparseLt).k_multiple}));
}

// Rows the reference is computed for: all of them for small problems, else the first, the last
// and a random 30.
std::vector<std::int64_t> checked_rows(std::int64_t m, std::int64_t n, std::int64_t k,
                                       std::mt19937& rng) {
  std::vector<std::int64_t> rows;
  if (m * n * k <= 300'000'000) {
    for (std::int64_t r = 0; r < m; ++r) rows.push_back(r);
    return rows;
  }
  std::set<std::int64_t> pick{0, m - 1};
  std::uniform_int_distribution<std::int64_t> any(0, m - 1);
  while (static_cast<std::int64_t>(pick.size()) < std::min<std::int64_t>(m, 32))
    pick.insert(any(rng));
  return {pick.begin(), pick.end()};
}

bool fp8_unsupported(const GemmContext& ctx, std::string* why) {
  if (ctx.cc_major() * 10 + ctx.cc_minor() >= 89) return false;
  *why = "FP8 needs compute capability 8.9 or newer, this GPU is " +
         std::to_string(ctx.cc_major()) + "." + std::to_string(ctx.cc_minor());
  return true;
}

std::string name_of(Precision p) { return precision_name(p); }

std::size_t acc_bytes(const Gemm& gemm, std::int64_t m) {
  return static_cast<std::size_t>(m * gemm.n()) * dtype_size(gemm.output_type());
}

// ---- tests that need no GPU --------------------------------------------------------------

TEST(GemmAlgo, JsonRoundTripKeepsEveryField) {
  GemmAlgo algo;
  algo.algo_id = 7;
  algo.split_k = 4;
  algo.split_k_mode = 2;
  algo.heuristic_index = 3;
  algo.cublaslt_algo = {0, 1, 0xffffffffffffffffull, 42, 5, 6, 7, 0x8000000000000000ull};
  const nlohmann::json j = nlohmann::json::parse(algo.to_json().dump());
  EXPECT_EQ(GemmAlgo::from_json(j), algo);
  EXPECT_EQ(j.at("cublaslt_algo").at(2), "0xffffffffffffffff");  // hex text: no 2^53 rounding
  EXPECT_EQ(GemmAlgo::from_json(nlohmann::json::object()), GemmAlgo{});
  EXPECT_TRUE(GemmAlgo{}.is_default());
  EXPECT_EQ(GemmAlgo{}.describe(), "library default");
}

TEST(GemmAlgo, FromJsonRejectsWrongTypes) {
  EXPECT_THROW(GemmAlgo::from_json(nlohmann::json::array()), FormatError);
  EXPECT_THROW(GemmAlgo::from_json({{"algo_id", "3"}}), FormatError);
  EXPECT_THROW(GemmAlgo::from_json({{"split_k", 0}}), FormatError);
  EXPECT_THROW(GemmAlgo::from_json({{"cublaslt_algo", {1, 2}}}), FormatError);
  EXPECT_THROW(GemmAlgo::from_json({{"cublaslt_algo", {"0xzz"}}}), FormatError);
}

TEST(GemmRequirements, EveryPrecisionAndBackendHasRulesAndAnOutputType) {
  for (Precision p : {Precision::INT8, Precision::FP8, Precision::BF16, Precision::FP16}) {
    const auto dense = gemm_requirements(p, GemmBackendKind::CublasLtDense);
    const auto sparse = gemm_requirements(p, GemmBackendKind::CusparseLt);
    EXPECT_EQ(dense.m_multiple, 1) << name_of(p);  // cuBLASLt runs any M, M = 1 included
    // The layer pads K to 64 and N to 16; cuSPARSELt 8-bit asks N for 32.
    EXPECT_EQ(64 % sparse.k_multiple, 0) << name_of(p);
    EXPECT_EQ(64 % dense.k_multiple, 0) << name_of(p);
    EXPECT_GE(sparse.m_multiple, 8) << name_of(p);
  }
  EXPECT_EQ(gemm_output_type(Precision::INT8, GemmBackendKind::CusparseLt), DType::I32);
  EXPECT_EQ(gemm_output_type(Precision::FP8, GemmBackendKind::CusparseLt), DType::F32);
  EXPECT_EQ(gemm_output_type(Precision::BF16, GemmBackendKind::CublasLtDense), DType::F32);
  EXPECT_EQ(gemm_output_type(Precision::BF16, GemmBackendKind::CusparseLt), DType::BF16);
  EXPECT_EQ(parse_backend(backend_name(GemmBackendKind::CusparseLt)), GemmBackendKind::CusparseLt);
  EXPECT_THROW(parse_backend("cublas"), InvalidArgument);
}

TEST(GemmLibraries, VersionsMatchTheHeadersWeWereBuiltWith) {
  EXPECT_EQ(cusparselt_version(), CUSPARSELT_VERSION);        // same encoding for every 0.x release
  EXPECT_EQ(cublaslt_version() / 100, CUBLAS_VERSION / 100);  // a patch release may differ
  EXPECT_EQ(library_versions(), "cuBLASLt " + std::to_string(cublaslt_version()) + ", cuSPARSELt " +
                                    std::to_string(cusparselt_version()));
}

// ---- both backends against the reference -------------------------------------------------

class GemmAgainstReference : public ::testing::TestWithParam<std::tuple<Precision, Shape>> {};

TEST_P(GemmAgainstReference, BothBackendsMatchForEveryM) {
  SLIDESPARSE_REQUIRE_GPU();
  const auto [precision, shape] = GetParam();
  GemmContext ctx;
  std::string why;
  if (precision == Precision::FP8 && fp8_unsupported(ctx, &why)) {
    GTEST_SKIP() << why;
  }

  const std::int64_t n_pad = n_padded(precision, shape.n), k_pad = k_padded(precision, shape.k);
  std::mt19937 rng(static_cast<unsigned>(1000 * static_cast<int>(precision) + shape.n + shape.k));
  HostMatrix w(precision, n_pad,
               k_pad);  // zero rows and columns beyond (n, k): the caller's padding
  fill_random(w, rng, shape.k);
  for (std::int64_t r = shape.n; r < n_pad; ++r)
    for (std::int64_t c = 0; c < k_pad; ++c) w.set_code(r * k_pad + c, 0, 0.0f);
  prune_two_of_four(w, rng);  // both backends get the same pruned weights (DESIGN.md §5)
  DeviceBytes w_device(w.bytes.size());
  w_device.upload(w.bytes);

  auto dense = make_cublaslt_gemm(ctx, precision, n_pad, k_pad, w_device.get());
  auto sparse = make_cusparselt_gemm(ctx, precision, n_pad, k_pad, w_device.get());
  CudaStream stream;

  for (std::int64_t m : {1, 16, 64, 300, 4096}) {
    HostMatrix x(precision, m, k_pad);
    fill_random(x, rng, shape.k);
    DeviceBytes x_device(x.bytes.size());
    x_device.upload(x.bytes);
    const auto rows = checked_rows(m, n_pad, k_pad, rng);
    const auto ref = reference_rows(x, w, rows);
    std::vector<double> ref_real;  // the reference's first n columns
    for (std::size_t i = 0; i < rows.size(); ++i)
      for (std::int64_t c = 0; c < shape.n; ++c)
        ref_real.push_back(ref[i * static_cast<std::size_t>(n_pad) + static_cast<std::size_t>(c)]);

    std::vector<std::vector<std::uint8_t>> outputs;
    for (Gemm* gemm : {dense.get(), sparse.get()}) {
      const std::string what = std::string(backend_name(gemm->kind())) + " " + name_of(precision) +
                               " N=" + std::to_string(n_pad) + " K=" + std::to_string(k_pad) +
                               " M=" + std::to_string(m);
      if (m != 1) gemm->prepare(m, GemmAlgo{});  // M = 1 takes run()'s default-plan path
      DeviceBytes acc(acc_bytes(*gemm, m));
      SLIDESPARSE_CHECK_CUDA(cudaMemset(acc.get(), 0xff, acc_bytes(*gemm, m)));
      gemm->run(x_device.get(), acc.get(), m, stream.get());
      stream.synchronize();
      outputs.push_back(acc.download());
      expect_matches(outputs.back(), gemm->output_type(), shape.n, n_pad, rows, ref_real, precision,
                     what);
    }
    // INT8: the sparse path equals the dense one bit for bit, on every row.
    if (precision == Precision::INT8) {
      EXPECT_EQ(outputs[0], outputs[1]) << "M=" << m;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmAgainstReference,
                         ::testing::Combine(::testing::Values(Precision::INT8, Precision::FP8,
                                                              Precision::BF16, Precision::FP16),
                                            ::testing::Values(Shape{64, 64}, Shape{150, 300},
                                                              Shape{3584, 3584})),
                         [](const auto& info) {
                           const Shape shape = std::get<1>(info.param);
                           return name_of(std::get<0>(info.param)) + "_N" +
                                  std::to_string(shape.n) + "_K" + std::to_string(shape.k);
                         });

// Sums beyond 2^24 that FP32 cannot hold (odd, ≈ 3.3e7): INT8 → INT32 must stay exact in both
// libraries. cuSPARSELt documents its epilogue (alpha, beta) in FP32; this shows whether the
// accumulators survive it.
// Measured on the H100 with cuSPARSELt 0.8.0: its INT8 kernels (sm90_xmma_sparse_gemm_i8i32_
// i8i32_f32_*) accumulate in int32 but pass the sum through an fp32 epilogue, so an |int32 output|
// above 2^24 comes back rounded to the nearest float. The layer converts the accumulator to float
// before scaling anyway, so its results are unaffected; cuBLASLt's int32 path stays exact.
TEST(GemmInt8, AccumulatorsAbove2To24AreExactOrFloatRoundedBySparse) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  const std::int64_t n = 64, k = 4096, m = 16;
  HostMatrix w(Precision::INT8, n, k), x(Precision::INT8, m, k);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < k; ++c)
      if (c % 4 < 2) w.set_code(r * k + c, 127, 127.0f);  // 2:4, 2048 non-zeros of 127 per row
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t c = 0; c < k; ++c) {
      // Row r holds r + 1 values of 126: sums of both parities, some halfway between floats.
      const int v = c % 4 == 0 && c / 4 <= r ? 126 : 127;
      x.set_code(r * k + c, static_cast<std::uint8_t>(v), static_cast<float>(v));
    }
  DeviceBytes w_device(w.bytes.size()), x_device(x.bytes.size());
  w_device.upload(w.bytes);
  x_device.upload(x.bytes);
  std::vector<std::int64_t> rows;
  for (std::int64_t r = 0; r < m; ++r) rows.push_back(r);
  const auto exact = reference_rows(x, w, rows);
  ASSERT_EQ(exact[0], 2048.0 * 127 * 127 - 127);
  ASSERT_GT(exact[0], 16777216.0);
  std::vector<double> float_rounded(exact.size());
  for (std::size_t i = 0; i < exact.size(); ++i)
    float_rounded[i] = static_cast<float>(exact[i]);  // round to nearest, ties to even
  ASSERT_NE(float_rounded, exact);
  CudaStream stream;
  std::vector<std::unique_ptr<Gemm>> gemms;
  gemms.push_back(make_cublaslt_gemm(ctx, Precision::INT8, n, k, w_device.get()));
  gemms.push_back(make_cusparselt_gemm(ctx, Precision::INT8, n, k, w_device.get()));
  for (const auto& gemm : gemms) {
    DeviceBytes acc(acc_bytes(*gemm, m));
    gemm->prepare(m, GemmAlgo{});
    gemm->run(x_device.get(), acc.get(), m, stream.get());
    stream.synchronize();
    const bool sparse = gemm->kind() == GemmBackendKind::CusparseLt;
    expect_matches(acc.download(), DType::I32, n, n, rows, sparse ? float_rounded : exact,
                   Precision::INT8, backend_name(gemm->kind()));
  }
}

// ---- plans, search, allocation -----------------------------------------------------------

struct SmallProblem {
  static constexpr std::int64_t n = 256, k = 512, m = 64;
  HostMatrix w, x;
  std::unique_ptr<DeviceBytes> w_device, x_device;
  std::vector<std::int64_t> rows;
  std::vector<double> ref;

  explicit SmallProblem(Precision p) : w(p, n, k), x(p, m, k) {
    std::mt19937 rng(7);
    fill_random(w, rng, k);
    prune_two_of_four(w, rng);
    fill_random(x, rng, k);
    w_device = std::make_unique<DeviceBytes>(w.bytes.size());
    w_device->upload(w.bytes);
    x_device = std::make_unique<DeviceBytes>(x.bytes.size());
    x_device->upload(x.bytes);
    for (std::int64_t r = 0; r < m; ++r) rows.push_back(r);
    ref = reference_rows(x, w, rows);
  }
};

std::unique_ptr<Gemm> make_gemm(GemmBackendKind kind, GemmContext& ctx, Precision p,
                                const SmallProblem& s) {
  return kind == GemmBackendKind::CusparseLt
             ? make_cusparselt_gemm(ctx, p, s.n, s.k, s.w_device->get())
             : make_cublaslt_gemm(ctx, p, s.n, s.k, s.w_device->get());
}

class GemmPlans : public ::testing::TestWithParam<std::tuple<GemmBackendKind, Precision>> {};

TEST_P(GemmPlans, SearchFindsARunnableAlgorithmAndRunUsesTheBest) {
  SLIDESPARSE_REQUIRE_GPU();
  const auto [kind, precision] = GetParam();
  GemmContext ctx;
  const SmallProblem s(precision);
  auto gemm = make_gemm(kind, ctx, precision, s);
  DeviceBytes acc(acc_bytes(*gemm, s.m));
  CudaStream stream;
  SearchOptions options;
  options.warmup = 1;
  options.reps = 3;
  options.max_split_k = 4;
  options.max_heuristic_results = 8;
  const auto timings = gemm->search(s.m, s.x_device->get(), acc.get(), stream.get(), options);
  ASSERT_FALSE(timings.empty());
  ASSERT_TRUE(timings.front().ok) << timings.front().error;
  for (std::size_t i = 1; i < timings.size(); ++i) {
    if (!timings[i].ok) {
      EXPECT_FALSE(timings[i].error.empty()) << "a failed candidate says why";
      continue;
    }
    EXPECT_TRUE(timings[i - 1].ok) << "candidates that ran come first";
    EXPECT_LE(timings[i - 1].median_us, timings[i].median_us);
  }
  EXPECT_GT(timings.front().median_us, 0.0);
  ASSERT_TRUE(gemm->prepared_algo(s.m));
  EXPECT_EQ(*gemm->prepared_algo(s.m), timings.front().algo);

  SLIDESPARSE_CHECK_CUDA(cudaMemset(acc.get(), 0, acc_bytes(*gemm, s.m)));
  gemm->run(s.x_device->get(), acc.get(), s.m, stream.get());
  stream.synchronize();
  expect_matches(acc.download(), gemm->output_type(), s.n, s.n, s.rows, s.ref, precision,
                 "best of search: " + timings.front().algo.describe());

  // The record survives JSON (the tuning database) and rebuilds the same plan.
  const GemmAlgo again =
      GemmAlgo::from_json(nlohmann::json::parse(timings.front().algo.to_json().dump()));
  auto other = make_gemm(kind, ctx, precision, s);
  other->prepare(s.m, again);
  EXPECT_EQ(*other->prepared_algo(s.m), timings.front().algo);
}

TEST_P(GemmPlans, PrepareTwiceKeepsOnePlanAndARunOnAPreparedMAllocatesNothing) {
  SLIDESPARSE_REQUIRE_GPU();
  const auto [kind, precision] = GetParam();
  GemmContext ctx;
  const SmallProblem s(precision);
  auto gemm = make_gemm(kind, ctx, precision, s);
  DeviceBytes acc(acc_bytes(*gemm, s.m));
  CudaStream stream;

  gemm->prepare(s.m, GemmAlgo{});
  const std::int64_t after_first = gemm_device_allocations();
  gemm->prepare(s.m, GemmAlgo{});
  EXPECT_EQ(gemm_device_allocations(), after_first) << "same M and algorithm: cached";
  EXPECT_EQ(gemm->cached_plans(), 1u);
  for (int i = 0; i < 10; ++i) gemm->run(s.x_device->get(), acc.get(), s.m, stream.get());
  stream.synchronize();
  EXPECT_EQ(gemm_device_allocations(), after_first) << "run() on a prepared M allocates";

  // Re-preparing M with another algorithm replaces its plan: the count and memory stay put
  // once both algorithms have been seen (the first may grow the shared workspace).
  const GemmAlgo explicit_algo{0, 1, 0, kind == GemmBackendKind::CublasLtDense ? 0 : -1, {}};
  gemm->prepare(s.m, explicit_algo);
  gemm->prepare(s.m, GemmAlgo{});
  const std::int64_t before_loop = gemm_device_allocations();
  std::size_t free_before = 0, free_after = 0, total = 0;
  SLIDESPARSE_CHECK_CUDA(cudaMemGetInfo(&free_before, &total));
  for (int i = 0; i < 50; ++i) {
    gemm->prepare(s.m, explicit_algo);
    gemm->prepare(s.m, GemmAlgo{});
  }
  SLIDESPARSE_CHECK_CUDA(cudaMemGetInfo(&free_after, &total));
  EXPECT_EQ(gemm->cached_plans(), 1u);
  EXPECT_LE(free_before - std::min(free_before, free_after), std::size_t{8} << 20)
      << "100 re-prepared plans cost device memory";
  EXPECT_EQ(gemm_device_allocations(), before_loop) << "the workspace was reused";
}

INSTANTIATE_TEST_SUITE_P(Backends, GemmPlans,
                         ::testing::Combine(::testing::Values(GemmBackendKind::CublasLtDense,
                                                              GemmBackendKind::CusparseLt),
                                            ::testing::Values(Precision::INT8, Precision::BF16)),
                         [](const auto& info) {
                           return std::string(backend_name(std::get<0>(info.param))) + "_" +
                                  name_of(std::get<1>(info.param));
                         });

TEST(GemmCusparseLt, RejectsWeightsThatAreNotTwoToFour) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  HostMatrix w(Precision::INT8, 64, 64);
  std::mt19937 rng(3);
  fill_random(w, rng, 64);  // dense: most groups of 4 hold 4 non-zeros
  w.set_code(0, 5, 5.0f);
  DeviceBytes w_device(w.bytes.size());
  w_device.upload(w.bytes);
  try {
    make_cusparselt_gemm(ctx, Precision::INT8, 64, 64, w_device.get());
    FAIL() << "dense weights were accepted as 2:4";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("not 2:4"), std::string::npos) << e.what();
  }
}

TEST(GemmShapes, WrongMultiplesAreRejectedWithTheRule) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  DeviceBytes w_device(64 * 96);
  try {
    make_cusparselt_gemm(ctx, Precision::INT8, 48, 64, w_device.get());  // N = 48: not ×32
    FAIL() << "N = 48 was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("N must be a multiple of 32"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(make_cublaslt_gemm(ctx, Precision::INT8, 64, 66, w_device.get()), InvalidArgument);
  auto gemm = make_cublaslt_gemm(ctx, Precision::INT8, 64, 64, w_device.get());
  EXPECT_THROW(gemm->run(nullptr, w_device.get(), 4, nullptr), InvalidArgument);
  EXPECT_THROW(gemm->run(w_device.get(), w_device.get(), 0, nullptr), InvalidArgument);
}

}  // namespace
}  // namespace slidesparse
