#include "slidesparse/model/config.hpp"

#include <cmath>

#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {

constexpr std::int64_t kMaxDimension = std::int64_t{1} << 40;

// The transformers config class defaults for the optional fields.
struct ArchitectureDefaults {
  double rms_norm_eps;
  double rope_theta;
  std::int64_t max_position;
  const char* hidden_act;
};

ArchitectureDefaults defaults_of(Architecture a) {
  switch (a) {
    case Architecture::Llama:
      return {1e-6, 10000.0, 2048, "silu"};
    case Architecture::Qwen2:
      return {1e-6, 10000.0, 32768, "silu"};
    case Architecture::BitNet:
      return {1e-5, 500000.0, 2048, "relu2"};
  }
  return {1e-6, 10000.0, 2048, "silu"};
}

// Reads fields of one JSON object; every error names the file and the field.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& object, std::string config_path, std::string prefix = "")
      : object_(object), path_(std::move(config_path)), prefix_(std::move(prefix)) {}

  // Absent or null.
  bool missing(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null();
  }

  std::int64_t positive_int(const char* key) const {
    const nlohmann::json& v = required(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0 ||
        v.get<std::int64_t>() > kMaxDimension)
      fail(key, "is " + v.dump() + ", expected a positive integer");
    return v.get<std::int64_t>();
  }
  std::int64_t positive_int(const char* key, std::int64_t fallback) const {
    return missing(key) ? fallback : positive_int(key);
  }

  double positive_number(const char* key) const {
    const nlohmann::json& v = required(key);
    if (!v.is_number() || !(v.get<double>() > 0.0) || !std::isfinite(v.get<double>()))
      fail(key, "is " + v.dump() + ", expected a positive number");
    return v.get<double>();
  }
  double positive_number(const char* key, double fallback) const {
    return missing(key) ? fallback : positive_number(key);
  }

  bool boolean(const char* key, bool fallback) const {
    if (missing(key)) return fallback;
    const nlohmann::json& v = object_.at(key);
    if (!v.is_boolean()) fail(key, "is " + v.dump() + ", expected true or false");
    return v.get<bool>();
  }

  std::string string(const char* key, const std::string& fallback) const {
    if (missing(key)) return fallback;
    const nlohmann::json& v = object_.at(key);
    if (!v.is_string()) fail(key, "is " + v.dump() + ", expected a string");
    return v.get<std::string>();
  }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw FormatError(path_ + ": \"" + prefix_ + key + "\" " + what);
  }

 private:
  const nlohmann::json& required(const char* key) const {
    if (missing(key)) throw FormatError(path_ + ": missing \"" + prefix_ + key + "\"");
    return object_.at(key);
  }

  const nlohmann::json& object_;
  std::string path_;
  std::string prefix_;
};

// The RoPE settings object: "rope_parameters" (transformers 5 writes rope_theta and the
// scaling there) or the older "rope_scaling" (rope_theta at the top level); null if neither.
struct RopeObject {
  const nlohmann::json* object = nullptr;
  std::string prefix;  // "rope_parameters." or "rope_scaling." for error messages
};

RopeObject find_rope_object(const nlohmann::json& config, const std::string& config_path) {
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    if (!it->is_object())
      throw FormatError(config_path + ": \"" + key + "\" is " + it->dump() +
                        ", expected null or an object");
    return {&*it, std::string(key) + "."};
  }
  return {};
}

double parse_rope_theta(const nlohmann::json& config, const RopeObject& rope,
                        const std::string& config_path, double fallback) {
  const FieldReader top(config, config_path);
  if (!top.missing("rope_theta") || !rope.object) return top.positive_number("rope_theta", fallback);
  return FieldReader(*rope.object, config_path, rope.prefix).positive_number("rope_theta", fallback);
}

std::optional<Llama3RopeScaling> parse_rope_scaling(const RopeObject& rope,
                                                    const std::string& config_path) {
  if (!rope.object) return std::nullopt;
  const FieldReader fields(*rope.object, config_path, rope.prefix);
  // "type" is the older spelling of "rope_type".
  const std::string type = fields.string("rope_type", fields.string("type", "default"));
  if (type == "default") return std::nullopt;
  if (type != "llama3")
    throw FormatError(config_path + ": unsupported " + rope.prefix + "rope_type '" + type +
                      "' (supported: llama3, default)");
  Llama3RopeScaling s;
  s.factor = fields.positive_number("factor");
  s.low_freq_factor = fields.positive_number("low_freq_factor");
  s.high_freq_factor = fields.positive_number("high_freq_factor");
  s.original_max_position = fields.positive_int("original_max_position_embeddings");
  if (s.high_freq_factor <= s.low_freq_factor)
    fields.fail("high_freq_factor", "is " + std::to_string(s.high_freq_factor) +
                                        ", must be greater than low_freq_factor " +
                                        std::to_string(s.low_freq_factor));
  return s;
}

Activation parse_activation(const FieldReader& fields, const char* fallback) {
  const std::string name = fields.string("hidden_act", fallback);
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "relu2") return Activation::Relu2;
  fields.fail("hidden_act", "is '" + name + "', unsupported (supported: silu, relu2)");
}

}  // namespace

