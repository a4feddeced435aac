#include "weight_source.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

#include "slidesparse/converted_checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/model/weights.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/presets.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse::runner {

WeightSource::~WeightSource() = default;

namespace {

std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// [n, k] of a linear's weight in the original (unslid) model.
std::vector<std::int64_t> linear_shape(const ModelConfig& c, LinearKind kind) {
  switch (kind) {
    case LinearKind::Q:
      return {c.q_width(), c.hidden};
    case LinearKind::K:
    case LinearKind::V:
      return {c.kv_width(), c.hidden};
    case LinearKind::O:
      return {c.hidden, c.q_width()};
    case LinearKind::Gate:
    case LinearKind::Up:
      return {c.intermediate, c.hidden};
    case LinearKind::Down:
      return {c.hidden, c.intermediate};
  }
  return {};
}

bool has_bias(const ModelConfig& c, LinearKind kind) {
  if (kind == LinearKind::Q || kind == LinearKind::K || kind == LinearKind::V) return c.qkv_bias;
  return kind == LinearKind::O && c.o_bias;
}

std::string last_component(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// ---- a Hugging Face or converted checkpoint ----------------------------------------------

class CheckpointSource final : public WeightSource {
 public:
  CheckpointSource(const std::string& dir, const GpuModelOptions& options)
      : checkpoint_(Checkpoint::open(dir)), config_(model_config(checkpoint_)) {
    if (is_converted_config(checkpoint_.config())) {
      converted_ = read_converted_info(checkpoint_.config(), checkpoint_.config_path());
      SLIDESPARSE_REQUIRE(
          converted_.precision == options.precision && converted_.pattern == options.pattern,
          InvalidArgument,
          dir + " was converted for pattern " + converted_.pattern.zeros_name() + " and dtype " +
              precision_name(converted_.precision) + ", but pattern " +
              options.pattern.zeros_name() + " and dtype " + precision_name(options.precision) +
              " were asked (convert again, or ask for what it holds)");
      is_converted_ = true;
    }
  }

  const ModelConfig& config() const override { return config_; }
  std::string name() const override { return last_component(checkpoint_.dir()); }
  std::string describe() const override {
    return checkpoint_.dir() + ": " + architecture_name(config_.architecture) +
           (is_converted_
                ? " checkpoint converted by slidesparse (" + converted_.pattern.zeros_name() +
                      ", " + precision_name(converted_.precision) + ")"
                : " Hugging Face checkpoint, packed at load");
  }

  std::vector<std::uint16_t> bf16_tensor(const std::string& name,
                                         const std::vector<std::int64_t>& shape) override {
    const TensorInfo& info = checkpoint_.info(name);
    SLIDESPARSE_REQUIRE(info.shape == shape, FormatError,
                        checkpoint_.dir() + ": tensor " + name + " has shape " +
                            shape_text(info.shape) + ", expected " + shape_text(shape));
    SLIDESPARSE_REQUIRE(
        info.dtype == DType::BF16 || info.dtype == DType::F16 || info.dtype == DType::F32,
        FormatError,
        checkpoint_.dir() + ": tensor " + name + " has dtype " + dtype_name(info.dtype) +
            ", expected BF16, F16 or F32");
    const std::uint8_t* data = checkpoint_.data(name);
    std::vector<std::uint16_t> out(at(info.numel()));
    if (info.dtype == DType::BF16) {
      std::memcpy(out.data(), data, out.size() * sizeof(std::uint16_t));
    } else {
      for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = float_to_bf16(storage_to_float(data, static_cast<std::int64_t>(i), info.dtype));
    }
    return out;
  }

  PackedLinear fused_linear(std::int64_t layer, const std::vector<LinearKind>& kinds,
                            const GpuModelOptions& options, int threads) override {
    std::vector<PackedLinear> parts;
    for (LinearKind kind : kinds) {
      const std::string weight = linear_weight_name(layer, kind);
      const std::string prefix = weight.substr(0, weight.size() - std::strlen(".weight"));
      if (is_converted_ && converted_.find(prefix)) {
        parts.push_back(load_packed_linear(checkpoint_, converted_, prefix));
        continue;
      }
      // Not converted (or a plain checkpoint): pack straight from the mapped BF16 rows.
      const std::vector<std::int64_t> shape = linear_shape(config_, kind);
      const TensorInfo& info = checkpoint_.info(weight);
      SLIDESPARSE_REQUIRE(info.shape == shape, FormatError,
                          checkpoint_.dir() + ": tensor " + weight + " has shape " +
                              shape_text(info.shape) + ", expected " + shape_text(shape));
      std::vector<float> bias;
      const std::string bias_name = linear_bias_name(layer, kind);
      if (checkpoint_.contains(bias_name)) bias = read_float_tensor(checkpoint_, bias_name);
      SLIDESPARSE_REQUIRE(
          bias.empty() || static_cast<std::int64_t>(bias.size()) == shape[0], FormatError,
          checkpoint_.dir() + ": tensor " + bias_name + " has " + std::to_string(bias.size()) +
              " values, expected " + std::to_string(shape[0]));
      parts.push_back(pack_linear(info.dtype, checkpoint_.data(weight), shape[0], shape[1],
                                  bias.empty() ? nullptr : bias.data(), options.precision,
                                  options.pattern, PruneMode::Magnitude, weight, threads));
    }
    return concatenate_rows(parts);
  }

 private:
  Checkpoint checkpoint_;
  ModelConfig config_;
  bool is_converted_ = false;
  ConvertedModelInfo converted_;
};

// ---- a preset with random weights ---------------------------------------------------------

// Uniform in [-a, a] with a = 0.02·√3 (standard deviation 0.02, like the synthetic
// checkpoints), xorshift64* per block of rows so threads fill blocks independently.
void fill_random(float* out, std::int64_t count, std::uint64_t seed, int threads) {
  const float half_width = 0.02f * 1.7320508f;
  const std::int64_t block = 1 << 20;
  const std::int64_t blocks = (count + block - 1) / block;
  auto work = [&](std::int64_t first_block, std::int64_t step) {
    for (std::int64_t b = first_block; b < blocks; b += step) {
      std::uint64_t s = (seed + static_cast<std::uint64_t>(b) + 1) * 0x9E3779B97F4A7C15ull;
      const std::int64_t end = std::min(count, (b + 1) * block);
      for (std::int64_t i = b * block; i < end; ++i) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        const std::uint64_t r = s * 0x2545F4914F6CDD1Dull;
        const double unit = static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);
        out[i] = static_cast<float>(unit * 2.0 - 1.0) * half_width;
      }
    }
  };
  std::vector<std::thread> pool;
  const int used =
      static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, blocks)));
  for (int t = 1; t < used; ++t) pool.emplace_back(work, t, used);
  work(0, used);
  for (auto& t : pool) t.join();
}

