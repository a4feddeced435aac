// `slidesparse inspect FILE|DIR`: the tensors of a safetensors file or checkpoint, and the
// SlideSparse section of a converted checkpoint.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "commands.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/converted_checkpoint.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::cli {

namespace {
struct Row {
  std::string name, dtype, shape, bytes, shard;
};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

Row row_of(const TensorInfo& tensor, const std::string& shard_path) {
  return {tensor.name, dtype_name(tensor.dtype), shape_text(tensor.shape),
          std::to_string(tensor.nbytes()), std::filesystem::path(shard_path).filename().string()};
}

void print_table(const std::vector<Row>& rows) {
  Row width{"tensor", "dtype", "shape", "bytes", "shard"};
  auto widen = [](std::size_t& w, const std::string& s) { w = std::max(w, s.size()); };
  std::size_t w[5] = {width.name.size(), width.dtype.size(), width.shape.size(), width.bytes.size(),
                      width.shard.size()};
  for (const Row& r : rows) {
    widen(w[0], r.name);
    widen(w[1], r.dtype);
    widen(w[2], r.shape);
    widen(w[3], r.bytes);
  }
  auto print = [&](const Row& r) {
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {}\n", r.name, w[0], r.dtype, w[1], r.shape, w[2],
               r.bytes, w[3], r.shard);
  };
  print(width);
  for (const Row& r : rows) print(r);
}

void print_totals(std::size_t tensors, std::uint64_t bytes, std::size_t files) {
  fmt::print("{} tensors, {:.1f} MB in {} file{}\n", tensors, bytes / 1e6, files,
             files == 1 ? "" : "s");
}

void inspect_file(const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  std::vector<Row> rows;
  std::uint64_t bytes = 0;
  for (const TensorInfo& tensor : file.tensors()) {
    rows.push_back(row_of(tensor, path));
    bytes += tensor.nbytes();
  }
  print_table(rows);
  for (const auto& [key, value] : file.metadata()) fmt::print("metadata {}: {}\n", key, value);
  print_totals(rows.size(), bytes, 1);
}

void print_converted_section(const Checkpoint& checkpoint) {
  const ConvertedModelInfo info =
      read_converted_info(checkpoint.config(), checkpoint.config_path());
  fmt::print("slidesparse: format {}, pattern {}, {} (weights {}), prune {}, {} converted layers\n",
             info.format_version, info.pattern.display_name(), precision_label(info.precision),
             dtype_name(precision_storage(info.precision)), prune_mode_name(info.prune),
             info.layers.size());
  // One line per distinct shape: a model repeats the same few.
  std::vector<std::pair<std::string, int>> shapes;
  for (const auto& layer : info.layers) {
    const std::string shape =
        fmt::format("[N={}, K={} → K_slide={}]", layer.n, layer.k, layer.k_slide);
    auto it = std::find_if(shapes.begin(), shapes.end(),
                           [&](const auto& entry) { return entry.first == shape; });
    if (it == shapes.end()) {
      shapes.emplace_back(shape, 1);
    } else {
      ++it->second;
    }
  }
  for (const auto& [shape, count] : shapes) fmt::print("  {} × {}\n", count, shape);
}

void inspect_dir(const std::string& dir) {
  const Checkpoint checkpoint = Checkpoint::open(dir);
  std::vector<Row> rows;
  std::uint64_t bytes = 0;
  for (const SafetensorsFile& shard : checkpoint.shards()) {
    for (const TensorInfo& tensor : shard.tensors()) {
      rows.push_back(row_of(tensor, shard.path()));
      bytes += tensor.nbytes();
    }
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.name < b.name; });
  print_table(rows);
  print_totals(rows.size(), bytes, checkpoint.shards().size());
  try {
    const Architecture architecture =
        detect_architecture(checkpoint.config(), checkpoint.config_path());
    fmt::print("architecture: {} ({})\n", architecture_name(architecture),
               architecture_class(architecture));
  } catch (const FormatError& e) {
    fmt::print("architecture: not supported: {}\n", e.what());
  }
  if (is_converted_config(checkpoint.config())) print_converted_section(checkpoint);
}
}  // namespace

void add_inspect_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "List the tensors of a safetensors file or checkpoint directory");
  cmd->add_option("PATH", *path, "a .safetensors file or a checkpoint directory")->required();
  cmd->callback([path] {
    if (std::filesystem::is_directory(*path)) {
      inspect_dir(*path);
    } else {
      inspect_file(*path);
    }
  });
}

}  // namespace slidesparse::cli
