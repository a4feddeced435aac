#include "slidesparse/presets.hpp"

#include <algorithm>
#include <cctype>

#include "json_excerpt.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {

nlohmann::json llama3_rope_scaling() {
  return {{"rope_type", "llama3"},
          {"factor", 32.0},
          {"low_freq_factor", 1.0},
          {"high_freq_factor", 4.0},
          {"original_max_position_embeddings", 8192}};
}

std::vector<ModelPreset> make_presets() {
  std::vector<ModelPreset> presets;
  // meta-llama/Llama-3.2-1B
  presets.push_back({"llama3.2-1b", Architecture::Llama, 2048, 8192, 16, 32, 8, 64, 128256, 131072,
                     true, false, 500000.0, 1e-5, "silu", llama3_rope_scaling()});
  // meta-llama/Llama-3.2-3B
  presets.push_back({"llama3.2-3b", Architecture::Llama, 3072, 8192, 28, 24, 8, 128, 128256, 131072,
                     true, false, 500000.0, 1e-5, "silu", llama3_rope_scaling()});
  // Qwen/Qwen2.5-7B-Instruct (the base model differs only in max_position 131072)
  presets.push_back({"qwen2.5-7b", Architecture::Qwen2, 3584, 18944, 28, 28, 4, 128, 152064, 32768,
                     false, true, 1000000.0, 1e-6, "silu", nullptr});
  // Qwen/Qwen2.5-14B (eps 1e-5 as in the base model's config)
  presets.push_back({"qwen2.5-14b", Architecture::Qwen2, 5120, 13824, 48, 40, 8, 128, 152064, 32768,
                     false, true, 1000000.0, 1e-5, "silu", nullptr});
  // microsoft/bitnet-b1.58-2B-4T-bf16
  presets.push_back({"bitnet-2b", Architecture::BitNet, 2560, 6912, 30, 20, 5, 128, 128256, 4096,
                     true, false, 500000.0, 1e-5, "relu2", nullptr});
  return presets;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Reads a positive integer field; `fallback` < 0 means the field is required.
std::int64_t positive_field(const nlohmann::json& config, const std::string& config_path,
                            const char* key, std::int64_t fallback = -1) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) {
    if (fallback >= 0) return fallback;
    throw FormatError(config_path + ": missing \"" + key + "\"");
  }
  if (!it->is_number_integer() || it->get<std::int64_t>() <= 0 ||
      it->get<std::int64_t>() > (std::int64_t{1} << 40))
    throw FormatError(config_path + ": \"" + key + "\" is " + io_detail::json_excerpt(*it) +
                      ", expected a positive integer");
  return it->get<std::int64_t>();
}

template <typename T>
T optional_field(const nlohmann::json& config, const std::string& config_path, const char* key,
                 T fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw FormatError(config_path + ": \"" + key +
                      "\" has the wrong type: " + io_detail::json_excerpt(*it));
  }
}

// rope_scaling is a flat object (numbers, strings, number lists such as
// longrope's factors). Anything deeper is refused before it is copied: copying
// JSON recurses, and a hostile config could nest a million levels.
nlohmann::json rope_scaling_field(const nlohmann::json& config, const std::string& config_path) {
  const auto it = config.find("rope_scaling");
  if (it == config.end() || it->is_null()) return nullptr;
  const auto flat = [](const nlohmann::json& v) {
    if (v.is_primitive()) return true;
    if (!v.is_array()) return false;
    return std::all_of(v.begin(), v.end(),
                       [](const nlohmann::json& x) { return x.is_primitive(); });
  };
  if (!it->is_object() || !std::all_of(it->begin(), it->end(), flat))
    throw FormatError(config_path +
                      ": \"rope_scaling\" must be an object of numbers, strings or lists");
  return *it;
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  static const std::vector<ModelPreset> presets = make_presets();
  return presets;
}

const ModelPreset& find_preset(const std::string& name) {
  const std::string wanted = lower(name);
  std::string valid;
  for (const auto& p : model_presets()) {
    if (p.name == wanted) return p;
    valid += (valid.empty() ? "" : ", ") + p.name;
  }
  throw InvalidArgument("unknown model preset '" + name + "' (valid: " + valid + ")");
}

nlohmann::json preset_config_json(const ModelPreset& p, std::int64_t layers) {
  if (layers < 1)
    throw InvalidArgument("a model needs at least 1 layer, got " + std::to_string(layers));
  const Architecture arch = p.architecture;
  nlohmann::json c = {
      {"architectures", {architecture_class(arch)}},
      {"model_type", architecture_model_type(arch)},
      {"torch_dtype", "bfloat16"},
      {"hidden_size", p.hidden},
      {"intermediate_size", p.intermediate},
      {"num_hidden_layers", layers},
      {"num_attention_heads", p.heads},
      {"num_key_value_heads", p.kv_heads},
      {"head_dim", p.head_dim},
      {"vocab_size", p.vocab},
      {"max_position_embeddings", p.max_position},
      {"rms_norm_eps", p.rms_norm_eps},
      {"rope_theta", p.rope_theta},
      {"rope_scaling", p.rope_scaling},
      {"hidden_act", p.hidden_act},
      {"tie_word_embeddings", p.tie_embeddings},
      {"initializer_range", 0.02},
      {"attention_dropout", 0.0},
      {"use_cache", true},
  };
  switch (arch) {
    case Architecture::Llama:
      c["attention_bias"] = p.attention_bias;
      c["mlp_bias"] = false;
      c["pretraining_tp"] = 1;
      c["bos_token_id"] = 128000;
      c["eos_token_id"] = 128001;
      break;
    case Architecture::Qwen2:  // q/k/v biases are implied by the architecture
      c["bos_token_id"] = 151643;
      c["eos_token_id"] = 151643;
      c["use_sliding_window"] = false;
      c["sliding_window"] = p.max_position;
      c["max_window_layers"] = layers;
      break;
    case Architecture::BitNet:
      c["attention_bias"] = p.attention_bias;
      c["bos_token_id"] = 128000;
      c["eos_token_id"] = 128001;
      break;
  }
  return c;
}

