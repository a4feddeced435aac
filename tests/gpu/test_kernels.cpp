// The quantize, quantize+lift and dequantize kernels against the CPU reference of
// src/core (quantize.hpp: the same formulas, element by element).
// Every comparison is exact: quantized bytes, scale bits and output bits. Outputs are
// poisoned (0xCD) before each run, with a guard region behind them, so an element the
// kernel forgot or an element written out of bounds shows up.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/dequantize.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/cuda/quantize.hpp"
#include "slidesparse/cuda/quantize_lift.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {
namespace {

constexpr unsigned char kPoison = 0xCD;
constexpr std::size_t kGuardBytes = 256;  // poisoned bytes behind every output
constexpr int kMaxReportedMismatches = 5;

using test::round_up;

std::string hex(unsigned value, int digits) {
  std::ostringstream out;
  out << "0x" << std::hex << std::setw(digits) << std::setfill('0') << value;
  return out.str();
}

// ---- CPU reference ------------------------------------------------------------------

float to_float(std::uint16_t bits, DType t) {
  return t == DType::BF16 ? bf16_to_float(bits) : fp16_to_float(bits);
}

std::uint16_t from_float(float v, DType t) {
  return t == DType::BF16 ? float_to_bf16(v) : float_to_fp16(v);
}

float reference_scale(const std::uint16_t* row, std::int64_t k, DType x_type, Precision p) {
  float absmax = 0.0f;
  for (std::int64_t c = 0; c < k; ++c)
    absmax = std::fmax(absmax, std::fabs(to_float(row[c], x_type)));
  return quant_scale(absmax, p);
}

// One quantized element as stored: 1 byte (INT8, FP8) or 2 bytes (BF16, FP16).
std::uint16_t reference_code(float v, float scale, Precision p) {
  switch (p) {
    case Precision::INT8:
      return static_cast<std::uint8_t>(quantize_int8(v, scale));
    case Precision::FP8:
      return quantize_fp8(v, scale);
    case Precision::BF16:
      return float_to_bf16(v);
    case Precision::FP16:
      return float_to_fp16(v);
  }
  return 0;
}

std::size_t element_bytes(Precision p) { return dtype_size(precision_storage(p)); }

// Plain quantization (identity columns) or one lifting pattern.
struct ColumnMapSpec {
  bool identity;
  Pattern pattern;

  std::string name() const { return identity ? "plain" : "lift_" + pattern.zeros_name(); }
  std::int64_t k_slide(std::int64_t k) const { return identity ? k : pattern.k_slide(k); }
  std::vector<std::int64_t> sources(std::int64_t k, std::int64_t k_out) const {
    std::vector<std::int64_t> out(static_cast<std::size_t>(k_out));
    for (std::int64_t s = 0; s < k_out; ++s)
      out[static_cast<std::size_t>(s)] =
          identity ? (s < k ? s : -1) : lift_source_column(s, pattern, k);
    return out;
  }
};

// Index 0: plain; 1..7: 2_4 ... 2_16; 8: 2_inf.
ColumnMapSpec column_map(int index) {
  if (index == 0) return {true, Pattern::infinite()};
  return {false, Pattern::all().at(static_cast<std::size_t>(index - 1))};
}

// ---- Input rows ------------------------------------------------------------------------

struct HostRows {
  DType type;
  std::int64_t m, k, ld;
  std::vector<std::uint16_t> bits;  // m * ld
  const std::uint16_t* row(std::int64_t r) const { return bits.data() + r * ld; }
};

// Values halfway between neighbouring positive E4M3 codes: FP8 ties-to-even.
std::vector<float> e4m3_midpoints() {
  std::vector<float> out;
  for (unsigned c = 0; c < 0x7E; ++c)
    out.push_back((e4m3_to_float(static_cast<std::uint8_t>(c)) +
                   e4m3_to_float(static_cast<std::uint8_t>(c + 1))) /
                  2.0f);
  return out;
}

// Random rows with a wide spread of magnitudes, and special rows: 1 all ±0, 2 INT8 ties
// (absmax 127 so scale 1, values n + 0.5), 3 FP8 ties (absmax 448, E4M3 midpoints),
// 4 subnormal inputs among normal ones, the last (m >= 6) one huge outlier. Columns
// [k, ld) hold the largest finite value: a kernel reading them changes the absmax.
HostRows make_rows(DType type, std::int64_t m, std::int64_t k, std::int64_t ld,
                   std::uint64_t seed) {
  HostRows rows{type, m, k, ld, std::vector<std::uint16_t>(static_cast<std::size_t>(m * ld))};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> exponent(-8.0f, 8.0f);
  std::uniform_int_distribution<int> int8_value(-127, 126);
  const std::vector<float> midpoints = e4m3_midpoints();
  std::uniform_int_distribution<std::size_t> midpoint(0, midpoints.size() - 1);
  const std::uint16_t largest = type == DType::BF16 ? 0x7F7F : 0x7BFF;
  const float tiny = type == DType::BF16 ? 1e-39f : 3e-6f;  // subnormal in each type
  const float huge = type == DType::BF16 ? 1e30f : 60000.0f;
  for (std::int64_t r = 0; r < m; ++r) {
    std::uint16_t* row = rows.bits.data() + r * ld;
    const float magnitude = std::exp2(exponent(rng));
    for (std::int64_t c = 0; c < k; ++c) {
      const float sign = (rng() & 1) ? -1.0f : 1.0f;
      float v = normal(rng) * magnitude;
      if (r == 1) v = sign * 0.0f;
      if (r == 2) v = c == 0 ? 127.0f : static_cast<float>(int8_value(rng)) + 0.5f;
      if (r == 3) v = c == 0 ? 448.0f : sign * midpoints[midpoint(rng)];
      if (r == 4 && c % 3 == 0) v = sign * tiny * static_cast<float>(1 + c % 7);
      row[c] = from_float(v, type);
    }
    if (r == m - 1 && m >= 6 && k > 0) row[k / 3] = from_float(-huge, type);
    for (std::int64_t c = k; c < ld; ++c) row[c] = largest;
  }
  return rows;
}

const HostRows& cached_rows(DType type, std::int64_t m, std::int64_t k, std::int64_t ld) {
  static std::map<std::tuple<DType, std::int64_t, std::int64_t, std::int64_t>, HostRows> cache;
  const auto key = std::make_tuple(type, m, k, ld);
  auto it = cache.find(key);
  if (it == cache.end())
    it = cache
             .emplace(key, make_rows(type, m, k, ld,
                                     static_cast<std::uint64_t>(m * 1000003 + k * 31 + ld)))
             .first;
  return it->second;
}

// ---- Quantize / lift runs -------------------------------------------------------------

struct QuantCase {
  ColumnMapSpec map;
  Precision precision;
  std::int64_t k_out;
  std::int64_t x_offset = 0;  // elements: misaligns x on purpose

