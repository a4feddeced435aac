#include "slidesparse/synthetic.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <future>

#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/numeric.hpp"

namespace slidesparse {

namespace {

constexpr double kWeightStd = 0.02;  // HF initializer_range
constexpr std::int64_t kChunkElements = std::int64_t{8} << 20;

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// xoshiro256**: fast, and good enough that weights look like noise.
class Xoshiro256 {
 public:
  explicit Xoshiro256(std::uint64_t seed) {
    for (auto& word : s_) word = splitmix64(seed);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_;
};

// Inverse normal CDF by bisection on erfc: exact enough, and run once.
double normal_quantile(double p) {
  double lo = -10.0, hi = 10.0;
  for (int i = 0; i < 80; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// BF16 N(0, kWeightStd²) quantiles at the 65536 midpoints: one 16-bit random
// number picks one normal sample with a table lookup.
const std::array<std::uint16_t, 65536>& normal_bf16_table() {
  static const auto table = [] {
    std::array<std::uint16_t, 65536> t{};
    for (std::size_t i = 0; i < t.size() / 2; ++i) {
      const double q = kWeightStd * normal_quantile((static_cast<double>(i) + 0.5) / 65536.0);
      t[i] = float_to_bf16(static_cast<float>(q));
      t[t.size() - 1 - i] = float_to_bf16(static_cast<float>(-q));  // symmetric
    }
    return t;
  }();
  return table;
}

bool is_norm(const std::string& name) { return name.find("norm.weight") != std::string::npos; }

// Produces one tensor's values in order, chunk by chunk.
class TensorGenerator {
 public:
  TensorGenerator(const TensorSpec& spec, std::uint64_t seed)
      : ones_(is_norm(spec.name)), rng_(seed ^ fnv1a(spec.name)), table_(normal_bf16_table()) {}

  void fill(std::uint16_t* out, std::int64_t n) {
    if (ones_) {
      std::fill(out, out + n, float_to_bf16(1.0f));
      return;
    }
    std::int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      const std::uint64_t r = rng_.next();
      out[i] = table_[r & 0xFFFF];
      out[i + 1] = table_[(r >> 16) & 0xFFFF];
      out[i + 2] = table_[(r >> 32) & 0xFFFF];
      out[i + 3] = table_[r >> 48];
    }
    if (i < n) {  // only at the very end of a tensor (chunks are multiples of 4)
      std::uint64_t r = rng_.next();
      for (; i < n; ++i, r >>= 16) out[i] = table_[r & 0xFFFF];
    }
  }

 private:
  bool ones_;
  Xoshiro256 rng_;
  const std::array<std::uint16_t, 65536>& table_;
};

// Greedy: tensors in order, a new shard when the next one would overflow.
std::vector<std::vector<TensorSpec>> split_into_shards(const std::vector<TensorSpec>& specs,
                                                       std::uint64_t max_shard_bytes) {
  std::vector<std::vector<TensorSpec>> shards(1);
  std::uint64_t shard_bytes = 0;
  for (const auto& spec : specs) {
    const std::uint64_t nbytes = spec.nbytes();
    if (!shards.back().empty() && shard_bytes + nbytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(spec);
    shard_bytes += nbytes;
  }
  return shards;
}

std::string shard_file_name(std::size_t index, std::size_t count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

class ShardWriter {
 public:
  ShardWriter(std::uint64_t seed, std::uint64_t total_bytes, const ProgressCallback& progress)
      : seed_(seed), total_bytes_(total_bytes), progress_(progress) {
    for (auto& b : buffers_) b.resize(static_cast<std::size_t>(kChunkElements));
  }

  void write(const std::string& path, const std::vector<TensorSpec>& specs) {
    SafetensorsWriter writer(path, specs, {{"format", "pt"}});
    for (const auto& spec : specs) write_tensor(writer, spec);
    writer.finish();
  }

 private:
  // Two threads: the next chunk is generated while this one is written.
  void write_tensor(SafetensorsWriter& writer, const TensorSpec& spec) {
    writer.begin_tensor(spec.name);
    TensorGenerator generator(spec, seed_);
    const std::int64_t numel = spec.numel();
    std::int64_t generated = 0;
    const auto produce = [&](std::vector<std::uint16_t>& buffer) {
      const std::int64_t n = std::min(kChunkElements, numel - generated);
      generator.fill(buffer.data(), n);
      generated += n;
      return n;
    };
    std::size_t current = 0;
    std::int64_t n = produce(buffers_[current]);
    while (n > 0) {
      const bool more = generated < numel;
      std::future<std::int64_t> next;
      if (more) next = std::async(std::launch::async, produce, std::ref(buffers_[current ^ 1]));
      const std::uint64_t nbytes = static_cast<std::uint64_t>(n) * sizeof(std::uint16_t);
      writer.write_chunk(buffers_[current].data(), nbytes);
      done_bytes_ += nbytes;
      if (progress_) progress_(done_bytes_, total_bytes_);
      n = more ? next.get() : 0;
      current ^= 1;
    }
  }

  std::uint64_t seed_;
  std::uint64_t total_bytes_;
  const ProgressCallback& progress_;
  std::uint64_t done_bytes_ = 0;
  std::array<std::vector<std::uint16_t>, 2> buffers_;
};

}  // namespace

void make_synthetic_checkpoint(const ModelPreset& preset, std::int64_t layers,
                               const std::string& out_dir, std::uint64_t seed, bool force,
                               const ProgressCallback& progress, std::uint64_t max_shard_bytes) {
  if (max_shard_bytes == 0) throw InvalidArgument("max shard size must be positive");
  const std::vector<TensorSpec> specs = preset_tensor_specs(preset, layers);
  const nlohmann::json config = preset_config_json(preset, layers);
  std::uint64_t total_bytes = 0;
  for (const auto& spec : specs) total_bytes += spec.nbytes();

  StagingDirectory staging(out_dir, force);
  const auto in_staging = [&](const std::string& name) {
    return (std::filesystem::path(staging.path()) / name).string();
  };
  write_file_atomic(in_staging("config.json"), config.dump(2) + "\n");

  ShardWriter writer(seed, total_bytes, progress);
  if (total_bytes <= max_shard_bytes) {
    writer.write(in_staging("model.safetensors"), specs);
  } else {
    const auto shards = split_into_shards(specs, max_shard_bytes);
    nlohmann::json weight_map = nlohmann::json::object();
    for (std::size_t i = 0; i < shards.size(); ++i) {
      const std::string file = shard_file_name(i, shards.size());
      writer.write(in_staging(file), shards[i]);
      for (const auto& spec : shards[i]) weight_map[spec.name] = file;
    }
    const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                                  {"weight_map", weight_map}};
    write_file_atomic(in_staging("model.safetensors.index.json"), index.dump(2) + "\n");
  }
  staging.commit();
}

}  // namespace slidesparse
