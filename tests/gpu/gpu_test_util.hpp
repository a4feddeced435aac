// Shared by the GPU tests: skip cleanly where no GPU is visible.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "slidesparse/cuda/device.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack.hpp"
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

}  // namespace slidesparse::test
