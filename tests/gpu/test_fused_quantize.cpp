// The runner's fused producers (runner/fused_quantize.hpp) against the unfused sequences they
// replace: rms_norm / add_rms_norm / gated_activation (+ rms_norm) into a BF16 buffer, then
// quantize_lift_per_token (sparse path) or quantize_per_token (dense path). Tolerance: none,
// the q bytes, the scales and the updated residual must be equal bit for bit (both sides run
// the same float operations in the same order: row_math.cuh, quantize_lift_row.cuh).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/cuda/quantize.hpp"
#include "slidesparse/cuda/quantize_lift.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/runner/fused_quantize.hpp"
#include "slidesparse/runner/model_kernels.hpp"

namespace slidesparse {
namespace {

using runner::bf16;
using runner::QuantizeTarget;
using Bits = std::vector<std::uint16_t>;

constexpr std::uint8_t kPoison = 0xA5;
constexpr float kEps = 1e-6f;

enum class Producer {
  RmsNorm,         // rms_norm_quantize_lift (the first layer's input norm, BitNet's attn_sub_norm)
  AddRmsNorm,      // add_rms_norm_quantize_lift (every other norm)
  GatedSilu,       // gated_activation_quantize_lift, Llama / Qwen2
  GatedRelu2,      // gated_activation_quantize_lift, relu²
  GatedRelu2Norm,  // gated_activation_rms_norm_quantize_lift, BitNet
  GatedSiluNorm,
};

const char* producer_name(Producer p) {
  switch (p) {
    case Producer::RmsNorm:
      return "RmsNorm";
    case Producer::AddRmsNorm:
      return "AddRmsNorm";
    case Producer::GatedSilu:
      return "GatedSilu";
    case Producer::GatedRelu2:
      return "GatedRelu2";
    case Producer::GatedRelu2Norm:
      return "GatedRelu2Norm";
    case Producer::GatedSiluNorm:
      return "GatedSiluNorm";
  }
  return "?";
}

bool is_gated(Producer p) {
  return p == Producer::GatedSilu || p == Producer::GatedRelu2 || p == Producer::GatedRelu2Norm ||
         p == Producer::GatedSiluNorm;
}
bool gated_norm(Producer p) {
  return p == Producer::GatedRelu2Norm || p == Producer::GatedSiluNorm;
}
Activation activation_of(Producer p) {
  return p == Producer::GatedSilu || p == Producer::GatedSiluNorm ? Activation::Silu
                                                                  : Activation::Relu2;
}

using test::round_up;

// "dense" is the identity map (quantize_per_token, the dense path); anything else a pattern.
struct MapSpec {
  bool lift;
  Pattern pattern;
  std::string name() const { return lift ? pattern.zeros_name() : std::string("dense"); }
  std::int64_t k_out(std::int64_t k) const { return round_up(lift ? pattern.k_slide(k) : k, 16); }
};
MapSpec map_spec(const std::string& name) {
  if (name == "dense") return MapSpec{false, Pattern::infinite()};
  return MapSpec{true, Pattern::parse(name)};
}

Bits random_bf16(std::size_t count, float lo, float hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Bits out(count);
  for (auto& v : out) v = float_to_bf16(dist(rng));
  return out;
}

DeviceBuffer<std::uint16_t> upload(const Bits& bits) {
  DeviceBuffer<std::uint16_t> buffer(std::max<std::size_t>(bits.size(), 1));
  buffer.upload(bits.data(), bits.size());
  return buffer;
}

bf16* bf(DeviceBuffer<std::uint16_t>& b) { return reinterpret_cast<bf16*>(b.get()); }

// The producer's inputs, on the host: the main rows (the residual, or gate|up), the addend
// (add_rms_norm's y) and the norm weight.
struct Inputs {
  Bits x, y, weight;
};

// Rows past the first kDistinctRows repeat them (the large test would spend its time here).
constexpr std::int64_t kDistinctRows = 1021;

Bits repeated_rows(Bits distinct, std::int64_t m, std::int64_t row_elements) {
  const std::size_t row = static_cast<std::size_t>(row_elements);
  const std::size_t have = distinct.size() / row;
  distinct.resize(static_cast<std::size_t>(m) * row);
  for (std::size_t r = have; r < static_cast<std::size_t>(m); ++r)
    std::copy_n(distinct.begin() + static_cast<std::ptrdiff_t>(r % have * row), row,
                distinct.begin() + static_cast<std::ptrdiff_t>(r * row));
  return distinct;
}

Inputs make_inputs(Producer p, std::int64_t m, std::int64_t width, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Inputs in;
  const std::int64_t distinct = std::min(m, kDistinctRows);
  const std::int64_t x_width = is_gated(p) ? 2 * width : width;
  const float x_range = is_gated(p) ? 4.0f : 2.0f;
  in.x = repeated_rows(
      random_bf16(static_cast<std::size_t>(distinct * x_width), -x_range, x_range, rng), m,
      x_width);
  if (p == Producer::AddRmsNorm)
    in.y = repeated_rows(random_bf16(static_cast<std::size_t>(distinct * width), -1.0f, 1.0f, rng),
                         m, width);
  in.weight = random_bf16(static_cast<std::size_t>(width), 0.25f, 1.75f, rng);
  // Row 0 all zeros where the rows are norm inputs: scale max(0, 1e-12), codes all 0.
  if (m > 1 && !is_gated(p)) {
    std::fill(in.x.begin(), in.x.begin() + width, std::uint16_t{0});
    if (p == Producer::AddRmsNorm) std::fill(in.y.begin(), in.y.begin() + width, std::uint16_t{0});
  }
  return in;
}

struct Output {
  std::vector<std::uint8_t> q;
  std::vector<std::uint8_t> scales;  // bytes of the float scales
  Bits residual;                     // AddRmsNorm: the updated residual
};

// Runs the producer fused or as the unfused sequence; q and scales start poisoned, so every
// byte either side leaves unwritten shows too.
Output run(Producer p, Precision precision, const MapSpec& map, std::int64_t m, std::int64_t width,
           const Inputs& in, bool fused, bool with_scales = true) {
  DeviceBuffer<std::uint16_t> x = upload(in.x);
  DeviceBuffer<std::uint16_t> y = upload(in.y);
  DeviceBuffer<std::uint16_t> weight = upload(in.weight);
  const std::int64_t k_out = map.k_out(width);
  const std::size_t q_bytes =
      static_cast<std::size_t>(m * k_out) * dtype_size(precision_storage(precision));
  DeviceBuffer<std::uint8_t> q(std::max<std::size_t>(q_bytes, 1));
  DeviceBuffer<float> scales(static_cast<std::size_t>(std::max<std::int64_t>(m, 1)));
  q.fill_bytes(kPoison);
  scales.fill_bytes(kPoison);
  QuantizeTarget target;
  target.q = q.get();
  target.k_out = k_out;
  target.scales = with_scales ? scales.get() : nullptr;
  target.precision = precision;
  target.lift = map.lift;
  target.pattern = map.pattern;

  if (fused) {
    switch (p) {
      case Producer::RmsNorm:
        runner::rms_norm_quantize_lift(bf(x), bf(weight), m, width, kEps, target, nullptr);
        break;
      case Producer::AddRmsNorm:
        runner::add_rms_norm_quantize_lift(bf(x), bf(y), bf(weight), m, width, kEps, target,
                                           nullptr);
        break;
      case Producer::GatedSilu:
      case Producer::GatedRelu2:
        runner::gated_activation_quantize_lift(bf(x), m, width, activation_of(p), target, nullptr);
        break;
      case Producer::GatedRelu2Norm:
      case Producer::GatedSiluNorm:
        runner::gated_activation_rms_norm_quantize_lift(bf(x), m, width, activation_of(p),
                                                        bf(weight), kEps, target, nullptr);
        break;
    }
  } else {
    DeviceBuffer<std::uint16_t> rows(
        static_cast<std::size_t>(std::max<std::int64_t>(m, 1) * width));
    if (p == Producer::RmsNorm) {
      runner::rms_norm(bf(rows), bf(x), bf(weight), m, width, kEps, nullptr);
    } else if (p == Producer::AddRmsNorm) {
      runner::add_rms_norm(bf(x), bf(y), bf(rows), bf(weight), m, width, kEps, nullptr);
    } else {
      runner::gated_activation(bf(rows), bf(x), m, width, activation_of(p), nullptr);
      if (gated_norm(p))  // in place, as the runner does
        runner::rms_norm(bf(rows), bf(rows), bf(weight), m, width, kEps, nullptr);
    }
    if (map.lift)
      quantize_lift_per_token(rows.get(), DType::BF16, m, width, width, map.pattern, precision,
                              target.q, k_out, target.scales, nullptr);
    else
      quantize_per_token(rows.get(), DType::BF16, m, width, width, precision, target.q, k_out,
                         target.scales, nullptr);
    SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());  // `rows` is freed on return
  }
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
  Output out;
  out.q.resize(q_bytes);
  q.download(out.q.data(), q_bytes);
  out.scales.resize(static_cast<std::size_t>(m) * sizeof(float));
  scales.download(reinterpret_cast<float*>(out.scales.data()), static_cast<std::size_t>(m));
  if (p == Producer::AddRmsNorm) {
    out.residual.resize(in.x.size());
    x.download(out.residual.data(), out.residual.size());
  }
  return out;
}

// The first differing position of two byte vectors, or -1.
template <class T>
std::int64_t first_difference(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<std::int64_t>(i);
  return -1;
}

void expect_fused_equals_unfused(Producer p, Precision precision, const MapSpec& map,
                                 std::int64_t m, std::int64_t width, bool with_scales = true) {
  SCOPED_TRACE(std::string(producer_name(p)) + " " + precision_name(precision) + " " + map.name() +
               " M=" + std::to_string(m) + " width=" + std::to_string(width) +
               (with_scales ? "" : " (no scales)"));
  const Inputs in = make_inputs(p, m, width, static_cast<std::uint64_t>(m * 7919 + width));
  const Output want = run(p, precision, map, m, width, in, false, with_scales);
  const Output got = run(p, precision, map, m, width, in, true, with_scales);
  const std::int64_t k_out = map.k_out(width);
  const std::int64_t element = static_cast<std::int64_t>(dtype_size(precision_storage(precision)));
  const std::int64_t q_diff = first_difference(got.q, want.q);
  EXPECT_EQ(q_diff, -1) << "q differs first at row " << q_diff / element / k_out << ", column "
                        << q_diff / element % k_out;
  if (with_scales) {
    const std::int64_t s_diff = first_difference(got.scales, want.scales);
    EXPECT_EQ(s_diff, -1) << "scales differ first at row " << s_diff / 4;
  }
  const std::int64_t r_diff = first_difference(got.residual, want.residual);
  EXPECT_EQ(r_diff, -1) << "the residual differs first at element " << r_diff;
}

// ---- every producer × INT8/FP8 × map, on ragged widths and M = 1, 300 ---------------------

using FusedCase = std::tuple<Producer, Precision, std::string>;

class FusedQuantize : public ::testing::TestWithParam<FusedCase> {};

TEST_P(FusedQuantize, EqualsUnfusedBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  const auto& [producer, precision, map_name] = GetParam();
  const MapSpec map = map_spec(map_name);
  // 1024: the 16-byte layout; 1000: a multiple of 8, not of 16 nor of any L > 8;
  // 999: odd (the scalar layout); 40: fewer columns than threads.
  for (const std::int64_t width : {1024, 1000, 999, 40}) {
    for (const std::int64_t m : {1, 300}) {
      expect_fused_equals_unfused(producer, precision, map, m, width);
      if (HasFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    ProducersPrecisionsMaps, FusedQuantize,
    ::testing::Combine(::testing::Values(Producer::RmsNorm, Producer::AddRmsNorm,
                                         Producer::GatedSilu, Producer::GatedRelu2,
                                         Producer::GatedRelu2Norm, Producer::GatedSiluNorm),
                       ::testing::Values(Precision::INT8, Precision::FP8),
                       ::testing::Values(std::string("dense"), std::string("2_4"),
                                         std::string("2_6"), std::string("2_8"),
                                         std::string("2_10"), std::string("2_16"),
                                         std::string("2_inf"))),
    [](const auto& info) {
      std::string map = std::get<2>(info.param);
      std::replace(map.begin(), map.end(), '_', 'x');
      return std::string(producer_name(std::get<0>(info.param))) + "_" +
             precision_name(std::get<1>(info.param)) + "_" + map;
    });

// ---- the other paths: unquantized precisions, rows past shared memory, opt-in memory ------

TEST(FusedQuantizePaths, UnquantizedPrecisionsWithAndWithoutScales) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const Precision precision : {Precision::BF16, Precision::FP16}) {
    for (const Producer p : {Producer::AddRmsNorm, Producer::GatedSilu}) {
      for (const bool with_scales : {true, false}) {
        expect_fused_equals_unfused(p, precision, map_spec("2_8"), 37, 1000, with_scales);
        expect_fused_equals_unfused(p, precision, map_spec("dense"), 37, 999, with_scales);
      }
    }
  }
}

TEST(FusedQuantizePaths, RowsInOptInSharedMemoryAndRowsTooLargeForIt) {
  SLIDESPARSE_REQUIRE_GPU();
  // 29568 (Qwen2.5-72B's intermediate): 58 KB staged (opt-in shared memory); 50000 and 50001:
  // recomputed from global memory (the 16-byte and the scalar layout).
  for (const std::int64_t width : {29568, 50000, 50001}) {
    for (const Producer p :
         {Producer::RmsNorm, Producer::AddRmsNorm, Producer::GatedSilu, Producer::GatedRelu2Norm}) {
      for (const char* map : {"dense", "2_8", "2_inf"}) {
        expect_fused_equals_unfused(p, Precision::INT8, map_spec(map), 3, width);
        expect_fused_equals_unfused(p, Precision::FP8, map_spec(map), 2, width);
        if (HasFailure()) return;
      }
    }
  }
}

// Qwen2.5-7B's hidden size at M = 65536 rows: 470 MB of BF16 rows per buffer, offsets past 2^31
// bytes in q for the 2_inf lifting (65536 · 7168 bytes).
TEST(FusedQuantizeLarge, AddRmsNormAtM65536Width3584) {
  SLIDESPARSE_REQUIRE_GPU();
  if (query_device(0).memory_bytes < (std::uint64_t{8} << 30)) GTEST_SKIP() << "needs 8 GiB";
  for (const char* map : {"2_8", "2_inf", "dense"}) {
    expect_fused_equals_unfused(Producer::AddRmsNorm, Precision::INT8, map_spec(map), 65536, 3584);
    if (HasFailure()) return;
  }
  expect_fused_equals_unfused(Producer::GatedSilu, Precision::FP8, map_spec("2_8"), 65536, 3584);
}

// ---- argument checks (they throw before touching the device: these run without a GPU) -----

TEST(FusedQuantizeArguments, RejectWhatCannotWork) {
  bf16* fake = reinterpret_cast<bf16*>(std::uintptr_t{0x10000});
  float* fake_scales = reinterpret_cast<float*>(std::uintptr_t{0x20000});
  QuantizeTarget t;
  t.q = reinterpret_cast<void*>(std::uintptr_t{0x30000});
  t.scales = fake_scales;
  t.precision = Precision::INT8;
  t.lift = true;
  t.pattern = Pattern::parse("2_8");
  t.k_out = 80;  // k_slide(64) = 96 for 2_8 (6:8): too short
  const auto expect_invalid = [](auto&& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no InvalidArgument (expected one mentioning '" << needle << "')";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_invalid([&] { runner::rms_norm_quantize_lift(fake, fake, 4, 64, kEps, t, nullptr); },
                 "rms_norm_quantize_lift: k_out=80");
  t.k_out = 96;
  t.scales = nullptr;
  expect_invalid(
      [&] { runner::add_rms_norm_quantize_lift(fake, fake, fake, 4, 64, kEps, t, nullptr); },
      "scales are required for int8");
  t.scales = fake_scales;
  t.q = reinterpret_cast<void*>(std::uintptr_t{0x30008});
  expect_invalid(
      [&] { runner::gated_activation_quantize_lift(fake, 4, 64, Activation::Silu, t, nullptr); },
      "16-byte aligned");
  expect_invalid(
      [&] {
        runner::gated_activation_rms_norm_quantize_lift(fake, 4, 0, Activation::Relu2, fake, kEps,
                                                        t, nullptr);
      },
      "width 0 must be positive");
  expect_invalid([&] { runner::rms_norm_quantize_lift(fake, fake, -1, 64, kEps, t, nullptr); },
                 "rows -1 is negative");
  expect_invalid(
      [&] { runner::add_rms_norm_quantize_lift(fake, nullptr, fake, 4, 64, kEps, t, nullptr); },
      "null y");
}

}  // namespace
}  // namespace slidesparse
