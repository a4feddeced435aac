// Runs a plan: each job as a child process of the `slidesparse` command, its output in the
// run's log, its status (and each case's) in status.json after every job.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "slidesparse/pipeline/plan.hpp"

namespace slidesparse::pipeline {

struct PipelineOptions {
  std::string results_dir;
  // Continue the run in results_dir: passed and skipped jobs stay, the rest run again.
  bool resume = false;
  // The program that runs the jobs and its leading arguments: the `slidesparse` command
  // itself, or (in tests) a script standing in for it.
  std::vector<std::string> launcher;
  // Polled while jobs run; true stops the running child and ends the run (resumable).
  std::function<bool()> interrupted;
  // One line per job as it ends; nothing when unset.
  std::function<void(const std::string&)> progress;
  double kill_grace_s = 5;  // after SIGINT/SIGTERM to a child, before SIGKILL
};

struct PipelineSummary {
  int jobs = 0, passed = 0, failed = 0, skipped = 0, not_run = 0;
  bool interrupted = false;
  std::string status_path, log_path;
  double seconds = 0;        // wall time of this run
  double child_seconds = 0;  // of which inside the jobs' children
};

// Throws InvalidArgument before anything runs when results_dir cannot take this run:
// it holds another plan's or another GPU's results, a finished run without --resume, or
// files that are not a pipeline's; IoError when it cannot be written.
PipelineSummary run_pipeline(const Plan& plan, const PipelineOptions& options);

}  // namespace slidesparse::pipeline
