// A pipeline plan: which models, dtypes, patterns and M lists, and which tasks to run.
// Read from a small TOML file (plans/*.toml); every error names the file and line.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/pipeline/plan_gemms.hpp"

namespace slidesparse::pipeline {

// The tasks of the seed reports, in the order a pipeline runs them.
enum class Task : std::uint8_t {
  Prepare,     // make the models, convert them to each dtype × pattern, verify
  TuneCoarse,  // dense (cuBLASLt) search, with the native 2:4 control
  TuneFine,    // sparse (cuSPARSELt) search per pattern
  Check,       // a quick end-to-end run of every backend
  Prefill,     // end-to-end prefill throughput
  Decode,      // end-to-end decode throughput
  KernelHigh,  // kernel benchmark, high sparsity (2_4 … 2_10)
  KernelLow,   // kernel benchmark, low sparsity (2_12 … 2_inf)
};

const std::vector<Task>& pipeline_tasks();  // every task, in pipeline order
std::string task_name(Task task);           // "prepare", "tune-coarse", …, "kernel-low"
std::string task_title(Task task);          // "Prepare models", "Coarse tuning (dense)", …
// Inverse of task_name; throws InvalidArgument listing the names.
Task parse_task(const std::string& name);

struct PlanModel {
  std::string name;        // preset name, or the checkpoint folder's base name
  std::string checkpoint;  // absolute path of a Hugging Face checkpoint folder; "" for a preset
  bool is_preset() const { return checkpoint.empty(); }
};

// Token counts per stage (DESIGN.md §8: prefill M = tokens per forward, decode M = sequences).
struct MLists {
  std::vector<std::int64_t> tune, check, prefill, decode, kernel;
};

struct Plan {
  std::string name;
  std::string source;       // the file it was read from
  std::vector<Task> tasks;  // in pipeline order, whatever order the file lists them in
  std::vector<PlanModel> models;
  std::vector<Precision> dtypes;
  std::vector<Pattern> patterns;  // sparse backends; the dense baseline always runs beside them
  std::vector<Pattern> kernel_high, kernel_low;
  // The GEMMs to run (plan_gemms.hpp names them): each end-to-end case runs once per sparse
  // backend (per pattern) or dense GEMM, for the dtypes it takes; with dense_fallback every
  // sparse case also runs with --dense-fallback. The defaults are the commands' own.
  std::vector<std::string> sparse_backends = {default_gemm(GemmSide::Sparse)};
  std::vector<std::string> dense_gemms = {default_gemm(GemmSide::Dense)};
  bool dense_fallback = false;
  std::int64_t layers = 0;  // decoder layers of the made models; 0 = the preset's full depth
  MLists m;
  std::map<Task, double> timeout_s;  // per child process

  bool has(Task task) const;
  double timeout_for(Task task) const;
  // Whether a kernel or tuning job of `dtype` measures the CUTLASS GEMMs too (--sparse-backend
  // both): where an end-to-end case runs one, or an auto choice may pick one.
  bool measures_cutlass(Precision dtype) const;
};

// The preset names a plan may use (DESIGN.md §8).
const std::vector<std::string>& known_presets();

// Parses TOML `text` read from `source`; relative checkpoint folders are resolved
// against `base_dir`. Throws InvalidArgument "<source>:<line>: <what is wrong>".
Plan parse_plan(const std::string& text, const std::string& source, const std::string& base_dir);
// Reads and parses a plan file (IoError when it cannot be read).
Plan load_plan(const std::string& path);

// What the plan asks for, canonical (no comments, no layout), without the timeouts.
nlohmann::ordered_json plan_to_json(const Plan& plan);
// A short digest of plan_to_json: two plans with the same digest run the same cases,
// so a results folder of one can be resumed by the other. The GEMM keys stay out of it while
// they hold their defaults, so plans from before those keys keep their digest.
std::string plan_digest(const Plan& plan);

}  // namespace slidesparse::pipeline
