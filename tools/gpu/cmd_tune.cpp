// `slidesparse tune`: algorithm search per shape, dtype, pattern and M bucket → tuning database.
#include <memory>

#include "gpu_commands.hpp"
#include "kernel_sweep.hpp"

namespace slidesparse::cli {

void add_tune_command(CLI::App& app) {
  auto opt = std::make_shared<KernelSweepOptions>();
  opt->models = "llama3.2-1b,llama3.2-3b,qwen2.5-7b,qwen2.5-14b,bitnet-2b";
  opt->patterns = "2_4,2_6,2_8,2_10";
  opt->dtypes = "int8,fp8";
  opt->reps = 10;
  opt->tune_only = true;
  opt->tuning = "tuning.json";
  CLI::App* cmd =
      app.add_subcommand("tune", "Search the GEMM algorithms and write the tuning database");
  add_sweep_options(*cmd, *opt);
  cmd->add_option("--db", opt->tuning, "Tuning database to create or update")
      ->capture_default_str();
  cmd->callback([opt]() { run_kernel_sweep(*opt); });
}

}  // namespace slidesparse::cli
