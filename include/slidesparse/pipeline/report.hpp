// The Markdown report of a results folder (report.md), generated entirely from its files:
// a pipeline's folder from status.json and the result CSVs of its GPU (tasks, pass matrices,
// failures, hardware, performance tables); a folder the benchmarks wrote directly (no
// status.json) from the CSVs alone (failed rows, hardware from the GPU folders and the tuning
// database, performance tables). Speedup plots: PNG, drawn by scripts/plot_results.py when
// matplotlib is there.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace slidesparse::pipeline {

struct ReportOptions {
  bool plots = true;
  // The interpreter that runs the plot script (no PATH search for the first word).
  std::vector<std::string> python = {"/usr/bin/env", "python3"};
  std::string plot_script;  // scripts/plot_results.py; "" means no plots (the report says so)
  // A folder without status.json that holds results of several GPUs: which one to report,
  // as its folders name it without the dtype ("H100_cc90_cu130_x86_64"). "": the GPU with
  // the most result files. Refused for a pipeline's folder.
  std::string gpu;
};

struct ReportResult {
  bool pipeline = false;  // from a status.json; else from the benchmarks' CSVs alone
  std::string markdown_path;
  std::vector<std::string> plots;  // embedded PNGs, relative to the results folder
  std::string plot_note;           // why there are no plots, when there are none
  std::vector<std::pair<std::string, std::string>> ignored;  // result files left out, and why
};

// Writes <results_dir>/report.md (atomically) and <results_dir>/plots/. Throws
// InvalidArgument naming the folder when it holds neither a status.json nor a benchmark CSV
// (kernel_bench.csv, e2e_prefill.csv, e2e_decode.csv).
ReportResult write_report(const std::string& results_dir, const ReportOptions& options);

// Options for the `slidesparse` command run as `executable`: the plot script found with
// find_project_file, the interpreter from $SLIDESPARSE_PYTHON when set.
ReportOptions report_options_for(const std::string& executable, bool plots);

// A file shipped with the project (plans/default.toml, scripts/plot_results.py): looked for
// under $SLIDESPARSE_HOME, the working folder, and the folders above the executable.
// "" when not found.
std::string find_project_file(const std::string& relative, const std::string& executable);

}  // namespace slidesparse::pipeline
