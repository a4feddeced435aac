// A Hugging Face checkpoint directory: config.json plus one safetensors file or
// several shards listed in model.safetensors.index.json. Also the names of the
// model families and of the linear layers SlideSparse replaces.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "slidesparse/safetensors.hpp"

namespace slidesparse {

class Checkpoint {
 public:
  static constexpr const char* kConfigFile = "config.json";
  static constexpr const char* kIndexFile = "model.safetensors.index.json";
  static constexpr const char* kSingleFile = "model.safetensors";

  // Reads config.json, then the index and every shard it names, or the single
  // safetensors file. Every shard is mapped and its header validated here.
  // Throws IoError if `dir` is not a readable directory, FormatError naming
  // the file for a missing or malformed config, index or shard.
  static Checkpoint open(const std::string& dir);

  const nlohmann::json& config() const { return config_; }
  std::string config_path() const;
  const std::string& dir() const { return dir_; }

  // Sorted.
  std::vector<std::string> tensor_names() const;
  bool contains(const std::string& name) const { return location_.count(name) != 0; }
  // These throw FormatError naming the checkpoint and the tensor if absent.
  const TensorInfo& info(const std::string& name) const;
  const std::uint8_t* data(const std::string& name) const;
  const SafetensorsFile& shard_of(const std::string& name) const;
  // Paths of the safetensors files, in index (or directory) order.
  std::vector<std::string> shard_files() const;
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

 private:
  Checkpoint() = default;
  std::size_t shard_index(const std::string& name) const;

  std::string dir_;
  nlohmann::json config_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, std::size_t> location_;  // tensor -> shard
};

// ---- model families ------------------------------------------------------------------

enum class Architecture { Llama, Qwen2, BitNet };

// From config "architectures" (LlamaForCausalLM, Qwen2ForCausalLM,
// BitNetForCausalLM) or else "model_type" (llama, qwen2, bitnet). Throws
// FormatError("<config_path>: unsupported architecture 'X' (supported: ...)").
Architecture detect_architecture(const nlohmann::json& config, const std::string& config_path);
const char* architecture_name(Architecture a);        // "Llama", "Qwen2", "BitNet"
const char* architecture_model_type(Architecture a);  // "llama", "qwen2", "bitnet"
const char* architecture_class(Architecture a);       // "LlamaForCausalLM", ...

// ---- linear layers -------------------------------------------------------------------

enum class LinearKind { Q, K, V, O, Gate, Up, Down };

// All seven, in layer order.
const std::vector<LinearKind>& all_linear_kinds();
// "q", "k", "v", "o", "gate", "up", "down".
const char* linear_kind_name(LinearKind kind);
// Inverse of linear_kind_name; throws InvalidArgument listing the valid names.
LinearKind parse_linear_kind(const std::string& name);
// "q,k,v" -> {Q, K, V}; "all" -> all seven. Duplicates are dropped; an empty
// item or unknown name throws InvalidArgument.
std::vector<LinearKind> parse_linear_kinds(const std::string& comma_list);

// A linear layer's weight tensor, e.g. layer 3 Up: "model.layers.3.mlp.up_proj.weight".
struct LinearName {
  std::int64_t layer = 0;
  LinearKind kind = LinearKind::Q;
};
std::string linear_weight_name(std::int64_t layer, LinearKind kind);
// Recognizes model.layers.<i>.self_attn.{q,k,v,o}_proj.weight and
// model.layers.<i>.mlp.{gate,up,down}_proj.weight; nullopt for anything else.
std::optional<LinearName> parse_linear_weight_name(const std::string& tensor_name);
std::optional<LinearKind> linear_kind_of(const std::string& tensor_name);

}  // namespace slidesparse