  std::string describe(const HostRows& rows) const {
    std::ostringstream out;
    out << map.name() << " " << precision_label(precision) << " from " << dtype_name(rows.type)
        << " m=" << rows.m << " k=" << rows.k << " ld_x=" << rows.ld << " k_out=" << k_out
        << " x_offset=" << x_offset;
    return out.str();
  }
};

// Expected codes of one output row, and its scale.
std::vector<std::uint16_t> expected_row(const QuantCase& c, const HostRows& rows, std::int64_t r,
                                        const std::vector<std::int64_t>& sources, float* scale) {
  const std::uint16_t* x = rows.row(r);
  *scale = reference_scale(x, rows.k, rows.type, c.precision);
  std::vector<std::uint16_t> codes(static_cast<std::size_t>(rows.k));
  for (std::int64_t col = 0; col < rows.k; ++col)
    codes[static_cast<std::size_t>(col)] =
        reference_code(to_float(x[col], rows.type), *scale, c.precision);
  const std::uint16_t zero = reference_code(0.0f, *scale, c.precision);
  std::vector<std::uint16_t> out(sources.size());
  for (std::size_t s = 0; s < sources.size(); ++s)
    out[s] = sources[s] < 0 ? zero : codes[static_cast<std::size_t>(sources[s])];
  return out;
}

// Compares one downloaded output row; reports the first mismatches with their place.
void check_row(const QuantCase& c, const HostRows& rows, std::int64_t r, std::int64_t data_row,
               const std::uint8_t* got, const std::vector<std::int64_t>& sources, float got_scale,
               bool check_scale, int& reported) {
  float scale = 0.0f;
  const std::vector<std::uint16_t> expected = expected_row(c, rows, data_row, sources, &scale);
  if (check_scale && std::memcmp(&got_scale, &scale, sizeof scale) != 0 &&
      reported++ < kMaxReportedMismatches)
    ADD_FAILURE() << c.describe(rows) << ": row " << r << " scale " << std::hexfloat << got_scale
                  << " expected " << scale << std::defaultfloat;
  const std::size_t bytes = element_bytes(c.precision);
  std::int64_t mismatches = 0;
  for (std::size_t s = 0; s < expected.size(); ++s) {
    std::uint16_t value = got[s * bytes];
    if (bytes == 2) value = static_cast<std::uint16_t>(value | got[s * bytes + 1] << 8);
    if (value == expected[s]) continue;
    ++mismatches;
    if (reported++ < kMaxReportedMismatches) {
      const std::int64_t source = sources[s];
      ADD_FAILURE() << c.describe(rows) << ": row " << r << " column " << s << " (source column "
                    << source << ", x = "
                    << (source < 0 ? 0.0f : to_float(rows.row(data_row)[source], rows.type))
                    << ", scale " << std::hexfloat << scale << std::defaultfloat << ") got "
                    << hex(value, 2 * static_cast<int>(bytes)) << " expected "
                    << hex(expected[s], 2 * static_cast<int>(bytes));
    }
  }
  if (mismatches > 0)
    ADD_FAILURE() << c.describe(rows) << ": row " << r << " has " << mismatches << " of "
                  << expected.size() << " elements wrong";
}

void quantize_on_device(const QuantCase& c, const HostRows& rows, const void* x, void* q,
                        float* scales) {
  if (c.map.identity)
    quantize_per_token(x, rows.type, rows.m, rows.k, rows.ld, c.precision, q, c.k_out, scales,
                       nullptr);
  else
    quantize_lift_per_token(x, rows.type, rows.m, rows.k, rows.ld, c.map.pattern, c.precision, q,
                            c.k_out, scales, nullptr);
}

void run_and_compare(const QuantCase& c, const HostRows& rows, bool pass_scales = true) {
  DeviceBuffer<std::uint16_t> x(static_cast<std::size_t>(c.x_offset) + rows.bits.size());
  x.upload(rows.bits.data(), rows.bits.size(), static_cast<std::size_t>(c.x_offset));
  const std::size_t q_bytes =
      static_cast<std::size_t>(rows.m * c.k_out) * element_bytes(c.precision);
  DeviceBuffer<std::uint8_t> q(q_bytes + kGuardBytes);
  DeviceBuffer<float> scales(static_cast<std::size_t>(rows.m) + kGuardBytes / sizeof(float));
  q.fill_bytes(kPoison);
  scales.fill_bytes(kPoison);
  quantize_on_device(c, rows, x.get() + c.x_offset, q.get(), pass_scales ? scales.get() : nullptr);
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());

