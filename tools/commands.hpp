// Each subcommand of `slidesparse` lives in its own file and registers itself here.
// A command's callback throws on failure; main() turns that into one line and exit 1.
#pragma once

#include <CLI/CLI.hpp>

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

}  // namespace slidesparse::cli
