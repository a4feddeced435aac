// The measurements of one pipeline run, read back from the result files its status file
// lists: only files in this GPU's result folders; every other result file under the
// results folder is listed as ignored, with the reason. Private to the pipeline room.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "slidesparse/pipeline/status.hpp"

namespace slidesparse::pipeline {

// One row of e2e_prefill.csv / e2e_decode.csv (docs/results-format.md).
struct EndToEndRow {
  std::string model, dtype, pattern;  // pattern: "dense" or "2_8"
  std::int64_t m = 0;
  double tokens_per_s = 0, requests_per_s = 0, gemm_ms = 0, attention_ms = 0, other_ms = 0;
  std::string status, error;
};

// One row of kernel_bench.csv (one layer of one model at one M and pattern).
struct KernelRow {
  std::string model, dtype, layer, pattern;
  std::int64_t m = 0;
  double dense_gemm_us = 0, sparse_gemm_us = 0, dense_layer_us = 0, sparse_layer_us = 0;
  double quant_lift_gbps = 0, quant_lift_vs_copy = 0;
  std::string status, error;
};

struct RunResults {
  std::vector<EndToEndRow> prefill, decode;
  std::vector<KernelRow> kernel;
  std::vector<std::string> files;                            // used, relative to the results folder
  std::vector<std::pair<std::string, std::string>> ignored;  // file, why
  std::vector<std::string> problems;                         // files that could not be read
};

RunResults read_run_results(const PipelineStatus& status, const std::string& results_dir);

}  // namespace slidesparse::pipeline