  std::vector<std::uint8_t> got(q.size());
  q.download(got.data(), got.size());
  std::vector<float> got_scales(scales.size());
  scales.download(got_scales.data(), got_scales.size());

  const std::vector<std::int64_t> sources = c.map.sources(rows.k, c.k_out);
  const std::size_t row_bytes = static_cast<std::size_t>(c.k_out) * element_bytes(c.precision);
  int reported = 0;
  for (std::int64_t r = 0; r < rows.m && reported < kMaxReportedMismatches; ++r)
    check_row(c, rows, r, r, got.data() + static_cast<std::size_t>(r) * row_bytes, sources,
              got_scales[static_cast<std::size_t>(r)], pass_scales, reported);
  for (std::size_t i = q_bytes; i < got.size(); ++i)
    if (got[i] != kPoison) {
      ADD_FAILURE() << c.describe(rows) << ": wrote past the end of q, byte " << i - q_bytes;
      break;
    }
  std::uint32_t poison_word;
  std::memset(&poison_word, kPoison, sizeof poison_word);
  const std::size_t scales_end = pass_scales ? static_cast<std::size_t>(rows.m) : 0;
  for (std::size_t i = scales_end; i < got_scales.size(); ++i)
    if (std::memcmp(&got_scales[i], &poison_word, sizeof poison_word) != 0) {
      ADD_FAILURE() << c.describe(rows) << ": wrote scale " << i << " outside [0, m)";
      break;
    }
}

// ---- Every map x precision x input type, on the shapes of the brief -----------------------

using QuantParam = std::tuple<int, Precision, DType>;

class QuantizeKernel : public ::testing::TestWithParam<QuantParam> {};

TEST_P(QuantizeKernel, MatchesReferenceExactly) {
  SLIDESPARSE_REQUIRE_GPU();
  const auto [map_index, precision, x_type] = GetParam();
  const ColumnMapSpec map = column_map(map_index);
  for (const std::int64_t m : {1, 7, 300}) {
    for (const std::int64_t k : {64, 100, 4096, 18944}) {
      // M = 7: rows further apart than k (ld_x = k + 24 keeps 16-byte rows when k allows).
      const std::int64_t ld_x = m == 7 ? k + 24 : k;
      // Pad k_out past k_slide except for one ragged shape, which is padded to 16 only.
      const std::int64_t k_out = round_up(map.k_slide(k), 16) + (k == 100 ? 0 : 32);
      run_and_compare(QuantCase{map, precision, k_out}, cached_rows(x_type, m, k, ld_x));
      if (HasFailure()) return;
    }
  }
}

