// Random-weight checkpoints in real Hugging Face format, for benchmarks and
// tests when no downloaded model is at hand.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "slidesparse/presets.hpp"

namespace slidesparse {

using ProgressCallback = std::function<void(std::uint64_t done_bytes, std::uint64_t total_bytes)>;

// The shard size HF uses by default ("2GB").
constexpr std::uint64_t kDefaultMaxShardBytes = 2'000'000'000;

// Writes `out_dir` (config.json + safetensors) with every tensor of
// `preset` cut to `layers` layers, BF16: weights and biases ~ N(0, 0.02²),
// norms 1. A tensor's values depend only on the seed and its name. More data
// than max_shard_bytes is split into model-0000i-of-0000n.safetensors shards
// with a model.safetensors.index.json. The directory appears only when
// complete (StagingDirectory); an existing one is replaced only with `force`.
void make_synthetic_checkpoint(const ModelPreset& preset, std::int64_t layers,
                               const std::string& out_dir, std::uint64_t seed, bool force,
                               const ProgressCallback& progress = {},
                               std::uint64_t max_shard_bytes = kDefaultMaxShardBytes);

}  // namespace slidesparse
