// Shared by the GPU tests: skip cleanly where no GPU is visible.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/reference_linear.hpp"

// GTEST_SKIP()s the current test with the runtime's reason when no CUDA device can be used.
#define SLIDESPARSE_REQUIRE_GPU()                                        \
  do {                                                                   \
    std::string slidesparse_why_no_gpu_;                                 \
    if (!::slidesparse::cuda_device_available(&slidesparse_why_no_gpu_)) \
      GTEST_SKIP() << "no CUDA device: " << slidesparse_why_no_gpu_;     \
  } while (0)

namespace slidesparse::test {

// v rounded up to a multiple of `unit` (padded widths the GEMMs and kernels need).
inline std::int64_t round_up(std::int64_t v, std::int64_t unit) { return (v + unit - 1) / unit * unit; }

// The packed layer's slid weights as the CPU reference linear takes them.
inline QuantizedMatrix slid_matrix(const PackedLinear& packed) {
  return {packed.precision, packed.n, packed.k_slide(), packed.weight, packed.scale};
}

// X [m, k] BF16 on the device whose rows repeat a tile of `tile` rows of normal values, quick to
// make at M = 65536; `tile` holds the tile's values (what the reference multiplies).
struct RepeatedRows {
  DeviceBuffer<std::uint16_t> x;
  std::vector<float> tile;
};

inline RepeatedRows repeated_rows(std::int64_t m, std::int64_t k, std::int64_t tile,
                                  std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::uint16_t> bits(static_cast<std::size_t>(tile * k));
  RepeatedRows rows{DeviceBuffer<std::uint16_t>(static_cast<std::size_t>(m * k)),
                    std::vector<float>(bits.size())};
  for (std::size_t i = 0; i < bits.size(); ++i) {
    bits[i] = float_to_bf16(normal(rng));
    rows.tile[i] = bf16_to_float(bits[i]);
  }
  for (std::int64_t r = 0; r < m; r += tile)
    rows.x.upload(bits.data(), bits.size(), static_cast<std::size_t>(r * k));
  return rows;
}

// For a layer run at M = m whose X [m, k] BF16 repeats a tile of `tile` rows: checks rows 0,
// the three around the first row whose X offset passes 2^31 bytes, and the last row of the BF16
// output y [m, n] against `ref` [tile, n], the reference of the tile (64-bit offsets).
inline void expect_rows_past_2_31_match(const DeviceBuffer<std::uint16_t>& y, std::int64_t m,
                                        std::int64_t n, std::int64_t k, std::int64_t tile,
                                        const std::vector<float>& ref) {
  const std::int64_t boundary =
      (std::int64_t{1} << 31) / (k * static_cast<std::int64_t>(sizeof(std::uint16_t)));
  ASSERT_LT(boundary + 1, m);
  std::vector<std::uint16_t> row(static_cast<std::size_t>(n));
  for (const std::int64_t r : {std::int64_t{0}, boundary - 1, boundary, boundary + 1, m - 1}) {
    y.download(row.data(), row.size(), static_cast<std::size_t>(r * n));
    for (std::int64_t c = 0; c < n; ++c)
      ASSERT_EQ(row[static_cast<std::size_t>(c)],
                float_to_bf16(ref[static_cast<std::size_t>((r % tile) * n + c)]))
          << "row " << r << " column " << c;
  }
}

// Qwen2.5-7B's down projection (N = 3584, K = 18944) pruned to 6:8 and packed for INT8: the
// layer of the M = 65536 tests, where the reference system's 32-bit index arithmetic crashed.
struct LargeDownProjection {
  static constexpr std::int64_t kM = 65536, kN = 3584, kK = 18944;
  Pattern pattern;
  PackedLinear packed;
};

inline LargeDownProjection large_down_projection(std::mt19937_64& rng) {
  const Pattern pattern = Pattern::parse("6:8");
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<std::size_t>(LargeDownProjection::kN * LargeDownProjection::kK));
  for (auto& v : w) v = 0.02f * normal(rng);
  return {pattern, pack_linear(w.data(), LargeDownProjection::kN, LargeDownProjection::kK, nullptr,
                               Precision::INT8, pattern, PruneMode::Magnitude,
                               "model.layers.0.mlp.down_proj", 8)};
}

// Runs the sparse path of `layer` (built on `down.packed` for M = kM) at M = kM on rows that
// repeat a tile of 64 distinct rows (quick to make; outputs follow the tile) and checks the
// rows around X's 2^31-byte offset against the CPU reference of the tile.
inline void expect_large_down_projection_matches(SlideSparseLinear& layer,
                                                 const LargeDownProjection& down,
                                                 std::mt19937_64& rng) {
  constexpr std::int64_t kM = LargeDownProjection::kM, kN = LargeDownProjection::kN,
                         kK = LargeDownProjection::kK, kTile = 64;
  const RepeatedRows x = repeated_rows(kM, kK, kTile, rng);
  DeviceBuffer<std::uint16_t> y(static_cast<std::size_t>(kM * kN));
  y.fill_bytes(0xCD, nullptr);
  layer.forward(x.x.get(), kM, y.get(), nullptr, LinearPath::Sparse);
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
  const auto ref = reference_linear_sparse(x.tile.data(), kTile, kK, slid_matrix(down.packed),
                                           down.pattern, nullptr);
  expect_rows_past_2_31_match(y, kM, kN, kK, kTile, ref);
}

}  // namespace slidesparse::test
