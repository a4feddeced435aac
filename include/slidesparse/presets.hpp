// The model families of the seed reports with their real dimensions, the HF
// config.json each one has, and the tensors and linear shapes that follow.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slidesparse/checkpoint.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {

struct ModelPreset {
  std::string name;
  Architecture architecture = Architecture::Llama;
  std::int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0,
               vocab = 0, max_position = 0;
  bool tie_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2)
  double rope_theta = 10000.0, rms_norm_eps = 1e-6;
  std::string hidden_act = "silu";
  nlohmann::json rope_scaling;  // null when the model has none
};

// llama3.2-1b, llama3.2-3b, qwen2.5-7b, qwen2.5-14b, bitnet-2b.
const std::vector<ModelPreset>& model_presets();
// Case-insensitive; throws InvalidArgument listing the valid names.
const ModelPreset& find_preset(const std::string& name);

// An HF config.json for `preset` cut to `layers` decoder layers (>= 1), with
// every field transformers needs to load it as BF16.
nlohmann::json preset_config_json(const ModelPreset& preset, std::int64_t layers);
// The dimensions a config.json describes (name "custom"); throws FormatError
// naming config_path for an unsupported architecture or a missing field.
ModelPreset preset_from_config(const nlohmann::json& config, const std::string& config_path);

// Y[M,N] = X[M,K] · W[N,K]ᵀ for each linear layer of one decoder layer.
struct LinearShape {
  LinearKind kind;
  std::int64_t n, k;
};
std::vector<LinearShape> linear_shapes(const ModelPreset& preset);

// Every tensor of the architecture's checkpoint (BF16), in the order HF
// writes them: embeddings, then each layer, final norm, lm_head unless tied.
std::vector<TensorSpec> preset_tensor_specs(const ModelPreset& preset, std::int64_t layers);

}  // namespace slidesparse
