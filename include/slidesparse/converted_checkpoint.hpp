// The SlideSparse checkpoint format (docs/format.md): a Hugging Face checkpoint whose
// selected linear layers hold slid, quantized weights `<prefix>.weight` [N, K_slide] with
// per-channel scales `<prefix>.weight_scale` [N], described by a "slidesparse" section
// of config.json. Readers of converted checkpoints (verify, demo, the GPU layer) go
// through this header.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slidesparse/checkpoint.hpp"
#include "slidesparse/dtype.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse {

// Bumped whenever a reader of version N could misread what a newer writer produces.
constexpr int kFormatVersion = 1;
// The config.json key of the section.
constexpr const char* kFormatSection = "slidesparse";
// `<prefix>` + this names a converted layer's per-channel scales.
constexpr const char* kWeightScaleSuffix = ".weight_scale";

struct ConvertedLayerInfo {
  std::string prefix;  // "model.layers.0.self_attn.q_proj"
  std::int64_t n = 0, k = 0, k_slide = 0;

  std::string weight_name() const { return prefix + ".weight"; }
  std::string scale_name() const { return prefix + kWeightScaleSuffix; }
  std::string bias_name() const { return prefix + ".bias"; }
};

struct ConvertedModelInfo {
  int format_version = kFormatVersion;
  Pattern pattern = Pattern::from_length(8);
  Precision precision = Precision::INT8;
  PruneMode prune = PruneMode::Magnitude;
  std::vector<ConvertedLayerInfo> layers;  // in model order: layer index, then q k v o gate up down

  // Null when `prefix` was not converted.
  const ConvertedLayerInfo* find(const std::string& prefix) const;
};

// True when config.json carries a "slidesparse" section.
bool is_converted_config(const nlohmann::json& config);

// Parses and validates the section: known format version, pattern, dtype, prune mode and
// for every layer n > 0, k > 0 and k_slide == pattern.k_slide(k). Throws FormatError naming
// config_path and the offending field.
ConvertedModelInfo read_converted_info(const nlohmann::json& config,
                                       const std::string& config_path);

// The section as written into config.json.
nlohmann::json converted_info_json(const ConvertedModelInfo& info);

// One converted layer ready for the GPU: slid weights, scales, and the bias (as floats) when
// the checkpoint has `<prefix>.bias`. Throws InvalidArgument if `prefix` is not a converted
// layer, FormatError naming the tensor if a tensor is missing or has the wrong dtype or shape.
PackedLinear load_packed_linear(const Checkpoint& checkpoint, const ConvertedModelInfo& info,
                                const std::string& prefix);

}  // namespace slidesparse
