// Each subcommand of `slidesparse` lives in its own file and registers itself here.
// A command's callback throws on failure; main() turns that into one line and exit 1.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace slidesparse::cli {

// CPU commands (always built).
void add_convert_command(CLI::App& app);     // cmd_convert.cpp
void add_verify_command(CLI::App& app);      // cmd_convert.cpp
void add_inspect_command(CLI::App& app);     // cmd_inspect.cpp
void add_make_model_command(CLI::App& app);  // cmd_make_model.cpp
void add_demo_command(CLI::App& app);        // cmd_demo.cpp
void add_run_command(CLI::App& app);         // cmd_run.cpp
void add_pipeline_command(CLI::App& app);    // cmd_pipeline.cpp
void add_report_command(CLI::App& app);      // cmd_report.cpp

// GPU commands (built when CUDA is present; tools/gpu/).
void add_gpu_commands(CLI::App& app);  // tools/gpu/commands_gpu.cpp: info, tune, bench kernel

// `run --gpu` (tools/gpu/cmd_run_gpu.cpp): greedy generation by the GPU model runner; prints
// the generated ids per prompt, and writes the prefill logits when logits_out is set.
struct GpuRunRequest {
  std::string model;
  std::vector<std::vector<int>> prompts;
  int max_new = 16;
  std::string dtype = "bf16";
  std::string backend;  // "" = sparse with a pattern, dense without
  std::string pattern;  // "" = no pruning (dense backend only)
  std::string tuning;
  std::string logits_out;  // float32 [prompts, vocab], little-endian
  std::string attention;   // prefill attention: "" = the runner's default, "cudnn" or "own"
};
void run_on_gpu(const GpuRunRequest& request);

}  // namespace slidesparse::cli
