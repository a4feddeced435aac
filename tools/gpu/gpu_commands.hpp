#pragma once

#include <CLI/CLI.hpp>

namespace slidesparse::cli {
void add_info_command(CLI::App& app);            // cmd_info.cpp
void add_tune_command(CLI::App& app);            // cmd_tune.cpp
void add_bench_kernel_command(CLI::App& bench);  // cmd_bench_kernel.cpp
void add_bench_e2e_command(CLI::App& bench);     // cmd_bench_e2e.cpp

struct KernelSweepOptions;
// The flags `bench kernel` and `tune` share.
void add_sweep_options(CLI::App& cmd, KernelSweepOptions& options);
}  // namespace slidesparse::cli
