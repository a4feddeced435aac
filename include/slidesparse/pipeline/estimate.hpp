// How long a plan takes on this GPU, projected from the job times that earlier runs
// recorded in their status files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/pipeline/jobs.hpp"
#include "slidesparse/pipeline/status.hpp"

namespace slidesparse::pipeline {

struct EstimateLine {
  std::string kind;  // "make-model", "convert", …, "kernel-low"
  int jobs = 0;
  long cases = 0;
  // How each job's time was found: that very job measured; the same kind and model
  // (seconds per case × its cases); the same kind on other models; not at all.
  int same_job = 0, same_model = 0, other_models = 0, unknown = 0;
  // Of the borrowed ones, those whose GEMMs (gemm_flags) no measured job of their kind ran.
  int other_gemms = 0;
  double seconds = 0;
};

struct Estimate {
  std::string gpu;                   // whose measurements were used
  std::vector<std::string> sources;  // the status files used
  std::vector<std::string> notes;
  std::vector<EstimateLine> lines;  // in pipeline order
  double seconds = 0;
  int unknown_jobs = 0;
};

// Only passed jobs count as measurements, and for jobs that make or run models only those of
// plans with the same `layers`. A job counts as measured when the same job (id, cases and GEMM
// flags) was; else it borrows the seconds per case of its kind on the same GEMMs, and only
// where none ran them, of its kind on any. `measured` may come from several GPUs: those of
// `gpu_identity` are used; on a machine without a GPU ("no GPU"), the GPU with the most measured
// jobs is used and a note says so.
Estimate estimate_plan(const std::vector<Job>& jobs, std::int64_t layers,
                       const std::vector<PipelineStatus>& measured,
                       const std::vector<std::string>& measured_paths,
                       const std::string& gpu_identity);

// A table with the total, for the terminal.
std::string format_estimate(const Estimate& estimate, const std::string& plan_name);

}  // namespace slidesparse::pipeline