std::string quant_param_name(const ::testing::TestParamInfo<QuantParam>& info) {
  const auto [map_index, precision, x_type] = info.param;
  return column_map(map_index).name() + "_" + precision_label(precision) + "_from_" +
         dtype_name(x_type);
}

INSTANTIATE_TEST_SUITE_P(AllMapsPrecisionsInputs, QuantizeKernel,
                         ::testing::Combine(::testing::Range(0, 9),
                                            ::testing::Values(Precision::INT8, Precision::FP8,
                                                              Precision::BF16, Precision::FP16),
                                            ::testing::Values(DType::BF16, DType::F16)),
                         quant_param_name);

TEST(QuantizeKernelPaths, RowsTooLargeForSharedMemoryAndOptInSharedMemory) {
  SLIDESPARSE_REQUIRE_GPU();
  // k = 40000 stages 80 KB (opt-in shared memory); k = 50001 re-reads x from global memory.
  for (const std::int64_t k : {40000, 50001}) {
    for (int map_index = 0; map_index < 9; ++map_index) {
      for (const Precision p : {Precision::INT8, Precision::FP8, Precision::BF16}) {
        const ColumnMapSpec map = column_map(map_index);
        run_and_compare(QuantCase{map, p, round_up(map.k_slide(k), 16) + 16},
                        cached_rows(DType::BF16, 3, k, k));
        if (HasFailure()) return;
      }
    }
  }
}

TEST(QuantizeKernelPaths, UnquantizedPrecisionsAcceptNullScales) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const Precision p : {Precision::BF16, Precision::FP16}) {
    run_and_compare(QuantCase{column_map(3), p, 1536}, cached_rows(DType::F16, 7, 1000, 1000),
                    false);
    run_and_compare(QuantCase{column_map(0), p, 1008}, cached_rows(DType::BF16, 7, 1000, 1000),
                    false);
  }
}

TEST(QuantizeKernelPaths, FuzzShapesStridesAndAlignment) {
  SLIDESPARSE_REQUIRE_GPU();
  std::mt19937_64 rng(20261123);
  const Precision precisions[] = {Precision::INT8, Precision::FP8, Precision::BF16,
                                  Precision::FP16};
  for (int iteration = 0; iteration < 50 && !HasFailure(); ++iteration) {
    const ColumnMapSpec map = column_map(static_cast<int>(rng() % 9));
    const Precision p = precisions[rng() % 4];
    const DType x_type = rng() % 2 ? DType::BF16 : DType::F16;
    const std::int64_t m = 1 + static_cast<std::int64_t>(rng() % 40);
    const std::int64_t k = rng() % 4 == 0 ? 1 + static_cast<std::int64_t>(rng() % 20)
                                          : 1 + static_cast<std::int64_t>(rng() % 3000);
    const std::int64_t ld_x = k + static_cast<std::int64_t>(rng() % 18);
    QuantCase c{map, p, round_up(map.k_slide(k), 16) + 16 * static_cast<std::int64_t>(rng() % 3)};
    c.x_offset = static_cast<std::int64_t>(rng() % 8);
    const HostRows rows = make_rows(x_type, m, k, ld_x, rng());
    SCOPED_TRACE("fuzz iteration " + std::to_string(iteration));
    run_and_compare(c, rows);
  }
}

