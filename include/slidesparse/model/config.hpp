// What the model runner needs from a Hugging Face config.json: the dimensions and
// the per-family choices (biases, activation, RoPE scaling) of the decoder-only
// transformers we run (Llama 3.2, Qwen2.5, BitNet b1.58).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "slidesparse/checkpoint.hpp"

namespace slidesparse {

// The MLP activation applied to gate before the product with up.
enum class Activation {
  Silu,   // x · sigmoid(x): Llama, Qwen2 ("silu", also spelled "swish")
  Relu2,  // relu(x)²: BitNet
};
const char* activation_name(Activation a);  // "silu", "relu2"

// rope_scaling {"rope_type": "llama3", ...} (Llama 3.1+): long wavelengths are
// stretched by `factor`, short ones kept, the band between interpolated.
struct Llama3RopeScaling {
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position = 8192;
};

struct ModelConfig {
  Architecture architecture = Architecture::Llama;
  // The names of ModelPreset (presets.hpp): hidden_size, intermediate_size, ...
  std::int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0,
               vocab = 0, max_position = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<Llama3RopeScaling> rope_scaling;  // nullopt: plain RoPE
  bool tie_embeddings = false;                    // lm_head is embed_tokens
  bool qkv_bias = false;  // q/k/v_proj have biases (Qwen2 always; Llama/BitNet attention_bias)
  bool o_bias = false;    // o_proj has a bias (Llama/BitNet attention_bias; never Qwen2)
  Activation activation = Activation::Silu;

  std::int64_t q_width() const { return heads * head_dim; }      // q_proj / o_proj width
  std::int64_t kv_width() const { return kv_heads * head_dim; }  // k_proj / v_proj width
  // Query heads that share one key/value head (grouped-query attention).
  std::int64_t group_size() const { return heads / kv_heads; }
};

// Parses an HF config.json. Required: hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, vocab_size. Optional, with the
// defaults of the transformers config class of the architecture:
// num_key_value_heads (= heads), head_dim (= hidden / heads), rms_norm_eps
// (1e-6; BitNet 1e-5), rope_theta (10000; BitNet 500000), max_position_embeddings
// (2048; Qwen2 32768), tie_word_embeddings (false), attention_bias (false),
// hidden_act (silu; BitNet relu2), rope_scaling (null).
// Throws FormatError naming `config_path` and the field for a missing required
// field, a field of the wrong type or range, an unsupported rope_scaling type,
// activation, architecture or feature (mlp_bias, Qwen2 sliding windows, a
// quantization_config such as the packed BitNet checkpoint's).
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& config_path);
// parse_model_config of the checkpoint's config.json.
ModelConfig model_config(const Checkpoint& checkpoint);

// The RoPE inverse frequencies [head_dim / 2], in float32 as transformers computes
// them: 1 / theta^(2i / head_dim), then the llama3 scaling of
// `_compute_llama3_parameters` when the config has one.
std::vector<float> rope_inv_freq(const ModelConfig& config);

}  // namespace slidesparse
