// `slidesparse report RESULTS_DIR`: the Markdown report (and plots) of a pipeline's results.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.hpp"
#include "slidesparse/pipeline/report.hpp"

namespace slidesparse::cli {

void add_report_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto no_plots = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "report", "Write RESULTS_DIR/report.md from a pipeline's status and result files");
  cmd->add_option("RESULTS_DIR", *dir, "A pipeline's results folder")->required();
  cmd->add_flag("--no-plots", *no_plots, "Without plots");
  cmd->callback([dir, no_plots]() {
    namespace pl = slidesparse::pipeline;
    std::error_code ec;
    const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    const pl::ReportResult report =
        pl::write_report(*dir, pl::report_options_for(self, !*no_plots));
    std::printf("report %s\n", report.markdown_path.c_str());
    for (const auto& p : report.plots) std::printf("plot   %s/%s\n", dir->c_str(), p.c_str());
    if (report.plots.empty()) std::printf("no plots: %s\n", report.plot_note.c_str());
    for (const auto& [file, why] : report.ignored)
      std::printf("left out %s: %s\n", file.c_str(), why.c_str());
  });
}

}  // namespace slidesparse::cli
