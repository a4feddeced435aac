// Helpers for the converter tests: tiny Llama / Qwen2 / BitNet checkpoints written with
// SafetensorsWriter, with every tensor's float values at hand for the expectations.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "slidesparse/checkpoint.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse::test {

struct TinyTensor {
  std::string name;
  DType dtype = DType::BF16;
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // representable in dtype

  std::vector<std::uint8_t> bytes() const {
    std::vector<std::uint8_t> out(values.size() * dtype_size(dtype));
    for (std::size_t i = 0; i < values.size(); ++i)
      float_to_storage(values[i], out.data(), static_cast<std::int64_t>(i), dtype);
    return out;
  }
};

// Dimensions that exercise partial groups: K = 24 and 40 are not multiples of most L.
struct TinyDims {
  std::int64_t hidden = 24, intermediate = 40, kv = 8, vocab = 32, layers = 2;
};

inline nlohmann::json tiny_config(Architecture architecture, const TinyDims& dims = {}) {
  return {{"architectures", {architecture_class(architecture)}},
          {"model_type", architecture_model_type(architecture)},
          {"hidden_size", dims.hidden},
          {"intermediate_size", dims.intermediate},
          {"num_hidden_layers", dims.layers},
          {"num_attention_heads", 3},
          {"num_key_value_heads", 1},
          {"vocab_size", dims.vocab},
          {"torch_dtype", "bfloat16"}};
}

// Values ~ N(0, 0.02²) rounded to `dtype`, one in ten exactly zero.
inline std::vector<float> random_values(std::int64_t count, DType dtype, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_int_distribution<int> tenth(0, 9);
  std::vector<float> out(static_cast<std::size_t>(count));
  std::vector<std::uint8_t> cell(4);
  for (float& v : out) {
    const float x = tenth(rng) == 0 ? 0.0f : normal(rng);
    float_to_storage(x, cell.data(), 0, dtype);
    v = storage_to_float(cell.data(), 0, dtype);
  }
  return out;
}

// Every tensor of a `dims.layers`-layer model of the family, in HF order. Linear weights
// have `linear_dtype`; everything else is BF16.
inline std::vector<TinyTensor> tiny_tensors(Architecture architecture, const TinyDims& dims = {},
                                            std::uint64_t seed = 7,
                                            DType linear_dtype = DType::BF16) {
  std::mt19937_64 rng(seed);
  std::vector<TinyTensor> out;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, DType dtype) {
    std::int64_t count = 1;
    for (auto d : shape) count *= d;
    out.push_back({name, dtype, std::move(shape), random_values(count, dtype, rng)});
  };
  const std::int64_t h = dims.hidden, i = dims.intermediate, kv = dims.kv;
  add("model.embed_tokens.weight", {dims.vocab, h}, DType::BF16);
  for (std::int64_t layer = 0; layer < dims.layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    add(p + "input_layernorm.weight", {h}, DType::BF16);
    add(p + "self_attn.q_proj.weight", {h, h}, linear_dtype);
    add(p + "self_attn.k_proj.weight", {kv, h}, linear_dtype);
    add(p + "self_attn.v_proj.weight", {kv, h}, linear_dtype);
    if (architecture == Architecture::Qwen2) {
      add(p + "self_attn.q_proj.bias", {h}, DType::BF16);
      add(p + "self_attn.k_proj.bias", {kv}, DType::BF16);
      add(p + "self_attn.v_proj.bias", {kv}, DType::BF16);
    }
    if (architecture == Architecture::BitNet)
      add(p + "self_attn.attn_sub_norm.weight", {h}, DType::BF16);
    add(p + "self_attn.o_proj.weight", {h, h}, linear_dtype);
    add(p + "post_attention_layernorm.weight", {h}, DType::BF16);
    add(p + "mlp.gate_proj.weight", {i, h}, linear_dtype);
    add(p + "mlp.up_proj.weight", {i, h}, linear_dtype);
    if (architecture == Architecture::BitNet) add(p + "mlp.ffn_sub_norm.weight", {i}, DType::BF16);
    add(p + "mlp.down_proj.weight", {h, i}, linear_dtype);
  }
  add("model.norm.weight", {h}, DType::BF16);
  add("lm_head.weight", {dims.vocab, h}, DType::BF16);
  return out;
}

inline TinyTensor& find_tensor(std::vector<TinyTensor>& tensors, const std::string& name) {
  for (auto& t : tensors)
    if (t.name == name) return t;
  throw std::runtime_error("no tensor " + name);
}

inline void write_safetensors(const std::string& path, const std::vector<TinyTensor>& tensors) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  SafetensorsWriter writer(path, specs, {{"format", "pt"}});
  for (const auto& t : tensors) {
    const auto bytes = t.bytes();
    writer.write(t.name, bytes.data(), bytes.size());
  }
  writer.finish();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

// config.json, tokenizer.json and either model.safetensors or `shards` shards with an index.
inline void write_checkpoint(const std::string& dir, const nlohmann::json& config,
                             const std::vector<TinyTensor>& tensors, int shards = 1) {
  write_text(dir + "/config.json", config.dump(2));
  write_text(dir + "/tokenizer.json", "{\"version\": \"1.0\", \"model\": {}}");
  if (shards == 1) {
    write_safetensors(dir + "/model.safetensors", tensors);
    return;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  std::uint64_t total_size = 0;
  for (const auto& t : tensors) total_size += t.bytes().size();
  const std::size_t per_shard = (tensors.size() + shards - 1) / shards;
  for (int s = 0; s < shards; ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, shards);
    const std::size_t begin = static_cast<std::size_t>(s) * per_shard;
    const std::size_t end = std::min(tensors.size(), begin + per_shard);
    std::vector<TinyTensor> part(tensors.begin() + begin, tensors.begin() + end);
    for (const auto& t : part) weight_map[t.name] = name;
    write_safetensors(dir + "/" + name, part);
  }
  write_text(
      dir + "/model.safetensors.index.json",
      nlohmann::json{{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}}.dump(
          2));
}

inline void write_tiny_checkpoint(const std::string& dir, Architecture architecture,
                                  const TinyDims& dims = {}) {
  write_checkpoint(dir, tiny_config(architecture, dims), tiny_tensors(architecture, dims));
}

}  // namespace slidesparse::test
