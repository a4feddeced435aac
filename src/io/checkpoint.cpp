#include "slidesparse/checkpoint.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "json_excerpt.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"

namespace slidesparse {

namespace fs = std::filesystem;

namespace {

std::string join_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

nlohmann::json read_json_file(const std::string& path) {
  const MappedFile file = MappedFile::open(path);
  const char* text = reinterpret_cast<const char*>(file.data());
  try {
    return nlohmann::json::parse(text, text + file.size());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": invalid JSON: " + e.what());
  }
}

bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// A shard named in an index must be a file of the checkpoint directory itself.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

}  // namespace

// ---- Checkpoint -----------------------------------------------------------------------

Checkpoint Checkpoint::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError("cannot open checkpoint " + dir + ": " +
                  (fs::exists(dir, ec) ? "not a directory" : "no such directory"));
  Checkpoint ckpt;
  ckpt.dir_ = dir;

  const std::string config_path = join_path(dir, kConfigFile);
  if (!is_regular_file(config_path))
    throw FormatError(config_path + ": missing (not a Hugging Face checkpoint directory)");
  ckpt.config_ = read_json_file(config_path);
  if (!ckpt.config_.is_object()) throw FormatError(config_path + ": not a JSON object");

  const std::string index_path = join_path(dir, kIndexFile);
  if (is_regular_file(index_path)) {
    const nlohmann::json index = read_json_file(index_path);
    const auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
    if (!index.is_object() || weight_map == index.end() || !weight_map->is_object())
      throw FormatError(index_path + ": no \"weight_map\" object");
    std::set<std::string> shard_names;
    for (const auto& [tensor, shard] : weight_map->items()) {
      if (!shard.is_string() || !is_plain_file_name(shard.get<std::string>()))
        throw FormatError(index_path + ": tensor '" + tensor + "' maps to " +
                          io_detail::json_excerpt(shard) +
                          ", not a file name in the checkpoint directory");
      shard_names.insert(shard.get<std::string>());
    }
    std::map<std::string, std::size_t> shard_of_name;
    for (const auto& shard : shard_names) {
      const std::string shard_path = join_path(dir, shard);
      if (!is_regular_file(shard_path))
        throw FormatError(index_path + ": shard " + shard + " does not exist (" + shard_path + ")");
      shard_of_name[shard] = ckpt.shards_.size();
      ckpt.shards_.push_back(SafetensorsFile::open(shard_path));
    }
    for (const auto& [tensor, shard] : weight_map->items()) {
      const std::size_t s = shard_of_name.at(shard.get<std::string>());
      if (!ckpt.shards_[s].find(tensor))
        throw FormatError(index_path + ": tensor '" + tensor + "' is mapped to " +
                          shard.get<std::string>() + ", which does not contain it");
      ckpt.location_[tensor] = s;
    }
    return ckpt;
  }

  std::string single = join_path(dir, kSingleFile);
  if (!is_regular_file(single)) {
    std::vector<std::string> candidates;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".safetensors" && it->is_regular_file(ec))
        candidates.push_back(it->path().string());
    if (ec) throw IoError("cannot list " + dir + ": " + ec.message());
    if (candidates.empty())
      throw FormatError(dir + ": no " + kSingleFile + ", " + kIndexFile +
                        " or other .safetensors file");
    if (candidates.size() > 1)
      throw FormatError(dir + ": " + std::to_string(candidates.size()) +
                        " .safetensors files but no " + kIndexFile +
                        " to say which tensor is where");
    single = candidates.front();
  }
  ckpt.shards_.push_back(SafetensorsFile::open(single));
  for (const auto& t : ckpt.shards_.front().tensors()) ckpt.location_[t.name] = 0;
  return ckpt;
}

std::string Checkpoint::config_path() const { return join_path(dir_, kConfigFile); }

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(location_.size());
  for (const auto& entry : location_) names.push_back(entry.first);
  return names;
}

std::size_t Checkpoint::shard_index(const std::string& name) const {
  const auto it = location_.find(name);
  if (it == location_.end()) throw FormatError(dir_ + ": checkpoint has no tensor '" + name + "'");
  return it->second;
}

const SafetensorsFile& Checkpoint::shard_of(const std::string& name) const {
  return shards_[shard_index(name)];
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  return shard_of(name).at(name);
}

const std::uint8_t* Checkpoint::data(const std::string& name) const {
  const SafetensorsFile& shard = shard_of(name);
  return shard.data(shard.at(name));
}

std::vector<std::string> Checkpoint::shard_files() const {
  std::vector<std::string> files;
  files.reserve(shards_.size());
  for (const auto& s : shards_) files.push_back(s.path());
  return files;
}

// ---- architectures --------------------------------------------------------------------

namespace {

struct ArchitectureInfo {
  Architecture architecture;
  const char* name;
  const char* model_type;
  const char* hf_class;
};
constexpr ArchitectureInfo kArchitectures[] = {
    {Architecture::Llama, "Llama", "llama", "LlamaForCausalLM"},
    {Architecture::Qwen2, "Qwen2", "qwen2", "Qwen2ForCausalLM"},
    {Architecture::BitNet, "BitNet", "bitnet", "BitNetForCausalLM"},
};

const ArchitectureInfo& info_of(Architecture a) { return kArchitectures[static_cast<int>(a)]; }

}  // namespace

