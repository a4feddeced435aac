#include "slidesparse/model/weights.hpp"

#include "slidesparse/error.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {

namespace {

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string layer_prefix(std::int64_t layer) {
  return "model.layers." + std::to_string(layer) + ".";
}

// [n, k] of each linear layer, by LinearKind.
std::array<std::array<std::int64_t, 2>, 7> linear_dims(const ModelConfig& c) {
  return {{{c.q_width(), c.hidden},
           {c.kv_width(), c.hidden},
           {c.kv_width(), c.hidden},
           {c.hidden, c.q_width()},
           {c.intermediate, c.hidden},
           {c.intermediate, c.hidden},
           {c.hidden, c.intermediate}}};
}

bool has_bias(const ModelConfig& c, LinearKind kind) {
  switch (kind) {
    case LinearKind::Q:
    case LinearKind::K:
    case LinearKind::V:
      return c.qkv_bias;
    case LinearKind::O:
      return c.o_bias;
    default:
      return false;
  }
}

const char* kAttnSubNorm = "self_attn.attn_sub_norm.weight";
const char* kFfnSubNorm = "mlp.ffn_sub_norm.weight";

}  // namespace

std::string linear_bias_name(std::int64_t layer, LinearKind kind) {
  const std::string weight = linear_weight_name(layer, kind);
  return weight.substr(0, weight.size() - std::string("weight").size()) + "bias";
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const auto dims = linear_dims(c);
  const bool bitnet = c.architecture == Architecture::BitNet;
  std::vector<ExpectedTensor> tensors;
  tensors.push_back({"model.embed_tokens.weight", {c.vocab, c.hidden}});
  for (std::int64_t layer = 0; layer < c.layers; ++layer) {
    const std::string prefix = layer_prefix(layer);
    const auto add_linear = [&](LinearKind kind) {
      const auto& d = dims[static_cast<std::size_t>(kind)];
      tensors.push_back({linear_weight_name(layer, kind), {d[0], d[1]}});
      if (has_bias(c, kind)) tensors.push_back({linear_bias_name(layer, kind), {d[0]}});
    };
    tensors.push_back({prefix + "input_layernorm.weight", {c.hidden}});
    for (const LinearKind kind : {LinearKind::Q, LinearKind::K, LinearKind::V, LinearKind::O})
      add_linear(kind);
    if (bitnet) tensors.push_back({prefix + kAttnSubNorm, {c.hidden}});
    tensors.push_back({prefix + "post_attention_layernorm.weight", {c.hidden}});
    for (const LinearKind kind : {LinearKind::Gate, LinearKind::Up, LinearKind::Down})
      add_linear(kind);
    if (bitnet) tensors.push_back({prefix + kFfnSubNorm, {c.intermediate}});
  }
  tensors.push_back({"model.norm.weight", {c.hidden}});
  if (!c.tie_embeddings) tensors.push_back({"lm_head.weight", {c.vocab, c.hidden}});
  return tensors;
}

void check_weights(const Checkpoint& checkpoint, const ModelConfig& config) {
  for (const ExpectedTensor& expected : expected_tensors(config)) {
    if (!checkpoint.contains(expected.name))
      throw FormatError(checkpoint.dir() + ": missing tensor '" + expected.name + "' (expected " +
                        shape_string(expected.shape) + " for " +
                        architecture_name(config.architecture) + ")");
    const TensorInfo& found = checkpoint.info(expected.name);
    if (found.shape != expected.shape)
      throw FormatError(checkpoint.dir() + ": tensor '" + expected.name + "' has shape " +
                        shape_string(found.shape) + ", expected " + shape_string(expected.shape));
  }
}

std::vector<float> read_float_tensor(const Checkpoint& checkpoint, const std::string& name) {
  const TensorInfo& info = checkpoint.info(name);
  if (info.dtype != DType::BF16 && info.dtype != DType::F16 && info.dtype != DType::F32)
    throw FormatError(checkpoint.dir() + ": tensor '" + name + "' is " + dtype_name(info.dtype) +
                      ", expected BF16, F16 or F32");
  const std::uint8_t* data = checkpoint.data(name);
  const std::int64_t count = info.numel();
  std::vector<float> values(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i)
    values[static_cast<std::size_t>(i)] = storage_to_float(data, i, info.dtype);
  return values;
}

HostModelWeights HostModelWeights::load(const Checkpoint& checkpoint, const ModelConfig& config) {
  check_weights(checkpoint, config);
  const auto read = [&](const std::string& name) { return read_float_tensor(checkpoint, name); };
  const auto dims = linear_dims(config);

  HostModelWeights w;
  w.embed_tokens_ = read("model.embed_tokens.weight");
  w.final_norm_ = read("model.norm.weight");
  w.tied_ = config.tie_embeddings;
  if (!w.tied_) w.lm_head_ = read("lm_head.weight");
  w.layers_.resize(static_cast<std::size_t>(config.layers));
  for (std::int64_t index = 0; index < config.layers; ++index) {
    HostLayerWeights& layer = w.layers_[static_cast<std::size_t>(index)];
    const std::string prefix = layer_prefix(index);
    layer.input_norm = read(prefix + "input_layernorm.weight");
    layer.post_attention_norm = read(prefix + "post_attention_layernorm.weight");
    if (config.architecture == Architecture::BitNet) {
      layer.attn_sub_norm = read(prefix + kAttnSubNorm);
      layer.ffn_sub_norm = read(prefix + kFfnSubNorm);
    }
    for (const LinearKind kind : all_linear_kinds()) {
      HostLinear& linear = layer.linear(kind);
      linear.n = dims[static_cast<std::size_t>(kind)][0];
      linear.k = dims[static_cast<std::size_t>(kind)][1];
      linear.weight = read(linear_weight_name(index, kind));
      if (has_bias(config, kind)) linear.bias = read(linear_bias_name(index, kind));
    }
  }
  return w;
}

const HostLayerWeights& HostModelWeights::layer(std::int64_t index) const {
  if (index < 0 || index >= layers())
    throw InvalidArgument("layer " + std::to_string(index) + " out of range [0, " +
                          std::to_string(layers()) + ")");
  return layers_[static_cast<std::size_t>(index)];
}

}  // namespace slidesparse
