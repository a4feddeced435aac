#include "run_results.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/csv.hpp"

namespace slidesparse::pipeline {

namespace fs = std::filesystem;

namespace {

const std::set<std::string> kResultFileNames = {"kernel_bench.csv", "e2e_prefill.csv",
                                                "e2e_decode.csv"};

std::int64_t integer(const CsvFile& csv, std::size_t row, const std::string& column) {
  const std::string& text = csv.at(row, column);
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw FormatError(csv.path() + ": row " + std::to_string(row + 2) + ": " + column + " '" + text +
                    "' is not an integer");
}

// Rows of one job, keyed by what they measure, so a rerun of a case alone replaces the
// row the crashed job left for it.
using EndToEndKey = std::tuple<std::string, std::int64_t>;
using KernelKey = std::tuple<std::string, std::int64_t, std::string>;

void read_end_to_end(const CsvFile& csv, const JobRecord& job,
                     std::map<EndToEndKey, EndToEndRow>& rows) {
  for (std::size_t r = 0; r < csv.rows(); ++r) {
    EndToEndRow row;
    row.model = job.model;
    row.dtype = job.dtype;
    row.pattern = csv.at(r, "pattern");
    row.m = integer(csv, r, "M");
    row.tokens_per_s = csv.number(r, "tokens_per_s");
    row.requests_per_s = csv.number(r, "requests_per_s");
    row.gemm_ms = csv.number(r, "gemm_ms");
    row.attention_ms = csv.number(r, "attention_ms");
    row.other_ms = csv.number(r, "other_ms");
    row.status = csv.at(r, "status");
    row.error = csv.at(r, "error");
    rows[{row.pattern, row.m}] = row;
  }
}

void read_kernel(const CsvFile& csv, const JobRecord& job, std::map<KernelKey, KernelRow>& rows) {
  for (std::size_t r = 0; r < csv.rows(); ++r) {
    KernelRow row;
    row.model = job.model;
    row.dtype = job.dtype;
    row.layer = csv.at(r, "layer");
    row.pattern = csv.at(r, "pattern");
    row.m = integer(csv, r, "M");
    row.dense_gemm_us = csv.number(r, "dense_gemm_us");
    row.sparse_gemm_us = csv.number(r, "sparse_gemm_us");
    row.dense_layer_us = csv.number(r, "dense_layer_us");
    row.sparse_layer_us = csv.number(r, "sparse_layer_us");
    row.quant_lift_gbps = csv.number(r, "quant_lift_GBps");
    row.quant_lift_vs_copy = csv.number(r, "quant_lift_vs_copy");
    row.status = csv.at(r, "status");
    row.error = csv.at(r, "error");
    rows[{row.pattern, row.m, row.layer}] = row;
  }
}

}  // namespace

RunResults read_run_results(const PipelineStatus& status, const std::string& results_dir) {
  RunResults out;
  const std::vector<std::string> folders = status.hardware.folders();
  std::set<std::string> listed;  // every result file the status knows, read here or not
  for (const JobRecord& job : status.jobs) {
    if (!job.result_file.empty()) listed.insert(job.result_file);
    for (const JobRecord& part : job.parts)
      if (!part.result_file.empty()) listed.insert(part.result_file);
  }
  for (const JobRecord& job : status.jobs) {
    if (job.task != "prefill" && job.task != "decode" && job.task != "kernel-high" &&
        job.task != "kernel-low")
      continue;
    std::map<EndToEndKey, EndToEndRow> e2e;
    std::map<KernelKey, KernelRow> kernel;
    std::vector<const JobRecord*> sources = {&job};
    for (const JobRecord& part : job.parts) sources.push_back(&part);  // parts last: they win
    for (const JobRecord* source : sources) {
      if (source->result_file.empty()) continue;
      const fs::path file(source->result_file);
      const std::string folder = file.parent_path().filename().string();
      if (std::find(folders.begin(), folders.end(), folder) == folders.end())
        continue;  // listed below
      const std::string path = results_dir + "/" + source->result_file;
      std::error_code ec;
      if (!fs::exists(path, ec)) continue;
      try {
        const CsvFile csv = CsvFile::read(path);
        if (job.task == "prefill" || job.task == "decode")
          read_end_to_end(csv, job, e2e);
        else
          read_kernel(csv, job, kernel);
        out.files.push_back(source->result_file);
      } catch (const Error& e) {
        out.problems.push_back(e.what());
      }
    }
    for (auto& [key, row] : e2e) (job.task == "prefill" ? out.prefill : out.decode).push_back(row);
    for (auto& [key, row] : kernel) out.kernel.push_back(row);
  }

  // Every other result file below the folder, and why it is not in this report.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(results_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_regular_file(ec) || !kResultFileNames.count(it->path().filename().string()))
      continue;
    const std::string relative = fs::relative(it->path(), results_dir).string();
    const std::string folder = it->path().parent_path().filename().string();
    const bool this_gpu = std::find(folders.begin(), folders.end(), folder) != folders.end();
    if (listed.count(relative) && this_gpu) continue;
    std::string why;
    if (!this_gpu)
      why = "from another GPU or setup (folder " + folder + "; this run's GPU is " +
            status.hardware.identity() + ")";
    else if (relative.find(".attempt") != std::string::npos)
      why = "output of an earlier attempt of a job that was run again";
    else
      why = "not listed in status.json";
    out.ignored.emplace_back(relative, why);
  }
  std::sort(out.ignored.begin(), out.ignored.end());
  return out;
}

}  // namespace slidesparse::pipeline
