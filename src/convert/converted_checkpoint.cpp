#include "slidesparse/converted_checkpoint.hpp"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "slidesparse/error.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {

namespace {
std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// Sort key: decoder layer, then q k v o gate up down; unrecognized names after, by name.
std::tuple<int, std::int64_t, int, std::string> layer_order(const std::string& prefix) {
  if (auto name = parse_linear_weight_name(prefix + ".weight"))
    return {0, name->layer, static_cast<int>(name->kind), prefix};
  return {1, 0, 0, prefix};
}

const nlohmann::json& require_field(const nlohmann::json& object, const char* key,
                                    const std::string& where) {
  if (!object.is_object() || !object.contains(key))
    throw FormatError(where + ": missing field '" + key + "'");
  return object.at(key);
}

std::int64_t require_positive(const nlohmann::json& object, const char* key,
                              const std::string& where) {
  const auto& value = require_field(object, key, where);
  if (!value.is_number_integer() || value.get<std::int64_t>() <= 0)
    throw FormatError(where + ": field '" + key + "' must be a positive integer, got " +
                      value.dump());
  return value.get<std::int64_t>();
}

std::string require_string(const nlohmann::json& object, const char* key,
                           const std::string& where) {
  const auto& value = require_field(object, key, where);
  if (!value.is_string())
    throw FormatError(where + ": field '" + key + "' must be a string, got " + value.dump());
  return value.get<std::string>();
}

const TensorInfo& require_tensor(const Checkpoint& checkpoint, const std::string& name, DType dtype,
                                 const std::vector<std::int64_t>& shape) {
  const TensorInfo& tensor = checkpoint.info(name);
  const std::string& file = checkpoint.shard_of(name).path();
  if (tensor.dtype != dtype)
    throw FormatError(file + ": " + name + ": dtype " + dtype_name(tensor.dtype) + ", expected " +
                      dtype_name(dtype));
  if (tensor.shape != shape)
    throw FormatError(file + ": " + name + ": shape " + shape_text(tensor.shape) + ", expected " +
                      shape_text(shape));
  return tensor;
}
}  // namespace

const ConvertedLayerInfo* ConvertedModelInfo::find(const std::string& prefix) const {
  for (const auto& layer : layers)
    if (layer.prefix == prefix) return &layer;
  return nullptr;
}

bool is_converted_config(const nlohmann::json& config) {
  return config.is_object() && config.contains(kFormatSection);
}

ConvertedModelInfo read_converted_info(const nlohmann::json& config,
                                       const std::string& config_path) {
  if (!is_converted_config(config))
    throw FormatError(config_path + ": no \"" + kFormatSection +
                      "\" section: not a SlideSparse checkpoint (make one with slidesparse "
                      "convert)");
  const std::string where = config_path + ": " + kFormatSection;
  const auto& section = config.at(kFormatSection);
  if (!section.is_object()) throw FormatError(where + ": must be an object");

  ConvertedModelInfo info;
  const auto& version = require_field(section, "format_version", where);
  if (!version.is_number_integer() || version.get<std::int64_t>() != kFormatVersion)
    throw FormatError(where + ": format_version " + version.dump() + " is not supported (this " +
                      "build reads version " + std::to_string(kFormatVersion) + ")");
  info.format_version = kFormatVersion;
  try {
    info.pattern = Pattern::parse(require_string(section, "pattern", where));
    if (section.contains("pattern_paper") &&
        Pattern::parse(require_string(section, "pattern_paper", where)) != info.pattern)
      throw FormatError(where + ": pattern " + section.at("pattern").dump() +
                        " and pattern_paper " + section.at("pattern_paper").dump() + " disagree");
    info.precision = parse_precision(require_string(section, "dtype", where));
    info.prune = parse_prune_mode(require_string(section, "prune", where));
  } catch (const InvalidArgument& e) {
    throw FormatError(where + ": " + e.what());
  }

  const auto& layers = require_field(section, "layers", where);
  if (!layers.is_object() || layers.empty())
    throw FormatError(where + ": 'layers' must be a non-empty object {prefix: {n, k, k_slide}}");
  for (const auto& [prefix, fields] : layers.items()) {
    const std::string layer_where = where + ".layers." + prefix;
    ConvertedLayerInfo layer;
    layer.prefix = prefix;
    layer.n = require_positive(fields, "n", layer_where);
    layer.k = require_positive(fields, "k", layer_where);
    layer.k_slide = require_positive(fields, "k_slide", layer_where);
    if (layer.k_slide != info.pattern.k_slide(layer.k))
      throw FormatError(layer_where + ": k_slide " + std::to_string(layer.k_slide) +
                        " does not match pattern " + info.pattern.display_name() + " for k " +
                        std::to_string(layer.k) + " (expected " +
                        std::to_string(info.pattern.k_slide(layer.k)) + ")");
    info.layers.push_back(std::move(layer));
  }
  std::sort(info.layers.begin(), info.layers.end(),
            [](const ConvertedLayerInfo& a, const ConvertedLayerInfo& b) {
              return layer_order(a.prefix) < layer_order(b.prefix);
            });
  return info;
}