// Qwen2.5-7B down projection at M = 65536: K = 18944, K_slide = 28416 (6:8) and 37888
// (2_inf). x holds 2.5e9 bytes and the 2_inf output 2.5e9 elements: the shape that broke
// 32-bit index arithmetic. All scales are checked; rows are sampled (first, around the
// 2^31 byte/element boundaries, the last), the rest would only cost test time.
TEST(QuantizeKernelLarge, Qwen7bDownProjectionAtM65536) {
  SLIDESPARSE_REQUIRE_GPU();
  constexpr std::int64_t kM = 65536;
  constexpr std::int64_t kK = 18944;
  constexpr std::int64_t kTileRows = 1021;  // distinct rows, repeated down the matrix
  if (query_device(0).memory_bytes < (std::uint64_t{8} << 30)) GTEST_SKIP() << "needs 8 GiB";

  const HostRows tile = make_rows(DType::BF16, kTileRows, kK, kK, 7);
  HostRows full{DType::BF16, kM, kK, kK,
                std::vector<std::uint16_t>(static_cast<std::size_t>(kM * kK))};
  for (std::int64_t r = 0; r < kM; ++r)
    std::memcpy(full.bits.data() + r * kK, tile.row(r % kTileRows), kK * sizeof(std::uint16_t));
  DeviceBuffer<std::uint16_t> x(full.bits.size());
  x.upload(full.bits.data(), full.bits.size());
  std::vector<std::uint16_t>().swap(full.bits);  // free the host copy

  std::vector<std::int64_t> sample = {0, 1, 2, 1020, 1021};
  for (std::int64_t boundary : {std::int64_t{1} << 31, std::int64_t{1} << 32}) {
    for (std::int64_t width : {kK * 2, std::int64_t{28416}, std::int64_t{37888}}) {
      const std::int64_t row = boundary / width;  // the row holding element/byte 2^31 or 2^32
      for (std::int64_t r = row - 1; r <= row + 1; ++r)
        if (r >= 0 && r < kM) sample.push_back(r);
    }
  }
  std::mt19937_64 rng(99);
  for (int i = 0; i < 40; ++i) sample.push_back(static_cast<std::int64_t>(rng() % kM));
  for (std::int64_t r = kM - 4; r < kM; ++r) sample.push_back(r);

  std::vector<float> tile_scales;
  for (std::int64_t r = 0; r < kTileRows; ++r)
    tile_scales.push_back(reference_scale(tile.row(r), kK, DType::BF16, Precision::INT8));

  for (const Pattern& pattern : {Pattern::parse("6:8"), Pattern::parse("2_inf")}) {
    const QuantCase c{ColumnMapSpec{false, pattern}, Precision::INT8, pattern.k_slide(kK)};
    ASSERT_EQ(c.k_out % 16, 0);
    const std::size_t q_bytes = static_cast<std::size_t>(kM * c.k_out);
    DeviceBuffer<std::uint8_t> q(q_bytes + kGuardBytes);
    DeviceBuffer<float> scales(kM);
    q.fill_bytes(kPoison);
    scales.fill_bytes(kPoison);
    quantize_lift_per_token(x.get(), DType::BF16, kM, kK, kK, pattern, Precision::INT8, q.get(),
                            c.k_out, scales.get(), nullptr);
    SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());

    std::vector<float> got_scales(kM);
    scales.download(got_scales.data(), got_scales.size());
    int reported = 0;
    for (std::int64_t r = 0; r < kM && reported < kMaxReportedMismatches; ++r) {
      const float expected = tile_scales[static_cast<std::size_t>(r % kTileRows)];
      if (std::memcmp(&expected, &got_scales[static_cast<std::size_t>(r)], sizeof expected) != 0 &&
          reported++ < kMaxReportedMismatches)
        ADD_FAILURE() << pattern.zeros_name() << ": scale of row " << r << " is "
                      << got_scales[static_cast<std::size_t>(r)] << ", expected " << expected;
    }
    const std::vector<std::int64_t> sources = c.map.sources(kK, c.k_out);
    std::vector<std::uint8_t> row_bytes(static_cast<std::size_t>(c.k_out));
    for (const std::int64_t r : sample) {
      if (reported >= kMaxReportedMismatches) break;
      q.download(row_bytes.data(), row_bytes.size(), static_cast<std::size_t>(r * c.k_out));
      SCOPED_TRACE(pattern.zeros_name() + " row " + std::to_string(r));
      check_row(c, tile, r, r % kTileRows, row_bytes.data(), sources, 0.0f, false, reported);
    }
    std::vector<std::uint8_t> guard(kGuardBytes);
    q.download(guard.data(), guard.size(), q_bytes);
    EXPECT_TRUE(
        std::all_of(guard.begin(), guard.end(), [](std::uint8_t b) { return b == kPoison; }))
        << pattern.zeros_name() << ": wrote past the end of q";
  }
}

// ---- Argument checks (run without a GPU: they throw before touching the device) ----------

