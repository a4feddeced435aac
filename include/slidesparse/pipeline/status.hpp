// The status file of a results folder (status.json): the plan and GPU it belongs to, each
// run, and every job and case with its status. Written atomically after every job, so an
// interrupted or crashed pipeline leaves a valid file that --resume continues from.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slidesparse/pipeline/hardware.hpp"

namespace slidesparse::pipeline {

// Status values: "pending" (not run yet), "passed", "failed", "skipped", "interrupted".
struct CellRecord {
  std::string pattern;
  std::int64_t m = 0;
  std::string status = "pending";
  std::string error_class, message;
};

struct JobRecord {
  std::string id, task, kind, model, dtype, backend;
  std::string status = "pending";
  std::string error_class, message;
  bool skipped_by_child = false;  // the command itself said so (e.g. "no CUDA device")
  double seconds = 0;             // the child's wall time (0 when not run)
  int attempts = 0;               // children started for it, over all runs
  int run = 0;                    // the run (1-based) that decided its status
  std::vector<std::string> argv;
  std::string out_dir, result_file;          // relative to the results folder
  std::string log;                           // relative path of the log holding its output
  std::int64_t log_line = 0;                 // where its section starts in that log
  std::vector<std::string> earlier_outputs;  // outputs of failed attempts, moved aside
  std::vector<CellRecord> cells;
  std::vector<JobRecord> parts;  // single-cell reruns after a crash of this job

  bool done() const { return status == "passed" || status == "skipped"; }
};

struct RunRecord {
  std::string started, finished;  // ISO 8601, UTC
  bool resumed = false;
  bool interrupted = false;
  std::string log;           // relative path
  double seconds = 0;        // wall time of the run
  double child_seconds = 0;  // time spent inside children: the rest is pipeline overhead
};

struct PipelineStatus {
  static constexpr const char* kFormat = "slidesparse-pipeline-status/1";
  static constexpr const char* kFileName = "status.json";

  std::string plan_name, plan_source, plan_digest;
  nlohmann::ordered_json plan;  // plan_to_json
  std::string executable;
  HardwareInfo hardware;
  std::vector<RunRecord> runs;
  std::vector<JobRecord> jobs;  // in pipeline order

  JobRecord* find(const std::string& id);
  const JobRecord* find(const std::string& id) const;

  // Throws FormatError naming the file when it is not a status file of this format.
  static PipelineStatus load(const std::string& path);
  // Atomic: a reader (or a crash) sees the old file or the new one, never half of one.
  void save(const std::string& path) const;
  nlohmann::ordered_json to_json() const;
  static PipelineStatus from_json(const nlohmann::ordered_json& j, const std::string& path);
};

}  // namespace slidesparse::pipeline
