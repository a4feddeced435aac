// Registers the GPU subcommands (built only with CUDA).
#include "../commands.hpp"
#include "gpu_commands.hpp"

namespace slidesparse::cli {

void add_gpu_commands(CLI::App& app) {
  add_info_command(app);
  add_tune_command(app);
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks on the GPU");
  bench->require_subcommand(1);
  add_bench_kernel_command(*bench);
  add_bench_e2e_command(*bench);
}

}  // namespace slidesparse::cli
