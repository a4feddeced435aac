#include "run_results.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <tuple>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pipeline/plan_gemms.hpp"
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

// A column of newer files only: NaN (not measured) where the file lacks it.
double optional_number(const CsvFile& csv, std::size_t row, const std::string& column) {
  return csv.has_column(column) ? csv.number(row, column) : NAN;
}

// Rows keyed by what they measure (model, dtype, pattern, M[, layer]), so a rerun of a case
// replaces the row an earlier file left for it.
using EndToEndKey = std::tuple<std::string, std::string, std::string, std::int64_t>;
using KernelKey = std::tuple<std::string, std::string, std::string, std::int64_t, std::string>;

// A converted model's folder is named <model>-<pattern>-<dtype> (the pipeline's
// models/ folder): its rows belong to <model>, beside the dense rows of the original.
std::string base_model(const std::string& model, const std::string& pattern,
                       const std::string& dtype) {
  const std::string suffix = "-" + pattern + "-" + dtype;
  if (model.size() > suffix.size() &&
      model.compare(model.size() - suffix.size(), suffix.size(), suffix) == 0)
    return model.substr(0, model.size() - suffix.size());
  return model;
}

bool is_dense_backend(const std::string& backend) {
  return backend == "dense" || backend.rfind("dense-", 0) == 0;
}

bool faster_passed(const EndToEndRow& a, const EndToEndRow& b) {
  if (a.status != "passed") return false;
  return b.status != "passed" || a.tokens_per_s > b.tokens_per_s;
}

// Model and dtype come from the job in a pipeline (a converted model's CSV names the
// converted folder), from the CSV's own columns in a folder of direct runs (job == nullptr).
// Returns how many rows replaced one already there.
int read_end_to_end(const CsvFile& csv, const std::string& file, const JobRecord* job,
                    std::map<EndToEndKey, EndToEndRow>& rows) {
  int replaced = 0;
  for (std::size_t r = 0; r < csv.rows(); ++r) {
    EndToEndRow row;
    row.file = file;
    row.pattern = csv.at(r, "pattern");
    row.backend = csv.has_column("backend") ? csv.at(r, "backend") : "";
    if (job) {
      row.model = job->model;
      row.dtype = job->dtype;
    } else {
      row.dtype = csv.at(r, "dtype");
      row.model = is_dense_backend(row.backend)
                      ? csv.at(r, "model")
                      : base_model(csv.at(r, "model"), row.pattern, row.dtype);
    }
    row.pattern += e2e_series(row.backend);
    row.m = integer(csv, r, "M");
    row.tokens_per_s = csv.number(r, "tokens_per_s");
    row.requests_per_s = csv.number(r, "requests_per_s");
    row.gemm_ms = csv.number(r, "gemm_ms");
    row.attention_ms = csv.number(r, "attention_ms");
    row.other_ms = csv.number(r, "other_ms");
    row.status = csv.at(r, "status");
    row.error = csv.at(r, "error");
    const EndToEndKey key{row.model, row.dtype, row.pattern, row.m};
    const auto it = rows.find(key);
    if (it != rows.end() && is_dense_backend(row.backend) && it->second.backend != row.backend) {
      // Another dense GEMM for the same case: the baseline is the best dense measured.
      if (faster_passed(row, it->second)) it->second = row;
      continue;
    }
    replaced += it != rows.end() ? 1 : 0;
    rows[key] = row;
  }
  return replaced;
}

