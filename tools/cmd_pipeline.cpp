// `slidesparse pipeline PLAN`: prepare models, tune, benchmark, and report, one child
// process per job; `--resume` continues a run, `--estimate` projects a plan's time.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/estimate.hpp"
#include "slidesparse/pipeline/interrupt.hpp"
#include "slidesparse/pipeline/jobs.hpp"
#include "slidesparse/pipeline/plan.hpp"
#include "slidesparse/pipeline/probe.hpp"
#include "slidesparse/pipeline/report.hpp"
#include "slidesparse/pipeline/runner.hpp"

namespace slidesparse::cli {

namespace {

namespace fs = std::filesystem;
namespace pl = slidesparse::pipeline;

struct PipelineFlags {
  std::string plan;
  std::string out;
  bool resume = false;
  bool estimate = false;
  bool dry_run = false;
  bool no_plots = false;
  std::vector<std::string> from;
  std::string exe;
};

std::string this_executable() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw IoError("cannot find this executable (/proc/self/exe): " + ec.message());
  return self.string();
}

std::string quoted(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args)
    out += (out.empty() ? "" : " ") + (a.find(' ') == std::string::npos ? a : "'" + a + "'");
  return out;
}

void dry_run(const pl::Plan& plan, const std::string& out) {
  const auto jobs = pl::expand_jobs(plan, fs::absolute(out).lexically_normal().string());
  std::size_t cases = 0;
  for (const auto& job : jobs) {
    cases += job.cells().size();
    std::printf("%-44s %s%s\n", job.id.c_str(), quoted(job.args).c_str(),
                job.skip_reason.empty() ? "" : ("   [skipped: " + job.skip_reason + "]").c_str());
  }
  std::printf("plan '%s': %zu jobs, %zu cases\n", plan.name.c_str(), jobs.size(), cases);
}

void estimate(const pl::Plan& plan, const PipelineFlags& flags, const std::string& exe) {
  std::vector<std::string> candidates = flags.from;
  if (candidates.empty()) {
    candidates.push_back(flags.out);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("out/pipeline", ec))
      candidates.push_back(entry.path().string());
  }
  std::vector<pl::PipelineStatus> measured;
  std::vector<std::string> paths;
  for (const auto& c : candidates) {
    const std::string path = fs::is_directory(c) ? c + "/" + pl::PipelineStatus::kFileName : c;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec) ||
        std::find(paths.begin(), paths.end(), fs::absolute(path).lexically_normal().string()) !=
            paths.end())
      continue;
    measured.push_back(pl::PipelineStatus::load(path));
    paths.push_back(fs::absolute(path).lexically_normal().string());
  }
  const std::string info_file =
      (fs::temp_directory_path() / ("slidesparse-info-" + std::to_string(::getpid()))).string();
  const pl::HardwareInfo here = pl::detect_hardware({exe}, info_file);
  std::error_code ec;
  fs::remove(info_file, ec);
  const auto jobs = pl::expand_jobs(plan, fs::absolute(flags.out).lexically_normal().string());
  std::fputs(pl::format_estimate(
                 pl::estimate_plan(jobs, plan.layers, measured, paths, here.identity()), plan.name)
                 .c_str(),
             stdout);
}

void run(const PipelineFlags& flags) {
  const std::string exe = flags.exe.empty() ? this_executable() : flags.exe;
  std::string plan_path = flags.plan;
  if (plan_path.empty()) {
    if (!flags.estimate)
      throw InvalidArgument("pipeline: name a PLAN file (plans/short.toml, plans/default.toml, …)");
    plan_path = pl::find_project_file("plans/default.toml", this_executable());
    if (plan_path.empty())
      throw InvalidArgument("pipeline --estimate: plans/default.toml not found; name a PLAN");
  }
  const pl::Plan plan = pl::load_plan(plan_path);
  PipelineFlags f = flags;
  if (f.out.empty()) f.out = "out/pipeline/" + plan.name;
  if (f.dry_run) return dry_run(plan, f.out);
  if (f.estimate) return estimate(plan, f, exe);

  pl::PipelineOptions options;
  options.results_dir = f.out;
  options.resume = f.resume;
  options.launcher = {exe};
  options.progress = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  pl::PipelineSummary summary;
  int stopped_by = 0;
  {
    const pl::InterruptFlag interrupt;
    options.interrupted = [&interrupt] { return interrupt.raised(); };
    summary = pl::run_pipeline(plan, options);
    stopped_by = interrupt.signal();
  }
  // The report is part of the pipeline's own time.
  const auto report_start = std::chrono::steady_clock::now();
  const pl::ReportResult report =
      pl::write_report(f.out, pl::report_options_for(this_executable(), !f.no_plots));
  const double report_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - report_start).count();
  const double total = summary.seconds + report_seconds;
  const double overhead = total - summary.child_seconds;
  std::printf(
      "%d jobs: %d passed, %d failed, %d skipped, %d not run; %.1f s, of which %.1f s "
      "pipeline overhead (%.1f%%, report %.1f s)\n",
      summary.jobs, summary.passed, summary.failed, summary.skipped, summary.not_run, total,
      overhead, total > 0 ? 100.0 * overhead / total : 0.0, report_seconds);
  std::printf("status %s\nlog    %s\nreport %s%s\n", summary.status_path.c_str(),
              summary.log_path.c_str(), report.markdown_path.c_str(),
              report.plots.empty() ? (" (no plots: " + report.plot_note + ")").c_str() : "");
  if (summary.interrupted) {
    std::printf("interrupted: continue with  slidesparse pipeline %s --out %s --resume\n",
                plan_path.c_str(), f.out.c_str());
    std::fflush(stdout);
    // End the way the signal would have ended it, so a calling shell stops too (130 for Ctrl-C).
    const int sig = stopped_by != 0 ? stopped_by : SIGINT;
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    std::_Exit(128 + sig);
  }
  std::fflush(stdout);
  if (summary.failed > 0)
    throw Error(std::to_string(summary.failed) + " of " + std::to_string(summary.jobs) +
                " jobs failed; see " + report.markdown_path);
}

}  // namespace

void add_pipeline_command(CLI::App& app) {
  auto flags = std::make_shared<PipelineFlags>();
  CLI::App* cmd = app.add_subcommand(
      "pipeline",
      "Run a plan (prepare, tune, benchmark) with a status per case, then write the report");
  cmd->add_option("PLAN", flags->plan, "Plan file (TOML): plans/short.toml, plans/default.toml, …");
  cmd->add_option("--out", flags->out, "Results folder (default: out/pipeline/<plan name>)");
  cmd->add_flag("--resume", flags->resume,
                "Continue the run in --out: keep what passed, rerun what failed");
  cmd->add_flag(
      "--estimate", flags->estimate,
      "Project the plan's time (default plans/default.toml) from earlier runs' status files");
  cmd->add_option("--from", flags->from,
                  "With --estimate: results folders or status files to measure from "
                  "(default: --out and every folder in out/pipeline/)");
  cmd->add_flag("--dry-run", flags->dry_run, "Print each job and its command line; run nothing");
  cmd->add_flag("--no-plots", flags->no_plots, "Write the report without plots");
  cmd->add_option("--exe", flags->exe,
                  "The slidesparse executable that runs the jobs (default: this one)");
  cmd->callback([flags]() { run(*flags); });
}

}  // namespace slidesparse::cli
