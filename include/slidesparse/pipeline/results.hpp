// Reading a job's result CSV back as per-case outcomes. Both the kernel benchmark
// (kernel_bench.csv) and the end-to-end benchmark (e2e_*.csv, docs/results-format.md)
// have the columns pattern, M, status, error; a kernel case has a row per layer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "slidesparse/pipeline/csv.hpp"

namespace slidesparse::pipeline {

struct CaseResult {
  std::string status;  // "passed", "failed", "skipped"
  std::string error;   // the first failed (or skipped) row's error
};

// Folds one more row of a case into its result (the rule below).
void merge_case_row(CaseResult& result, const std::string& status, const std::string& error);

// Keyed by (pattern, M); an end-to-end row's pattern carries its backend's series
// (e2e_series: "2_8+cutlass"), as the pipeline's cases do. A case with several rows (one per
// layer) failed if any row failed, passed if the rest passed, and is skipped only if every row
// was.
std::map<std::pair<std::string, std::int64_t>, CaseResult> case_results(const CsvFile& csv);

}  // namespace slidesparse::pipeline