int read_kernel(const CsvFile& csv, const std::string& file, const JobRecord* job,
                std::map<KernelKey, KernelRow>& rows) {
  int replaced = 0;
  for (std::size_t r = 0; r < csv.rows(); ++r) {
    KernelRow row;
    row.file = file;
    row.model = job ? job->model : csv.at(r, "model");
    row.dtype = job ? job->dtype : csv.at(r, "dtype");
    row.layer = csv.at(r, "layer");
    row.pattern = csv.at(r, "pattern");
    row.m = integer(csv, r, "M");
    row.dense_gemm_us = csv.number(r, "dense_gemm_us");
    row.sparse_gemm_us = csv.number(r, "sparse_gemm_us");
    row.dense_layer_us = csv.number(r, "dense_layer_us");
    row.sparse_layer_us = csv.number(r, "sparse_layer_us");
    row.quant_lift_gbps = csv.number(r, "quant_lift_GBps");
    row.quant_lift_vs_copy = csv.number(r, "quant_lift_vs_copy");
    row.copy_gbps = csv.number(r, "copy_GBps");
    row.dense_fused_layer_us = optional_number(csv, r, "dense_fused_layer_us");
    row.cutlass_columns = csv.has_column("cutlass_gemm_epilogue_us");
    row.cutlass_gemm_us = optional_number(csv, r, "cutlass_gemm_epilogue_us");
    row.cutlass_dense_us = optional_number(csv, r, "cutlass_dense_epilogue_us");
    row.cutlass_layer_us = optional_number(csv, r, "cutlass_layer_us");
    row.cutlass_lift_layer_us = optional_number(csv, r, "cutlass_lift_layer_us");
    // "cutlass" is backend_name(GemmBackendKind::CutlassSparse) (the GEMM room, which this CPU
    // room does not link). Files written before the column measured cuSPARSELt (the only
    // backend then, and the default since).
    if (csv.has_column("sparse_backend") && csv.at(r, "sparse_backend") == "cutlass")
      row.pattern += kCutlassSeries;
    row.status = csv.at(r, "status");
    row.error = csv.at(r, "error");
    const KernelKey key{row.model, row.dtype, row.pattern, row.m, row.layer};
    replaced += rows.count(key) ? 1 : 0;
    rows[key] = row;
  }
  return replaced;
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
          read_end_to_end(csv, source->result_file, &job, e2e);
        else
          read_kernel(csv, source->result_file, &job, kernel);
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

double KernelRow::best_dense_layer_us() const {
  if (std::isnan(dense_fused_layer_us)) return dense_layer_us;
  if (std::isnan(dense_layer_us)) return dense_fused_layer_us;
  return std::min(dense_layer_us, dense_fused_layer_us);
}

std::string GpuFolder::describe() const {
  return gpu + ", cc " + cc + ", CUDA " + cuda + ", " + arch;
}

std::optional<GpuFolder> parse_gpu_folder(const std::string& name) {
  // cc and CUDA minor versions are one digit each (tools/gpu/gpu_common.cpp).
  static const std::regex folder(
      R"(^([A-Za-z0-9]+)_cc([0-9]+)([0-9])_([A-Z0-9]+)_cu([0-9]+)([0-9])_(\S+)$)");
  std::smatch m;
  if (!std::regex_match(name, m, folder)) return std::nullopt;
  GpuFolder f;
  try {
    f.dtype = precision_name(parse_precision(m[4]));
  } catch (const Error&) {
    return std::nullopt;
  }
  f.gpu = m[1];
  f.cc = std::string(m[2]) + "." + std::string(m[3]);
  f.cuda = std::string(m[5]) + "." + std::string(m[6]);
  f.arch = m[7];
  f.setup = f.gpu + "_cc" + std::string(m[2]) + std::string(m[3]) + "_cu" + std::string(m[5]) +
            std::string(m[6]) + "_" + f.arch;
  return f;
}

BenchFolderResults read_bench_folder(const std::string& results_dir, const std::string& setup) {
  struct Found {
    std::string relative, name;
    std::optional<GpuFolder> folder;
  };
  BenchFolderResults out;
  std::vector<Found> found;
  std::map<std::string, int> files_of;  // setup → result files
  std::error_code ec;
  const fs::path plots = fs::path(results_dir) / "plots";  // the report's own output
  for (fs::recursive_directory_iterator it(results_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path() == plots) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec) || it->path().extension() != ".csv") continue;
    const std::string relative = fs::relative(it->path(), results_dir).string();
    const std::string name = it->path().filename().string();
    if (!kResultFileNames.count(name)) {
      out.results.ignored.emplace_back(
          relative,
          "not a result file of `slidesparse bench kernel` or `bench e2e` (kernel_bench.csv, "
          "e2e_prefill.csv, e2e_decode.csv)");
      continue;
    }
    Found f{relative, name, parse_gpu_folder(it->path().parent_path().filename().string())};
    if (f.folder) ++files_of[f.folder->setup];
    found.push_back(f);
  }
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.relative < b.relative; });

  if (!setup.empty()) {
    const std::optional<GpuFolder> named = parse_gpu_folder(setup);  // a whole folder name too
    out.setup = named ? named->setup : setup;
    if (!files_of.count(out.setup)) {
      std::string have;
      for (const auto& [s, n] : files_of) have += (have.empty() ? "" : ", ") + s;
      throw InvalidArgument("--gpu " + setup + ": " + results_dir + " holds no results of it (" +
                            (have.empty() ? "no CSV is in a GPU folder" : "it holds " + have) +
                            ")");
    }
  } else {
    int most = 0;
    for (const auto& [s, n] : files_of)  // by name: the first of equal counts wins
      if (n > most) {
        most = n;
        out.setup = s;
      }
  }
  for (const auto& [s, n] : files_of)
    if (s != out.setup) out.other_setups[s] = n;

  std::map<EndToEndKey, EndToEndRow> prefill, decode;
  std::map<KernelKey, KernelRow> kernel;
  for (const Found& f : found) {
    if (f.folder && f.folder->setup != out.setup) {
      out.results.ignored.emplace_back(f.relative,
                                       "from another GPU or setup (folder " +
                                           fs::path(f.relative).parent_path().filename().string() +
                                           "; this report covers " + out.setup + ")");
      continue;
    }
    if (!f.folder && files_of.size() > 1) {
      out.results.ignored.emplace_back(f.relative,
                                       "not in a GPU folder, and this folder holds results of " +
                                           std::to_string(files_of.size()) +
                                           " GPUs: which one measured it is not recorded");
      continue;
    }
    try {
      const CsvFile csv = CsvFile::read(results_dir + "/" + f.relative);
      int replaced = 0;
      if (f.name == "kernel_bench.csv")
        replaced = read_kernel(csv, f.relative, nullptr, kernel);
      else
        replaced = read_end_to_end(csv, f.relative, nullptr,
                                   f.name == "e2e_prefill.csv" ? prefill : decode);
      out.results.files.push_back(f.relative);
      if (replaced > 0)
        out.replaced.push_back("`" + f.relative + "` replaces " + std::to_string(replaced) +
                               " row" + (replaced == 1 ? "" : "s") +
                               " of files read before it (same model, dtype, pattern, M" +
                               (f.name == "kernel_bench.csv" ? ", layer" : "") + ")");
      if (f.folder) {
        if (!out.gpu) out.gpu = f.folder;
        const std::string folder = fs::path(f.relative).parent_path().filename().string();
        if (std::find(out.folders.begin(), out.folders.end(), folder) == out.folders.end())
          out.folders.push_back(folder);
      } else {
        out.unplaced.push_back(f.relative);
      }
    } catch (const Error& e) {
      out.results.problems.push_back(e.what());
    }
  }
  for (auto& [key, row] : prefill) out.results.prefill.push_back(row);
  for (auto& [key, row] : decode) out.results.decode.push_back(row);
  for (auto& [key, row] : kernel) out.results.kernel.push_back(row);
  std::sort(out.folders.begin(), out.folders.end());
  std::sort(out.results.ignored.begin(), out.results.ignored.end());
  return out;
}

}  // namespace slidesparse::pipeline