ModelPreset preset_from_config(const nlohmann::json& config, const std::string& config_path) {
  if (!config.is_object()) throw FormatError(config_path + ": not a JSON object");
  ModelPreset p;
  p.name = "custom";
  p.architecture = detect_architecture(config, config_path);
  const bool bitnet = p.architecture == Architecture::BitNet;
  p.hidden = positive_field(config, config_path, "hidden_size");
  p.intermediate = positive_field(config, config_path, "intermediate_size");
  p.layers = positive_field(config, config_path, "num_hidden_layers");
  p.heads = positive_field(config, config_path, "num_attention_heads");
  p.kv_heads = positive_field(config, config_path, "num_key_value_heads", p.heads);
  p.head_dim = positive_field(config, config_path, "head_dim", p.hidden / p.heads);
  p.vocab = positive_field(config, config_path, "vocab_size");
  p.max_position = positive_field(config, config_path, "max_position_embeddings", 2048);
  if (p.heads % p.kv_heads != 0)
    throw FormatError(config_path + ": num_attention_heads " + std::to_string(p.heads) +
                      " is not a multiple of num_key_value_heads " + std::to_string(p.kv_heads));
  if (p.head_dim <= 0)
    throw FormatError(config_path + ": head_dim is 0 (hidden_size < num_attention_heads)");
  p.tie_embeddings = optional_field(config, config_path, "tie_word_embeddings", false);
  p.attention_bias = p.architecture == Architecture::Qwen2 ||
                     optional_field(config, config_path, "attention_bias", false);
  p.rope_theta = optional_field(config, config_path, "rope_theta", bitnet ? 500000.0 : 10000.0);
  p.rms_norm_eps = optional_field(config, config_path, "rms_norm_eps", 1e-6);
  p.hidden_act =
      optional_field(config, config_path, "hidden_act", std::string(bitnet ? "relu2" : "silu"));
  p.rope_scaling = rope_scaling_field(config, config_path);
  return p;
}

std::vector<LinearShape> linear_shapes(const ModelPreset& p) {
  const std::int64_t q = p.heads * p.head_dim;
  const std::int64_t kv = p.kv_heads * p.head_dim;
  return {
      {LinearKind::Q, q, p.hidden},
      {LinearKind::K, kv, p.hidden},
      {LinearKind::V, kv, p.hidden},
      {LinearKind::O, p.hidden, q},
      {LinearKind::Gate, p.intermediate, p.hidden},
      {LinearKind::Up, p.intermediate, p.hidden},
      {LinearKind::Down, p.hidden, p.intermediate},
  };
}

std::vector<TensorSpec> preset_tensor_specs(const ModelPreset& p, std::int64_t layers) {
  if (layers < 1)
    throw InvalidArgument("a model needs at least 1 layer, got " + std::to_string(layers));
  const auto shapes = linear_shapes(p);
  const auto shape_of = [&](LinearKind kind) { return shapes[static_cast<std::size_t>(kind)]; };
  std::vector<TensorSpec> specs;
  const auto add = [&](std::string name, std::vector<std::int64_t> shape) {
    specs.push_back({std::move(name), DType::BF16, std::move(shape)});
  };
  add("model.embed_tokens.weight", {p.vocab, p.hidden});
  for (std::int64_t layer = 0; layer < layers; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    add(prefix + "input_layernorm.weight", {p.hidden});
    for (const LinearKind kind : {LinearKind::Q, LinearKind::K, LinearKind::V, LinearKind::O}) {
      const LinearShape s = shape_of(kind);
      const std::string weight = linear_weight_name(layer, kind);
      add(weight, {s.n, s.k});
      // Qwen2 has q/k/v biases only; Llama's attention_bias covers o_proj too.
      const bool has_bias =
          p.attention_bias && (kind != LinearKind::O || p.architecture != Architecture::Qwen2);
      if (has_bias)
        add(weight.substr(0, weight.size() - std::string("weight").size()) + "bias", {s.n});
    }
    if (p.architecture == Architecture::BitNet)
      add(prefix + "self_attn.attn_sub_norm.weight", {p.hidden});
    add(prefix + "post_attention_layernorm.weight", {p.hidden});
    for (const LinearKind kind : {LinearKind::Gate, LinearKind::Up, LinearKind::Down}) {
      const LinearShape s = shape_of(kind);
      add(linear_weight_name(layer, kind), {s.n, s.k});
    }
    if (p.architecture == Architecture::BitNet)
      add(prefix + "mlp.ffn_sub_norm.weight", {p.intermediate});
  }
  add("model.norm.weight", {p.hidden});
  if (!p.tie_embeddings) add("lm_head.weight", {p.vocab, p.hidden});
  return specs;
}

}  // namespace slidesparse
