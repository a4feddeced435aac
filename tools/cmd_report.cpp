// `slidesparse report RESULTS_DIR`: the Markdown report (and plots) of a pipeline's results,
// or of the result CSVs that `slidesparse bench kernel|e2e` wrote into a folder directly.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.hpp"
#include "slidesparse/pipeline/report.hpp"

namespace slidesparse::cli {

void add_report_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto no_plots = std::make_shared<bool>(false);
  auto gpu = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "report",
      "Write RESULTS_DIR/report.md from a pipeline's status and result files, or from the "
      "benchmark CSVs of a folder without status.json");
  cmd->add_option("RESULTS_DIR", *dir,
                  "A pipeline's results folder, or a folder that `bench kernel` / `bench e2e` "
                  "wrote into")
      ->required();
  cmd->add_flag("--no-plots", *no_plots, "Without plots");
  cmd->add_option("--gpu", *gpu,
                  "Folder without status.json holding results of several GPUs: the one to "
                  "report, e.g. H100_cc90_cu130_x86_64 (default: the one with most files)");
  cmd->callback([dir, no_plots, gpu]() {
    namespace pl = slidesparse::pipeline;
    std::error_code ec;
    const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    pl::ReportOptions options = pl::report_options_for(self, !*no_plots);
    options.gpu = *gpu;
    const pl::ReportResult report = pl::write_report(*dir, options);
    std::printf("report %s%s\n", report.markdown_path.c_str(),
                report.pipeline ? "" : " (no status.json: from the benchmark CSVs alone)");
    for (const auto& p : report.plots) std::printf("plot   %s/%s\n", dir->c_str(), p.c_str());
    if (report.plots.empty()) std::printf("no plots: %s\n", report.plot_note.c_str());
    for (const auto& [file, why] : report.ignored)
      std::printf("left out %s: %s\n", file.c_str(), why.c_str());
  });
}

}  // namespace slidesparse::cli
