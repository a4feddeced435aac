// `slidesparse bench kernel`: sparse vs tuned dense GEMM and whole layer, per shape and M.
#include <memory>

#include "gpu_commands.hpp"
#include "kernel_sweep.hpp"

namespace slidesparse::cli {

void add_sweep_options(CLI::App& cmd, KernelSweepOptions& opt) {
  cmd.add_option("--preset", opt.models, "Presets and/or 'square', comma-separated")
      ->capture_default_str();
  cmd.add_option("--M", opt.ms, "Token counts, comma-separated")->capture_default_str();
  cmd.add_flag("--large-m", opt.large_m, "Also M = 32768 and 65536");
  cmd.add_option("--pattern", opt.patterns, "Patterns (6:8 or 2_8 spelling)")
      ->capture_default_str();
  cmd.add_option("--dtype", opt.dtypes, "int8,fp8,bf16,fp16")->capture_default_str();
  cmd.add_option("--reps", opt.reps, "Timed repetitions per measurement")->capture_default_str();
  cmd.add_flag("--warm-l2", opt.warm_l2,
               "Time runs back to back with a warm L2 (default: L2 flushed before each run)");
  cmd.add_option("--seed", opt.seed, "Random seed")->capture_default_str();
  cmd.add_option("--sparse-backend", opt.sparse_backend,
                 "2:4 GEMM of the sparse path: cusparselt, cutlass (our sm_90a GEMM with fused "
                 "dequantization, cc 9.0), both (CUTLASS sparse and CUTLASS dense measured in "
                 "extra columns; `tune` then records the entries `bench e2e --sparse-backend "
                 "auto` chooses from) or all (both, and the CUTLASS GEMM that lifts its input "
                 "itself, cutlass_lift)")
      ->check(CLI::IsMember({"cusparselt", "cutlass", "both", "all"}))
      ->capture_default_str();
}

void add_bench_kernel_command(CLI::App& bench) {
  auto opt = std::make_shared<KernelSweepOptions>();
  CLI::App* cmd = bench.add_subcommand("kernel", "Sparse vs tuned dense GEMM and layer per shape");
  add_sweep_options(*cmd, *opt);
  cmd->add_option("--out", opt->out, "Results root; a folder per GPU and dtype is made in it")
      ->capture_default_str();
  cmd->add_option("--tuning", opt->tuning, "Also record the best algorithms into this database");
  cmd->callback([opt]() { run_kernel_sweep(*opt); });
}

}  // namespace slidesparse::cli