nlohmann::json converted_info_json(const ConvertedModelInfo& info) {
  nlohmann::json layers = nlohmann::json::object();
  for (const auto& layer : info.layers)
    layers[layer.prefix] = {{"n", layer.n}, {"k", layer.k}, {"k_slide", layer.k_slide}};
  return {{"format_version", info.format_version},      {"pattern", info.pattern.zeros_name()},
          {"pattern_paper", info.pattern.paper_name()}, {"dtype", precision_name(info.precision)},
          {"prune", prune_mode_name(info.prune)},       {"layers", std::move(layers)}};
}

PackedLinear load_packed_linear(const Checkpoint& checkpoint, const ConvertedModelInfo& info,
                                const std::string& prefix) {
  const ConvertedLayerInfo* layer = info.find(prefix);
  if (!layer)
    throw InvalidArgument(checkpoint.config_path() + ": '" + prefix +
                          "' is not a converted layer of this checkpoint");
  PackedLinear packed;
  packed.precision = info.precision;
  packed.pattern = info.pattern;
  packed.n = layer->n;
  packed.k = layer->k;

  const std::string weight_name = layer->weight_name();
  const std::vector<std::int64_t> weight_shape{layer->n, layer->k_slide};
  const TensorInfo& weight =
      require_tensor(checkpoint, weight_name, precision_storage(info.precision), weight_shape);
  const std::uint8_t* weight_data = checkpoint.data(weight_name);
  packed.weight.assign(weight_data, weight_data + weight.nbytes());

  const std::string scale_name = layer->scale_name();
  require_tensor(checkpoint, scale_name, DType::F32, {layer->n});
  packed.scale.resize(static_cast<std::size_t>(layer->n));
  std::memcpy(packed.scale.data(), checkpoint.data(scale_name), packed.scale.size() * 4);

  const std::string bias_name = layer->bias_name();
  if (checkpoint.contains(bias_name)) {
    const TensorInfo& bias = checkpoint.info(bias_name);
    if (bias.dtype != DType::BF16 && bias.dtype != DType::F16 && bias.dtype != DType::F32)
      throw FormatError(checkpoint.shard_of(bias_name).path() + ": " + bias_name + ": dtype " +
                        dtype_name(bias.dtype) + ", expected BF16, F16 or F32");
    require_tensor(checkpoint, bias_name, bias.dtype, {layer->n});
    const std::uint8_t* bias_data = checkpoint.data(bias_name);
    packed.bias.resize(static_cast<std::size_t>(layer->n));
    for (std::int64_t i = 0; i < layer->n; ++i)
      packed.bias[static_cast<std::size_t>(i)] = storage_to_float(bias_data, i, bias.dtype);
  }
  return packed;
}

}  // namespace slidesparse
