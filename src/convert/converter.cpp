#include "slidesparse/converter.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "conversion_plan.hpp"
#include "release_pages.hpp"
#include "shard_writer.hpp"
#include "slidesparse/converted_checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {

namespace {
namespace fs = std::filesystem;
using convert_detail::OutputShard;
using convert_detail::OutputUnit;
using convert_detail::release_pages;
using convert_detail::ShardWriter;

// Weight files of other formats: copying them would ship the unconverted weights too.
const std::set<std::string> kSkippedExtensions = {".safetensors", ".bin",  ".pt",
                                                  ".pth",         ".ckpt", ".gguf"};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

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
    for (LinearKind kind : options.layers)
      kinds += std::string(kinds.empty() ? "" : ",") + linear_kind_name(kind);
    throw FormatError(input.dir() + ": no linear layer weights of the selected kinds (" + kinds +
                      ") found, e.g. model.layers.0.self_attn.q_proj.weight");
  }
  return units;
}

// Groups units into shards of at most max_bytes (a bigger unit gets a shard of its own),
// named as Hugging Face names them.
std::vector<OutputShard> plan_shards(const std::vector<OutputUnit>& units,
                                     std::uint64_t max_bytes) {
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

// Packs every linear on this thread (with options.threads workers) and hands the results,
// in plan order, to the writer thread.
ConvertStats pack_and_write(const std::vector<OutputShard>& shards, const std::string& dir,
                            const ConvertOptions& options, const ConvertProgress& progress,
                            std::uint64_t total_input) {
  ShardWriter writer(shards, dir, progress, total_input);
  for (const auto& shard : shards) {
    for (const OutputUnit* unit : shard.units) {
      if (!unit->linear) {
        writer.submit(*unit, nullptr);
        continue;
      }
      const TensorInfo& tensor = *unit->source;
      const std::uint8_t* data = unit->file->data(tensor);
      PackedLinear& packed = writer.acquire_buffer();
      try {
        pack_linear_into(packed, tensor.dtype, data, tensor.shape[0], tensor.shape[1], nullptr,
                         options.precision, options.pattern, options.prune, tensor.name,
                         options.threads);
      } catch (const InvalidArgument& e) {
        throw FormatError(unit->file->path() + ": " + e.what());
      }
      release_pages(data, tensor.nbytes());
      writer.submit(*unit, &packed);
    }
  }
  return writer.finish();
}

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
    if (error)
      throw IoError(path.string() + ": cannot copy into " + out_dir + ": " + error.message());
  }
}

void check_options(const std::string& in_dir, const std::string& out_dir,
                   const ConvertOptions& options) {
  if (options.threads < 1)
    throw InvalidArgument("--threads must be at least 1, got " + std::to_string(options.threads));
  if (options.layers.empty()) throw InvalidArgument("no linear layer kinds selected (--layers)");
  if (options.max_shard_bytes == 0) throw InvalidArgument("the shard size limit must be positive");
  std::error_code in_error, out_error;
  const fs::path in = fs::weakly_canonical(in_dir, in_error);
  const fs::path out = fs::weakly_canonical(out_dir, out_error);
  if (!in_error && !out_error && in == out)
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

  std::uint64_t input_bytes = 0;
  for (const auto& unit : units) input_bytes += unit.source->nbytes();

  StagingDirectory staging(out_dir, options.force);
  ConvertStats stats = pack_and_write(shards, staging.path(), options, progress, input_bytes);
  stats.input_bytes = input_bytes;
  if (shards.size() > 1)
    write_file_atomic(staging.path() + "/" + Checkpoint::kIndexFile,
                      index_json(shards).dump(2) + "\n");
  copy_side_files(input, staging.path());
  nlohmann::json config = input.config();
  config[kFormatSection] = converted_info_json(info);
  write_file_atomic(staging.path() + "/" + Checkpoint::kConfigFile, config.dump(2) + "\n");
  staging.commit();

  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace slidesparse
