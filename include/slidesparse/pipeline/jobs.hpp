// A plan expanded into jobs: one job is one child process of the `slidesparse` command,
// covering one or more cases (a pattern × an M). Jobs come in pipeline order; a job's
// dependencies come before it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/pipeline/plan.hpp"

namespace slidesparse::pipeline {

// One case of a job: its backend pattern ("dense" for the baseline, or the zeros spelling
// "2_8", followed by the series of a sparse GEMM other than the default: "2_8+cutlass",
// plan_gemms.hpp) and its M (0 for jobs without one, such as converting a model).
struct Cell {
  std::string pattern;
  std::int64_t m = 0;
  bool operator==(const Cell& o) const { return pattern == o.pattern && m == o.m; }
};

struct Job {
  // "prefill/llama3.2-1b/int8/2_8": also its output folder's name. An end-to-end job on a GEMM
  // other than the default ends in its cases' pattern and series (".../2_8+cutlass",
  // ".../2_8+cutlass+fallback") or, dense, in "dense+<gemm>" (".../dense+cublaslt_fused").
  std::string id;
  Task task = Task::Prepare;
  std::string kind;  // "make-model", "convert", "verify", or the task's name
  std::string model;
  std::string dtype;  // "int8", "fp8", "bf16"; "" for make-model
  // End-to-end jobs: the CSV's backend label ("dense", "dense-cublaslt_fused", "sparse",
  // "sparse-cutlass", "sparse-fallback", …, plan_gemms.hpp); "" otherwise.
  std::string backend;
  // The GEMMs the command is asked for by flag; "" (false) for its defaults.
  std::string sparse_backend;   // --sparse-backend: end to end cutlass or auto; kernel, tune both
  std::string dense_gemm;       // --dense-gemm of a dense end-to-end job
  bool dense_fallback = false;  // --dense-fallback of a sparse end-to-end job
  std::string series;           // of its cases: "+cutlass", … (e2e_series); "" for the defaults
  std::vector<std::string> patterns;  // as the command takes them, without the series
  std::vector<std::int64_t> ms;
  std::vector<std::string> command;  // the subcommand, e.g. {"bench", "e2e"}: probed once per run
  std::vector<std::string> args;     // every argument after the executable
  std::string out_dir;             // relative to the results folder; "" when the job writes nothing
  std::string result_csv;          // the CSV it writes in <out_dir>/<GPU folder>/; "" when none
  std::vector<std::string> needs;  // ids of earlier jobs that must pass first
  bool needs_gpu = false;
  std::string skip_reason;  // set when the plan itself rules the job out (e.g. a kernel
                            // sweep of a checkpoint folder, which has no preset shapes)
  double timeout_s = 0;
  std::string input_dir;  // absolute: the model a job reads (convert, verify, end-to-end)

  // (patterns + series) × ms, or one cell for jobs without M.
  std::vector<Cell> cells() const;
};

// Every job of the plan. `results_dir` is absolute: arguments carry absolute paths.
std::vector<Job> expand_jobs(const Plan& plan, const std::string& results_dir);

// The job that reruns some cases of `job` (one case pattern, series included, some of its M)
// in a process and folder of their own: the cases a crashed job took with it are narrowed
// down this way. Its id is "<job id>/<pattern>/M<m>[,<m>…]".
Job subset_job(const Job& job, const std::string& pattern, const std::vector<std::int64_t>& ms,
               const std::string& results_dir);

}  // namespace slidesparse::pipeline