TEST(QuantizeKernelArguments, RejectWhatCannotWork) {
  void* fake = reinterpret_cast<void*>(std::uintptr_t{0x10000});
  float* fake_scales = reinterpret_cast<float*>(std::uintptr_t{0x20000});
  const Pattern p68 = Pattern::parse("6:8");
  // k_out not a multiple of 16, and below k_slide (96 for k = 64 at 6:8).
  EXPECT_THROW(quantize_per_token(fake, DType::BF16, 4, 64, 64, Precision::INT8, fake, 72,
                                  fake_scales, nullptr),
               InvalidArgument);
  EXPECT_THROW(quantize_lift_per_token(fake, DType::BF16, 4, 64, 64, p68, Precision::INT8, fake, 80,
                                       fake_scales, nullptr),
               InvalidArgument);
  EXPECT_THROW(quantize_per_token(fake, DType::F32, 4, 64, 64, Precision::INT8, fake, 64,
                                  fake_scales, nullptr),
               InvalidArgument);
  EXPECT_THROW(quantize_per_token(fake, DType::BF16, 4, 64, 32, Precision::INT8, fake, 64,
                                  fake_scales, nullptr),
               InvalidArgument);
  EXPECT_THROW(
      quantize_per_token(fake, DType::BF16, 4, 64, 64, Precision::FP8, fake, 64, nullptr, nullptr),
      InvalidArgument);
  EXPECT_THROW(quantize_per_token(fake, DType::BF16, 4, 64, 64, Precision::INT8,
                                  static_cast<char*>(fake) + 4, 64, fake_scales, nullptr),
               InvalidArgument);
  try {
    quantize_lift_per_token(fake, DType::BF16, 4, 64, 64, p68, Precision::INT8, fake, 80,
                            fake_scales, nullptr);
    ADD_FAILURE() << "k_out below k_slide was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("quantize_lift_per_token"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("96"), std::string::npos) << e.what();
  }
  // Nothing to do is not an error.
  EXPECT_NO_THROW(quantize_per_token(nullptr, DType::BF16, 0, 64, 64, Precision::INT8, nullptr, 64,
                                     nullptr, nullptr));
  EXPECT_THROW(dequantize_output(fake, DType::I8, 4, 64, 64, nullptr, nullptr, nullptr, DType::BF16,
                                 fake, 64, nullptr),
               InvalidArgument);
  EXPECT_THROW(dequantize_output(fake, DType::I32, 4, 64, 64, nullptr, nullptr, nullptr, DType::F32,
                                 fake, 64, nullptr),
               InvalidArgument);
  EXPECT_THROW(dequantize_output(fake, DType::I32, 4, 64, 60, nullptr, nullptr, nullptr,
                                 DType::BF16, fake, 64, nullptr),
               InvalidArgument);
}

// ---- Dequantize -------------------------------------------------------------------------

struct EpilogueData {
  DType acc_type;
  std::int64_t m, n, ld_acc;
  std::vector<std::uint32_t> acc;  // int32 or float bits, m * ld_acc
  std::vector<float> scale_x, scale_w, bias;

  float acc_value(std::int64_t r, std::int64_t c) const {
    const std::uint32_t word = acc[static_cast<std::size_t>(r * ld_acc + c)];
    if (acc_type == DType::I32) return static_cast<float>(static_cast<std::int32_t>(word));
    float f;
    std::memcpy(&f, &word, sizeof f);
    return f;
  }
};

EpilogueData make_epilogue_data(DType acc_type, std::int64_t m, std::int64_t n, std::int64_t ld_acc,
                                std::uint64_t seed) {
  EpilogueData d{
      acc_type, m,  n, ld_acc, std::vector<std::uint32_t>(static_cast<std::size_t>(m * ld_acc)),
      {},       {}, {}};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int32_t> int_value(-(1 << 26), 1 << 26);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(1e-4f, 1e-2f);
  const std::int32_t int_specials[] = {0,         1,        -1, (1 << 24) + 1, -(1 << 24) - 3,
                                       INT32_MAX, INT32_MIN};
  const float float_specials[] = {0.0f, -0.0f, 1e30f, -3e-39f, 65504.0f, 1e5f};
  for (std::size_t i = 0; i < d.acc.size(); ++i) {
    const bool special = rng() % 50 == 0;
    if (acc_type == DType::I32) {
      const std::int32_t v = special ? int_specials[rng() % 7] : int_value(rng);
      d.acc[i] = static_cast<std::uint32_t>(v);
    } else {
      const float v = special ? float_specials[rng() % 6] : normal(rng) * 1000.0f;
      std::memcpy(&d.acc[i], &v, sizeof v);
    }
  }
  for (std::int64_t r = 0; r < m; ++r) d.scale_x.push_back(scale(rng));
  for (std::int64_t c = 0; c < n; ++c) {
    d.scale_w.push_back(scale(rng));
    d.bias.push_back(normal(rng));
  }
  return d;
}

std::uint16_t reference_epilogue(const EpilogueData& d, std::int64_t r, std::int64_t c, bool scales,
                                 bool bias, DType y_type) {
  const float sx = scales ? d.scale_x[static_cast<std::size_t>(r)] : 1.0f;
  const float sw = scales ? d.scale_w[static_cast<std::size_t>(c)] : 1.0f;
  const float b = bias ? d.bias[static_cast<std::size_t>(c)] : 0.0f;
  return from_float(dequantize_output(d.acc_value(r, c), sx, sw, b), y_type);
}

struct DeviceEpilogue {
  DeviceBuffer<std::uint32_t> acc;
  DeviceBuffer<float> scale_x, scale_w, bias;

  explicit DeviceEpilogue(const EpilogueData& d)
      : acc(d.acc.size()),
        scale_x(d.scale_x.size()),
        scale_w(d.scale_w.size()),
        bias(d.bias.size()) {
    acc.upload(d.acc.data(), d.acc.size());
    scale_x.upload(d.scale_x.data(), d.scale_x.size());
    scale_w.upload(d.scale_w.data(), d.scale_w.size());
    bias.upload(d.bias.data(), d.bias.size());
  }
};