const char* architecture_name(Architecture a) { return info_of(a).name; }
const char* architecture_model_type(Architecture a) { return info_of(a).model_type; }
const char* architecture_class(Architecture a) { return info_of(a).hf_class; }

Architecture detect_architecture(const nlohmann::json& config, const std::string& config_path) {
  std::string seen;  // what the config claims, for the error message
  if (config.is_object()) {
    const auto archs = config.find("architectures");
    if (archs != config.end() && archs->is_array()) {
      for (const auto& a : *archs) {
        if (!a.is_string()) continue;
        for (const auto& info : kArchitectures)
          if (a.get<std::string>() == info.hf_class) return info.architecture;
        if (seen.empty()) seen = a.get<std::string>();
      }
    }
    const auto model_type = config.find("model_type");
    if (model_type != config.end() && model_type->is_string()) {
      for (const auto& info : kArchitectures)
        if (model_type->get<std::string>() == info.model_type) return info.architecture;
      if (seen.empty()) seen = model_type->get<std::string>();
    }
  }
  if (seen.empty()) seen = "(none: no \"architectures\" or \"model_type\")";
  throw FormatError(config_path + ": unsupported architecture '" + seen +
                    "' (supported: Llama, Qwen2, BitNet)");
}

// ---- linear layers --------------------------------------------------------------------

namespace {

struct LinearInfo {
  LinearKind kind;
  const char* name;
  const char* module;  // "self_attn" or "mlp"
};
constexpr LinearInfo kLinears[] = {
    {LinearKind::Q, "q", "self_attn"}, {LinearKind::K, "k", "self_attn"},
    {LinearKind::V, "v", "self_attn"}, {LinearKind::O, "o", "self_attn"},
    {LinearKind::Gate, "gate", "mlp"}, {LinearKind::Up, "up", "mlp"},
    {LinearKind::Down, "down", "mlp"},
};

const LinearInfo& info_of(LinearKind k) { return kLinears[static_cast<int>(k)]; }

bool consume(const std::string& s, std::size_t& pos, const std::string& token) {
  if (s.compare(pos, token.size(), token) != 0) return false;
  pos += token.size();
  return true;
}

}  // namespace

const std::vector<LinearKind>& all_linear_kinds() {
  static const std::vector<LinearKind> kinds = {LinearKind::Q,   LinearKind::K,    LinearKind::V,
                                                LinearKind::O,   LinearKind::Gate, LinearKind::Up,
                                                LinearKind::Down};
  return kinds;
}

const char* linear_kind_name(LinearKind kind) { return info_of(kind).name; }

LinearKind parse_linear_kind(const std::string& name) {
  for (const auto& l : kLinears)
    if (name == l.name) return l.kind;
  throw InvalidArgument("unknown linear layer '" + name +
                        "' (expected q, k, v, o, gate, up or down)");
}

std::vector<LinearKind> parse_linear_kinds(const std::string& comma_list) {
  if (comma_list == "all") return all_linear_kinds();
  std::vector<LinearKind> kinds;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = comma_list.find(',', start);
    const std::string item = comma_list.substr(start, comma - start);
    if (item.empty()) throw InvalidArgument("empty item in linear layer list '" + comma_list + "'");
    const LinearKind kind = parse_linear_kind(item);
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return kinds;
}

std::string linear_weight_name(std::int64_t layer, LinearKind kind) {
  const LinearInfo& l = info_of(kind);
  return "model.layers." + std::to_string(layer) + "." + l.module + "." + l.name + "_proj.weight";
}

std::optional<LinearName> parse_linear_weight_name(const std::string& tensor_name) {
  std::size_t pos = 0;
  if (!consume(tensor_name, pos, "model.layers.")) return std::nullopt;
  const std::size_t digits_begin = pos;
  while (pos < tensor_name.size() && std::isdigit(static_cast<unsigned char>(tensor_name[pos])))
    ++pos;
  const std::size_t digits = pos - digits_begin;
  // Canonical decimal (no leading zeros), small enough for int64.
  if (digits == 0 || digits > 18 || (digits > 1 && tensor_name[digits_begin] == '0'))
    return std::nullopt;
  const std::int64_t layer = std::stoll(tensor_name.substr(digits_begin, digits));
  for (const auto& l : kLinears) {
    std::size_t p = pos;
    if (consume(tensor_name, p, std::string(".") + l.module + "." + l.name + "_proj.weight") &&
        p == tensor_name.size())
      return LinearName{layer, l.kind};
  }
  return std::nullopt;
}

std::optional<LinearKind> linear_kind_of(const std::string& tensor_name) {
  const auto parsed = parse_linear_weight_name(tensor_name);
  if (!parsed) return std::nullopt;
  return parsed->kind;
}

}  // namespace slidesparse
