// Shared by the attention tests (the runner's kernels and cuDNN's): random BF16 inputs, the
// float32 reference of a ragged causal prefill, and the tolerance both kernels are held to.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "slidesparse/model/reference_blocks.hpp"
#include "slidesparse/numeric.hpp"

namespace slidesparse::test {

// Max abs error for attention outputs of O(1): P is BF16 on the tensor cores and the sums run in
// another order than the reference's.
constexpr float kAttentionTolerance = 2e-2f;

inline std::vector<std::uint16_t> random_bf16(std::size_t count, float lo, float hi,
                                              std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<std::uint16_t> out(count);
  for (auto& v : out) v = float_to_bf16(dist(rng));
  return out;
}

inline std::vector<float> to_floats(const std::vector<std::uint16_t>& bits) {
  std::vector<float> out(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) out[i] = bf16_to_float(bits[i]);
  return out;
}

inline float max_abs_error(const std::vector<std::uint16_t>& gpu,
                           const std::vector<float>& reference) {
  float worst = 0.0f;
  for (std::size_t i = 0; i < gpu.size(); ++i)
    worst = std::max(worst, std::fabs(bf16_to_float(gpu[i]) - reference[i]));
  return worst;
}

// cu_seqlens of sequences of these lengths: {0, l0, l0 + l1, ...}.
inline std::vector<int> cumulative(const std::vector<int>& lengths) {
  std::vector<int> cu = {0};
  for (const int l : lengths) cu.push_back(cu.back() + l);
  return cu;
}

// The reference output of every row of a ragged prefill: row i of a sequence attends to rows
// 0..i of its sequence. qkv [rows, (heads + 2·kv_heads)·head_dim] as floats.
inline std::vector<float> reference_prefill(const std::vector<float>& qkv,
                                            const std::vector<int>& cu, std::int64_t heads,
                                            std::int64_t kv_heads, std::int64_t head_dim) {
  const auto at = [](std::int64_t i) { return static_cast<std::size_t>(i); };
  const std::int64_t width = (heads + 2 * kv_heads) * head_dim;
  const std::int64_t kv_width = kv_heads * head_dim;
  const std::int64_t rows = cu.back();
  std::vector<float> out(at(rows * heads * head_dim));
  for (std::size_t s = 0; s + 1 < cu.size(); ++s) {
    const std::int64_t begin = cu[s], length = cu[s + 1] - cu[s];
    std::vector<float> keys(at(length * kv_width)), values(at(length * kv_width));
    for (std::int64_t t = 0; t < length; ++t)
      for (std::int64_t e = 0; e < kv_width; ++e) {
        keys[at(t * kv_width + e)] = qkv[at((begin + t) * width + heads * head_dim + e)];
        values[at(t * kv_width + e)] =
            qkv[at((begin + t) * width + (heads + kv_heads) * head_dim + e)];
      }
    for (std::int64_t i = 0; i < length; ++i)
      reference::attention(out.data() + (begin + i) * heads * head_dim,
                           qkv.data() + (begin + i) * width, keys.data(), values.data(), i + 1,
                           heads, kv_heads, head_dim);
  }
  return out;
}

}  // namespace slidesparse::test
