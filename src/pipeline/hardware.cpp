#include "slidesparse/pipeline/hardware.hpp"

#include <regex>
#include <sstream>

#include "slidesparse/error.hpp"

namespace slidesparse::pipeline {

std::string HardwareInfo::identity() const {
  if (!gpu) return "no GPU";
  const std::string cc = compute_capability.substr(0, compute_capability.find(' '));
  return name + ", cc " + cc + ", CUDA " + cuda_runtime;
}

std::vector<std::string> HardwareInfo::folders() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : precisions)
    if (!p.folder.empty()) out.push_back(p.folder);
  return out;
}

HardwareInfo no_gpu(const std::string& reason) {
  HardwareInfo h;
  h.gpu = false;
  h.no_gpu_reason = reason;
  return h;
}

HardwareInfo parse_info_output(const std::string& text) {
  // `info` prints "label<two or more spaces>value" lines, then one line per precision:
  // "int8   dense + sparse    results: H100_cc90_INT8_cu130_x86_64/".
  static const std::regex field(R"(^(\S.*?)\s{2,}(\S.*?)\s*$)");
  static const std::regex precision(R"(^(int8|fp8|bf16|fp16)\s+(.*?)\s+results:\s+(\S+?)/?\s*$)");
  HardwareInfo h;
  h.gpu = true;
  h.info_text = text;
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, precision)) {
      PrecisionSupport p;
      const std::string what = m[2];
      p.supported = what.rfind("skipped: ", 0) != 0;
      if (!p.supported) p.reason = what.substr(9);
      p.folder = m[3];
      h.precisions[m[1]] = p;
    } else if (std::regex_match(line, m, field)) {
      fields[m[1]] = m[2];
    }
  }
  const auto need = [&](const char* label) {
    const auto it = fields.find(label);
    if (it == fields.end())
      throw FormatError(std::string("`slidesparse info` printed no '") + label + "' line");
    return it->second;
  };
  h.name = need("GPU");
  h.compute_capability = need("compute capability");
  h.cuda_runtime = need("CUDA runtime");
  h.driver = fields["driver"];
  h.cublaslt = fields["cuBLASLt"];
  h.cusparselt = fields["cuSPARSELt"];
  h.memory = fields["memory"];
  h.sparse_tensor_cores = fields["2:4 sparse tensor cores"];
  if (h.precisions.empty()) throw FormatError("`slidesparse info` printed no precision lines");
  return h;
}

nlohmann::ordered_json hardware_to_json(const HardwareInfo& h) {
  nlohmann::ordered_json j;
  j["gpu"] = h.gpu;
  j["identity"] = h.identity();
  if (!h.gpu) {
    j["no_gpu_reason"] = h.no_gpu_reason;
    return j;
  }
  j["name"] = h.name;
  j["compute_capability"] = h.compute_capability;
  j["driver"] = h.driver;
  j["cuda_runtime"] = h.cuda_runtime;
  j["cublaslt"] = h.cublaslt;
  j["cusparselt"] = h.cusparselt;
  j["memory"] = h.memory;
  j["sparse_tensor_cores"] = h.sparse_tensor_cores;
  for (const auto& [name, p] : h.precisions)
    j["precisions"][name] = {
        {"supported", p.supported}, {"reason", p.reason}, {"folder", p.folder}};
  j["info_text"] = h.info_text;
  return j;
}

HardwareInfo hardware_from_json(const nlohmann::ordered_json& j) {
  HardwareInfo h;
  h.gpu = j.value("gpu", false);
  h.no_gpu_reason = j.value("no_gpu_reason", "");
  h.name = j.value("name", "");
  h.compute_capability = j.value("compute_capability", "");
  h.driver = j.value("driver", "");
  h.cuda_runtime = j.value("cuda_runtime", "");
  h.cublaslt = j.value("cublaslt", "");
  h.cusparselt = j.value("cusparselt", "");
  h.memory = j.value("memory", "");
  h.sparse_tensor_cores = j.value("sparse_tensor_cores", "");
  h.info_text = j.value("info_text", "");
  if (j.contains("precisions"))
    for (const auto& [name, p] : j["precisions"].items())
      h.precisions[name] = {p.value("supported", false), p.value("reason", ""),
                            p.value("folder", "")};
  return h;
}

}  // namespace slidesparse::pipeline