const char* activation_name(Activation a) { return a == Activation::Silu ? "silu" : "relu2"; }

ModelConfig parse_model_config(const nlohmann::json& config, const std::string& config_path) {
  if (!config.is_object()) throw FormatError(config_path + ": not a JSON object");
  ModelConfig c;
  c.architecture = detect_architecture(config, config_path);
  const ArchitectureDefaults defaults = defaults_of(c.architecture);
  const FieldReader fields(config, config_path);

  c.hidden = fields.positive_int("hidden_size");
  c.intermediate = fields.positive_int("intermediate_size");
  c.layers = fields.positive_int("num_hidden_layers");
  c.heads = fields.positive_int("num_attention_heads");
  c.kv_heads = fields.positive_int("num_key_value_heads", c.heads);
  if (c.heads % c.kv_heads != 0)
    fields.fail("num_key_value_heads", "is " + std::to_string(c.kv_heads) +
                                           ", must divide num_attention_heads " +
                                           std::to_string(c.heads));
  if (fields.missing("head_dim") && c.hidden % c.heads != 0)
    fields.fail("hidden_size", "is " + std::to_string(c.hidden) +
                                   ", not a multiple of num_attention_heads " +
                                   std::to_string(c.heads) + " (and no \"head_dim\")");
  c.head_dim = fields.positive_int("head_dim", c.hidden / c.heads);
  if (c.head_dim % 2 != 0)
    fields.fail("head_dim", "is " + std::to_string(c.head_dim) + ", RoPE needs an even head_dim");
  if (c.architecture == Architecture::BitNet && c.q_width() != c.hidden)
    fields.fail("head_dim", "is " + std::to_string(c.head_dim) + ": BitNet's attn_sub_norm needs " +
                                "num_attention_heads * head_dim == hidden_size " +
                                std::to_string(c.hidden));
  c.vocab = fields.positive_int("vocab_size");
  c.max_position = fields.positive_int("max_position_embeddings", defaults.max_position);
  c.rms_norm_eps = fields.positive_number("rms_norm_eps", defaults.rms_norm_eps);
  const RopeObject rope = find_rope_object(config, config_path);
  c.rope_theta = parse_rope_theta(config, rope, config_path, defaults.rope_theta);
  c.rope_scaling = parse_rope_scaling(rope, config_path);
  c.tie_embeddings = fields.boolean("tie_word_embeddings", false);
  c.activation = parse_activation(fields, defaults.hidden_act);

  if (c.architecture == Architecture::Qwen2) {
    // Qwen2 hard-codes biases on q/k/v and none on o_proj; it has no attention_bias field.
    c.qkv_bias = true;
    c.o_bias = false;
    if (fields.boolean("use_sliding_window", false))
      fields.fail("use_sliding_window", "is true: sliding-window attention is not supported");
  } else {
    c.qkv_bias = c.o_bias = fields.boolean("attention_bias", false);
  }
  if (!fields.missing("quantization_config"))  // e.g. BitNet's packed 2-bit checkpoint
    fields.fail("quantization_config",
                "is present: pre-quantized checkpoints are not supported, use a BF16/F16/F32 one");
  if (fields.boolean("mlp_bias", false))
    fields.fail("mlp_bias", "is true: biases on gate/up/down_proj are not supported");
  return c;
}

ModelConfig model_config(const Checkpoint& checkpoint) {
  return parse_model_config(checkpoint.config(), checkpoint.config_path());
}

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  // Every step in float32, in the order of transformers' modeling_rope_utils.py.
  const std::int64_t half = c.head_dim / 2;
  const float dim = static_cast<float>(c.head_dim);
  const float theta = static_cast<float>(c.rope_theta);
  std::vector<float> inv_freq(static_cast<std::size_t>(half));
  for (std::int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / dim;
    inv_freq[static_cast<std::size_t>(i)] = 1.0f / std::pow(theta, exponent);
  }
  if (!c.rope_scaling) return inv_freq;

  const Llama3RopeScaling& s = *c.rope_scaling;
  const float factor = static_cast<float>(s.factor);
  const float low_freq_factor = static_cast<float>(s.low_freq_factor);
  const float old_context = static_cast<float>(s.original_max_position);
  const double low_freq_wavelen = static_cast<double>(s.original_max_position) / s.low_freq_factor;
  const double high_freq_wavelen =
      static_cast<double>(s.original_max_position) / s.high_freq_factor;
  const float band = static_cast<float>(s.high_freq_factor - s.low_freq_factor);
  constexpr float kTwoPi = static_cast<float>(2.0 * 3.14159265358979323846);
  for (float& f : inv_freq) {
    const float wavelen = kTwoPi / f;
    if (wavelen < high_freq_wavelen) continue;  // high frequencies: unchanged
    if (wavelen > low_freq_wavelen) {           // low frequencies: stretched by factor
      f = f / factor;
      continue;
    }
    // In between: interpolate between the stretched and the original frequency.
    const float smooth = (old_context / wavelen - low_freq_factor) / band;
    f = (1.0f - smooth) * f / factor + smooth * f;
  }
  return inv_freq;
}

}  // namespace slidesparse