using DequantParam = std::tuple<DType, DType>;

class DequantizeKernel : public ::testing::TestWithParam<DequantParam> {};

TEST_P(DequantizeKernel, MatchesReferenceExactly) {
  SLIDESPARSE_REQUIRE_GPU();
  const auto [acc_type, y_type] = GetParam();
  for (const std::int64_t m : {1, 7, 300}) {
    for (const std::int64_t n : {64, 100, 4096}) {
      // M = 7 misaligns acc rows (scalar path); M = 1 and 7 pad y rows (must stay poisoned).
      const std::int64_t ld_acc = m == 7 ? n + 1 : n;
      const std::int64_t ld_y = m == 300 ? n : n + 8;
      const EpilogueData data =
          make_epilogue_data(acc_type, m, n, ld_acc, static_cast<std::uint64_t>(m * n));
      const DeviceEpilogue device(data);
      for (int variant = 0; variant < 4; ++variant) {
        const bool scales = variant < 2;
        const bool bias = variant % 2 == 0;
        const std::size_t y_elements = static_cast<std::size_t>(m * ld_y);
        DeviceBuffer<std::uint16_t> y(y_elements + kGuardBytes / 2);
        y.fill_bytes(kPoison);
        dequantize_output(device.acc.get(), acc_type, m, n, ld_acc,
                          scales ? device.scale_x.get() : nullptr,
                          scales ? device.scale_w.get() : nullptr,
                          bias ? device.bias.get() : nullptr, y_type, y.get(), ld_y, nullptr);
        SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
        std::vector<std::uint16_t> got(y.size());
        y.download(got.data(), got.size());

        const std::string what =
            std::string(dtype_name(acc_type)) + " -> " + dtype_name(y_type) +
            " m=" + std::to_string(m) + " n=" + std::to_string(n) +
            " ld_acc=" + std::to_string(ld_acc) + " ld_y=" + std::to_string(ld_y) +
            (scales ? " scales" : " no scales") + (bias ? " bias" : " no bias");
        const std::uint16_t poison = static_cast<std::uint16_t>(kPoison << 8 | kPoison);
        int reported = 0;
        for (std::int64_t r = 0; r < m; ++r) {
          for (std::int64_t c = 0; c < ld_y; ++c) {
            const std::uint16_t value = got[static_cast<std::size_t>(r * ld_y + c)];
            const std::uint16_t expected =
                c < n ? reference_epilogue(data, r, c, scales, bias, y_type) : poison;
            if (value != expected && reported++ < kMaxReportedMismatches)
              ADD_FAILURE() << what << ": y[" << r << ", " << c << "] = " << hex(value, 4)
                            << " expected " << hex(expected, 4)
                            << (c < n ? " (acc " + std::to_string(data.acc_value(r, c)) + ")"
                                      : std::string(" (padding must stay untouched)"));
          }
        }
        for (std::size_t i = y_elements; i < got.size(); ++i)
          if (got[i] != poison && reported++ < kMaxReportedMismatches)
            ADD_FAILURE() << what << ": wrote past the end of y";
        if (HasFailure()) return;
      }
    }
  }
}

std::string dequant_param_name(const ::testing::TestParamInfo<DequantParam>& info) {
  return std::string(dtype_name(std::get<0>(info.param))) + "_to_" +
         dtype_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AccumulatorAndOutputTypes, DequantizeKernel,
                         ::testing::Combine(::testing::Values(DType::I32, DType::F32),
                                            ::testing::Values(DType::BF16, DType::F16)),
                         dequant_param_name);

// cuSPARSELt writes BF16/F16 results for 16-bit GEMMs: the epilogue then only adds the bias
// (scales null) and converts. Aligned (vector path) and odd n (scalar path).
TEST(DequantizeKernel, SixteenBitAccumulators) {
  SLIDESPARSE_REQUIRE_GPU();
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (const DType acc_type : {DType::BF16, DType::F16}) {
    for (const DType y_type : {DType::BF16, DType::F16}) {
      for (const std::int64_t n : {64, 37}) {
        const std::int64_t m = 19;
        std::vector<std::uint16_t> acc(static_cast<std::size_t>(m * n));
        for (auto& a : acc) a = from_float(normal(rng), acc_type);
        std::vector<float> bias(static_cast<std::size_t>(n));
        for (auto& b : bias) b = normal(rng);
        DeviceBuffer<std::uint16_t> d_acc(acc.size()), d_y(acc.size());
        DeviceBuffer<float> d_bias(bias.size());
        d_acc.upload(acc.data(), acc.size());
        d_bias.upload(bias.data(), bias.size());
        d_y.fill_bytes(kPoison);
        dequantize_output(d_acc.get(), acc_type, m, n, n, nullptr, nullptr, d_bias.get(), y_type,
                          d_y.get(), n, nullptr);
        std::vector<std::uint16_t> y(acc.size());
        d_y.download(y.data(), y.size());
        for (std::int64_t i = 0; i < m * n; ++i) {
          const float a = to_float(acc[static_cast<std::size_t>(i)], acc_type);
          const std::uint16_t expected = from_float(
              dequantize_output(a, 1.0f, 1.0f, bias[static_cast<std::size_t>(i % n)]), y_type);
          ASSERT_EQ(y[static_cast<std::size_t>(i)], expected)
              << dtype_name(acc_type) << " -> " << dtype_name(y_type) << " n=" << n << " at " << i;
        }
      }
    }
  }
}

