// The GPU a pipeline runs on, as `slidesparse info` describes it. The pipeline library has
// no CUDA: it asks the command (a child process) and keeps the answer in the status file,
// so a report and a resume always know which GPU the results belong to.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace slidesparse::pipeline {

struct PrecisionSupport {
  bool supported = false;
  std::string reason;  // why not, e.g. "no FP8 on cc 8.0 (needs 8.9 or newer)"
  std::string folder;  // result folder name, e.g. "H100_cc90_INT8_cu130_x86_64"
};

struct HardwareInfo {
  bool gpu = false;
  std::string no_gpu_reason;  // when !gpu: "no CUDA device: …", or the command lacks `info`
  std::string name;           // "NVIDIA H100 80GB HBM3"
  std::string compute_capability, driver, cuda_runtime, cublaslt, cusparselt, memory;
  std::string sparse_tensor_cores;
  std::map<std::string, PrecisionSupport> precisions;  // "int8", "fp8", "bf16", "fp16"
  std::string info_text;                               // what `slidesparse info` printed

  // Same GPU model, compute capability and CUDA runtime: results are comparable.
  // "no GPU" on a machine without one.
  std::string identity() const;
  // The result folders of this GPU (one per precision), for telling them from others'.
  std::vector<std::string> folders() const;
};

// Parses the output of `slidesparse info`. Throws FormatError naming the missing line.
HardwareInfo parse_info_output(const std::string& text);
HardwareInfo no_gpu(const std::string& reason);

nlohmann::ordered_json hardware_to_json(const HardwareInfo& hardware);
HardwareInfo hardware_from_json(const nlohmann::ordered_json& j);

}  // namespace slidesparse::pipeline
