#include "slidesparse/converter.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "slidesparse/converted_checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/safetensors.hpp"
#include "release_pages.hpp"

namespace slidesparse {

namespace {
namespace fs = std::filesystem;
using convert_detail::release_pages;

// Copies go through the writer in pieces of this size, so a 1 GB embedding never needs
// 1 GB of memory.
constexpr std::uint64_t kCopyChunkBytes = std::uint64_t{16} << 20;

// Weight files of other formats: copying them would ship the unconverted weights too.
const std::set<std::string> kSkippedExtensions = {".safetensors", ".bin", ".pt",
                                                   ".pth",         ".ckpt", ".gguf"};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// One piece of output: a tensor copied unchanged, or a linear layer's weight + scale
// (kept in one shard).
struct OutputUnit {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* source = nullptr;
  std::vector<TensorSpec> specs;  // 1 for a copy, 2 for a linear (weight, scale)
  bool linear = false;

  std::uint64_t nbytes() const {
    std::uint64_t total = 0;
    for (const auto& spec : specs) total += spec.nbytes();
    return total;
  }
};

struct OutputShard {
  std::string file_name;
  std::vector<const OutputUnit*> units;
};

std::string prefix_of(const std::string& weight_name) {
  return weight_name.substr(0, weight_name.size() - std::string(".weight").size());
}

// Decides, before any byte is written, what every output tensor is: which inputs are
// packed and which copied. Linear inputs are validated here so that a bad checkpoint
// fails before the staging directory is filled.
std::vector<OutputUnit> plan_units(const Checkpoint& input, const ConvertOptions& options,
                                   ConvertedModelInfo& info) {
  const std::set<LinearKind> selected(options.layers.begin(), options.layers.end());
  std::vector<OutputUnit> units;
  for (const SafetensorsFile& file : input.shards()) {
    for (const TensorInfo& tensor : file.tensors()) {
      OutputUnit unit;
      unit.file = &file;
      unit.source = &tensor;
      const auto kind = linear_kind_of(tensor.name);
      if (!kind || !selected.count(*kind)) {
        unit.specs.push_back({tensor.name, tensor.dtype, tensor.shape});
        units.push_back(std::move(unit));
        continue;
      }
      const std::string where = file.path() + ": " + tensor.name;
      if (tensor.shape.size() != 2)
        throw FormatError(where + ": a linear weight must be 2-D [N, K], got shape " +
                          shape_text(tensor.shape));
      if (tensor.dtype != DType::BF16 && tensor.dtype != DType::F16 && tensor.dtype != DType::F32)
        throw FormatError(where + ": linear weight of dtype " + dtype_name(tensor.dtype) +
                          " cannot be converted (expected BF16, F16 or F32: convert an "
                          "unquantized checkpoint)");
      const std::int64_t n = tensor.shape[0], k = tensor.shape[1];
      if (n <= 0 || k <= 0)
        throw FormatError(where + ": empty linear weight " + shape_text(tensor.shape));
      ConvertedLayerInfo layer{prefix_of(tensor.name), n, k, options.pattern.k_slide(k)};
      if (input.contains(layer.scale_name()))
        throw FormatError(where + ": the checkpoint already has " + layer.scale_name() +
                          " (a quantized checkpoint?): convert the BF16 original");
      unit.linear = true;
      unit.specs.push_back({tensor.name, precision_storage(options.precision), {n, layer.k_slide}});
      unit.specs.push_back({layer.scale_name(), DType::F32, {n}});
      units.push_back(std::move(unit));
      info.layers.push_back(std::move(layer));
    }
  }
  if (info.layers.empty()) {
    std::string kinds;
    for (LinearKind kind : options.layers) kinds += std::string(kinds.empty() ? "" : ",") + linear_kind_name(kind);
    throw FormatError(input.dir() + ": no linear layer weights of the selected kinds (" + kinds +
                      ") found, e.g. model.layers.0.self_attn.q_proj.weight");
  }
  return units;
}

// Groups units into shards of at most max_bytes (a bigger unit gets a shard of its own),
// named as Hugging Face names them.
std::vector<OutputShard> plan_shards(const std::vector<OutputUnit>& units, std::uint64_t max_bytes) {
  std::vector<OutputShard> shards;
  std::uint64_t current = 0;
  for (const auto& unit : units) {
    if (shards.empty() || (current > 0 && current + unit.nbytes() > max_bytes)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().units.push_back(&unit);
    current += unit.nbytes();
  }
  if (shards.size() == 1) {
    shards[0].file_name = Checkpoint::kSingleFile;
  } else {
    for (std::size_t i = 0; i < shards.size(); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      shards[i].file_name = name;
    }
  }
  return shards;
}

class ShardWriter {
 public:
  ShardWriter(const ConvertOptions& options, const ConvertProgress& progress,
              std::uint64_t total_input, ConvertStats& stats)
      : options_(options), progress_(progress), total_input_(total_input), stats_(stats) {}

  void write(const std::string& path, const OutputShard& shard) {
    std::vector<TensorSpec> specs;
    for (const OutputUnit* unit : shard.units)
      specs.insert(specs.end(), unit->specs.begin(), unit->specs.end());
    SafetensorsWriter writer(path, specs, {{"format", "pt"}});
    for (const OutputUnit* unit : shard.units) {
      if (unit->linear) {
        write_linear(writer, *unit);
      } else {
        copy(writer, *unit);
      }
    }
    writer.finish();
  }

 private:
  void copy(SafetensorsWriter& writer, const OutputUnit& unit) {
    const TensorInfo& tensor = *unit.source;
    const std::uint8_t* data = unit.file->data(tensor);
    writer.begin_tensor(tensor.name);
    for (std::uint64_t offset = 0; offset < tensor.nbytes(); offset += kCopyChunkBytes) {
      const std::uint64_t size = std::min(kCopyChunkBytes, tensor.nbytes() - offset);
      writer.write_chunk(data + offset, size);
      release_pages(data + offset, size);
      advance(size);
    }
    ++stats_.copied_tensors;
    stats_.output_bytes += tensor.nbytes();
  }

  void write_linear(SafetensorsWriter& writer, const OutputUnit& unit) {
    const TensorInfo& tensor = *unit.source;
    const std::uint8_t* data = unit.file->data(tensor);
    PackedLinear packed;
    try {
      packed = pack_linear(tensor.dtype, data, tensor.shape[0], tensor.shape[1], nullptr,
                           options_.precision, options_.pattern, options_.prune, tensor.name,
                           options_.threads);
    } catch (const InvalidArgument& e) {
      throw FormatError(unit.file->path() + ": " + e.what());
    }
    release_pages(data, tensor.nbytes());
    writer.write(unit.specs[0].name, packed.weight.data(), packed.weight.size());
    writer.write(unit.specs[1].name, packed.scale.data(), packed.scale.size() * sizeof(float));
    ++stats_.linear_tensors;
    stats_.output_bytes += unit.nbytes();
    advance(tensor.nbytes());
  }

  void advance(std::uint64_t bytes) {
    done_ += bytes;
    if (progress_) progress_(done_, total_input_);
  }

  const ConvertOptions& options_;
  const ConvertProgress& progress_;
  std::uint64_t total_input_;
  ConvertStats& stats_;
  std::uint64_t done_ = 0;
};

nlohmann::json index_json(const std::vector<OutputShard>& shards) {
  nlohmann::json weight_map = nlohmann::json::object();
  std::uint64_t total = 0;
  for (const auto& shard : shards) {
    for (const OutputUnit* unit : shard.units) {
      for (const auto& spec : unit->specs) weight_map[spec.name] = shard.file_name;
      total += unit->nbytes();
    }
  }
  return {{"metadata", {{"total_size", total}}}, {"weight_map", std::move(weight_map)}};
}

// Tokenizer files, generation_config.json and the like travel with the model.
void copy_side_files(const Checkpoint& input, const std::string& out_dir) {
  std::set<std::string> skipped = {Checkpoint::kConfigFile, Checkpoint::kIndexFile};
  for (const auto& shard : input.shard_files()) skipped.insert(fs::path(shard).filename().string());
  for (const auto& entry : fs::directory_iterator(input.dir())) {
    const fs::path& path = entry.path();
    const std::string name = path.filename().string();
    if (!entry.is_regular_file() || skipped.count(name) ||
        kSkippedExtensions.count(path.extension().string()))
      continue;
    std::error_code error;
    fs::copy_file(path, fs::path(out_dir) / name, error);
    if (error) throw IoError(path.string() + ": cannot copy into " + out_dir + ": " + error.message());
  }
}

void check_options(const std::string& in_dir, const std::string& out_dir,
                   const ConvertOptions& options) {
  if (options.threads < 1)
    throw InvalidArgument("--threads must be at least 1, got " + std::to_string(options.threads));
  if (options.layers.empty()) throw InvalidArgument("no linear layer kinds selected (--layers)");
  if (options.max_shard_bytes == 0) throw InvalidArgument("the shard size limit must be positive");
  std::error_code error;
  if (fs::weakly_canonical(in_dir, error) == fs::weakly_canonical(out_dir, error))
    throw InvalidArgument(out_dir + ": the output directory must differ from the input");
}
}  // namespace

ConvertStats convert_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                const ConvertOptions& options, const ConvertProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  check_options(in_dir, out_dir, options);
  const Checkpoint input = Checkpoint::open(in_dir);
  const std::string config_path = input.config_path();
  if (is_converted_config(input.config()))
    throw FormatError(config_path + ": already a SlideSparse checkpoint (it has a \"" +
                      kFormatSection + "\" section): convert the original model instead");
  detect_architecture(input.config(), config_path);

  ConvertedModelInfo info;
  info.pattern = options.pattern;
  info.precision = options.precision;
  info.prune = options.prune;
  const std::vector<OutputUnit> units = plan_units(input, options, info);
  const std::vector<OutputShard> shards = plan_shards(units, options.max_shard_bytes);

  ConvertStats stats;
  for (const auto& unit : units) stats.input_bytes += unit.source->nbytes();
  stats.output_shards = static_cast<std::int64_t>(shards.size());

  StagingDirectory staging(out_dir, options.force);
  ShardWriter writer(options, progress, stats.input_bytes, stats);
  for (const auto& shard : shards) writer.write(staging.path() + "/" + shard.file_name, shard);
  if (shards.size() > 1)
    write_file_atomic(staging.path() + "/" + Checkpoint::kIndexFile, index_json(shards).dump(2) + "\n");
  copy_side_files(input, staging.path());
  nlohmann::json config = input.config();
  config[kFormatSection] = converted_info_json(info);
  write_file_atomic(staging.path() + "/" + Checkpoint::kConfigFile, config.dump(2) + "\n");
  staging.commit();

  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace slidesparse