// More rows than gridDim.y can hold and more than 2^31 elements: the row loop and the
// 64-bit offsets. Rows repeat a 5-row tile of acc; scale_x differs on every row.
TEST(DequantizeKernelLarge, MoreThan2Pow31ElementsAndMoreRowsThanTheGrid) {
  SLIDESPARSE_REQUIRE_GPU();
  constexpr std::int64_t kM = 65613;
  constexpr std::int64_t kN = 32784;
  constexpr std::int64_t kTileRows = 5;
  ASSERT_GT(kM * kN, std::int64_t{1} << 31);
  if (query_device(0).memory_bytes < (std::uint64_t{16} << 30)) GTEST_SKIP() << "needs 16 GiB";

  EpilogueData tile = make_epilogue_data(DType::I32, kTileRows, kN, kN, 5);
  std::mt19937_64 rng(6);
  std::uniform_real_distribution<float> scale(1e-4f, 1e-2f);
  std::vector<float> scale_x(kM);
  for (float& s : scale_x) s = scale(rng);

  DeviceBuffer<std::uint32_t> acc(static_cast<std::size_t>(kM * kN));
  for (std::int64_t r = 0; r < kM; r += kTileRows)
    acc.upload(tile.acc.data(), static_cast<std::size_t>(std::min(kTileRows, kM - r) * kN),
               static_cast<std::size_t>(r * kN));
  DeviceBuffer<float> d_scale_x(scale_x.size()), d_scale_w(tile.scale_w.size()),
      d_bias(tile.bias.size());
  d_scale_x.upload(scale_x.data(), scale_x.size());
  d_scale_w.upload(tile.scale_w.data(), tile.scale_w.size());
  d_bias.upload(tile.bias.data(), tile.bias.size());
  const std::size_t y_elements = static_cast<std::size_t>(kM * kN);
  DeviceBuffer<std::uint16_t> y(y_elements + kGuardBytes / 2);
  y.fill_bytes(kPoison);
  dequantize_output(acc.get(), DType::I32, kM, kN, kN, d_scale_x.get(), d_scale_w.get(),
                    d_bias.get(), DType::BF16, y.get(), kN, nullptr);
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());

  std::vector<std::int64_t> sample = {0, 1, 2, 65534, 65535, 65536, 65537, kM - 2, kM - 1};
  const std::int64_t boundary_row = (std::int64_t{1} << 31) / kN;
  for (std::int64_t r = boundary_row - 1; r <= boundary_row + 1; ++r) sample.push_back(r);
  for (int i = 0; i < 20; ++i) sample.push_back(static_cast<std::int64_t>(rng() % kM));
  std::vector<std::uint16_t> row(static_cast<std::size_t>(kN));
  int reported = 0;
  for (const std::int64_t r : sample) {
    y.download(row.data(), row.size(), static_cast<std::size_t>(r * kN));
    tile.scale_x[static_cast<std::size_t>(r % kTileRows)] = scale_x[static_cast<std::size_t>(r)];
    for (std::int64_t c = 0; c < kN; ++c) {
      const std::uint16_t expected =
          reference_epilogue(tile, r % kTileRows, c, true, true, DType::BF16);
      if (row[static_cast<std::size_t>(c)] != expected && reported++ < kMaxReportedMismatches)
        ADD_FAILURE() << "y[" << r << ", " << c
                      << "] = " << hex(row[static_cast<std::size_t>(c)], 4) << " expected "
                      << hex(expected, 4);
    }
  }
  std::vector<std::uint16_t> guard(kGuardBytes / 2);
  y.download(guard.data(), guard.size(), y_elements);
  EXPECT_TRUE(std::all_of(guard.begin(), guard.end(), [](std::uint16_t v) {
    return v == static_cast<std::uint16_t>(kPoison << 8 | kPoison);
  })) << "wrote past the end of y";
}

}  // namespace
}  // namespace slidesparse