std::uint64_t name_seed(const std::string& name) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

class PresetSource final : public WeightSource {
 public:
  explicit PresetSource(const ModelPreset& preset) : preset_(preset) {
    const nlohmann::json json = preset_config_json(preset, preset.layers);
    config_ = parse_model_config(json, preset.name + " (preset)");
  }

  const ModelConfig& config() const override { return config_; }
  std::string name() const override { return preset_.name; }
  std::string describe() const override {
    return preset_.name + ": preset " + architecture_name(config_.architecture) +
           " with RANDOM weights (no checkpoint read; for timing only)";
  }

  std::vector<std::uint16_t> bf16_tensor(const std::string& name,
                                         const std::vector<std::int64_t>& shape) override {
    std::int64_t count = 1;
    for (std::int64_t d : shape) count *= d;
    std::vector<std::uint16_t> out(at(count));
    if (name.find("norm") != std::string::npos) {  // norms are 1, as initialized
      std::fill(out.begin(), out.end(), float_to_bf16(1.0f));
      return out;
    }
    std::vector<float> values(at(count));
    fill_random(values.data(), count, name_seed(name), threads());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = float_to_bf16(values[i]);
    return out;
  }

  PackedLinear fused_linear(std::int64_t layer, const std::vector<LinearKind>& kinds,
                            const GpuModelOptions& options, int threads) override {
    std::vector<PackedLinear> parts;
    for (LinearKind kind : kinds) {
      const std::string weight = linear_weight_name(layer, kind);
      const std::vector<std::int64_t> shape = linear_shape(config_, kind);
      std::vector<float> w(at(shape[0] * shape[1]));
      fill_random(w.data(), shape[0] * shape[1], name_seed(weight), threads);
      std::vector<float> bias;
      if (has_bias(config_, kind)) {
        bias.resize(at(shape[0]));
        fill_random(bias.data(), shape[0], name_seed(linear_bias_name(layer, kind)), 1);
      }
      parts.push_back(pack_linear(w.data(), shape[0], shape[1],
                                  bias.empty() ? nullptr : bias.data(), options.precision,
                                  options.pattern, PruneMode::Magnitude, weight, threads));
    }
    return concatenate_rows(parts);
  }

 private:
  static int threads() {
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }

  ModelPreset preset_;
  ModelConfig config_;
};

bool is_directory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

PackedLinear concatenate_rows(const std::vector<PackedLinear>& parts) {
  SLIDESPARSE_REQUIRE(!parts.empty(), InvalidArgument, "concatenate_rows: no parts");
  if (parts.size() == 1) return parts.front();
  PackedLinear out;
  const PackedLinear& first = parts.front();
  out.precision = first.precision;
  out.pattern = first.pattern;
  out.k = first.k;
  bool any_bias = false;
  for (const PackedLinear& p : parts) {
    SLIDESPARSE_REQUIRE(
        p.k == first.k && p.precision == first.precision && p.pattern == first.pattern,
        InvalidArgument,
        "concatenate_rows: parts differ in K (" + std::to_string(p.k) + " vs " +
            std::to_string(first.k) + "), precision or pattern");
    out.n += p.n;
    any_bias = any_bias || !p.bias.empty();
  }
  for (const PackedLinear& p : parts) {
    out.weight.insert(out.weight.end(), p.weight.begin(), p.weight.end());
    out.scale.insert(out.scale.end(), p.scale.begin(), p.scale.end());
    if (any_bias) {
      if (p.bias.empty())
        out.bias.insert(out.bias.end(), at(p.n), 0.0f);
      else
        out.bias.insert(out.bias.end(), p.bias.begin(), p.bias.end());
    }
  }
  return out;
}

std::unique_ptr<WeightSource> open_weight_source(const std::string& model,
                                                 const GpuModelOptions& options) {
  if (is_directory(model)) return std::make_unique<CheckpointSource>(model, options);
  SLIDESPARSE_REQUIRE(model.find('/') == std::string::npos, IoError,
                      model + " is not a checkpoint folder (and a path is no preset name)");
  return std::make_unique<PresetSource>(find_preset(model));
}

}  // namespace slidesparse::runner
