// The tiny checkpoints of tests/data/models/ (scripts/make_tiny_models.py), their numpy
// logits (scripts/reference_numpy.py), and edited copies of them for the error tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io_fixtures.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/model/config.hpp"
#include "slidesparse/model/reference_forward.hpp"
#include "slidesparse/model/weights.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse::test {

// One per architecture.
inline const std::vector<std::string>& tiny_model_names() {
  static const std::vector<std::string> names = {"llama-tiny", "qwen2-tiny", "bitnet-tiny"};
  return names;
}

inline std::string tiny_model_dir(const std::string& name) {
  return std::string(SLIDESPARSE_TEST_DATA_DIR) + "/models/" + name;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  return nlohmann::json::parse(in);
}

inline ReferenceModel load_reference_model(const std::string& dir, LinearFn linears = {}) {
  const Checkpoint checkpoint = Checkpoint::open(dir);
  const ModelConfig config = model_config(checkpoint);
  return ReferenceModel(config, HostModelWeights::load(checkpoint, config), std::move(linears));
}

// A copy of a single-file checkpoint in `tmp`, its config.json passed through
// `edit_config` and its tensors through `edit_tensors` (name, shape and bytes, in file
// order), written back with SafetensorsWriter.
struct EditableTensor {
  TensorSpec spec;
  std::vector<std::uint8_t> bytes;
};
inline std::string edited_checkpoint(
    const TempDir& tmp, const std::string& source_dir,
    const std::function<void(nlohmann::json&)>& edit_config,
    const std::function<void(std::vector<EditableTensor>&)>& edit_tensors = {}) {
  const std::string dir = tmp.file("edited");
  std::filesystem::create_directories(dir);
  nlohmann::json config = read_json(source_dir + "/config.json");
  if (edit_config) edit_config(config);
  write_bytes(dir + "/config.json", config.dump(2));

  const SafetensorsFile source = SafetensorsFile::open(source_dir + "/model.safetensors");
  std::vector<EditableTensor> tensors;
  for (const TensorInfo& info : source.tensors()) {
    const std::uint8_t* data = source.data(info);
    tensors.push_back({{info.name, info.dtype, info.shape},
                       std::vector<std::uint8_t>(data, data + info.nbytes())});
  }
  if (edit_tensors) edit_tensors(tensors);
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back(t.spec);
  SafetensorsWriter writer(dir + "/model.safetensors", specs, {{"format", "pt"}});
  for (const auto& t : tensors) writer.write(t.spec.name, t.bytes.data(), t.bytes.size());
  writer.finish();
  return dir;
}

}  // namespace slidesparse::test
