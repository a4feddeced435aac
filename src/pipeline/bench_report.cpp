// The report of a folder that `slidesparse bench kernel|e2e --out` wrote directly: no
// status.json, so no task table or pass matrices; the cases, their failures and the hardware
// notes come from the CSVs, their GPU folders, a tuning database and an `info` output there.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "files.hpp"
#include "report_parts.hpp"
#include "run_results.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/results.hpp"
#include "slidesparse/pipeline/verdict.hpp"
#include "slidesparse/tuning_db.hpp"

namespace slidesparse::pipeline::report_parts {

namespace fs = std::filesystem;

namespace {

// Where `slidesparse info`'s output is kept: the pipeline's hardware.txt, and the
// environment.txt of scripts/gpu_check.sh.
const char* const kInfoFiles[] = {"hardware.txt", "environment.txt"};
const char* const kDtypeOrder[] = {"int8", "fp8", "bf16", "fp16"};

int dtype_rank(const std::string& dtype) {
  for (int i = 0; i < 4; ++i)
    if (dtype == kDtypeOrder[i]) return i;
  return 4;
}

// 13000 → "13.0" (the version numbers CUDA reports: major·1000 + minor·10).
std::string cuda_version_text(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

std::string alnum(const std::string& s) {
  std::string out;
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c))) out += c;
  return out;
}

// A tuning database's key describes the GPU of `folder` when compute capability and CUDA
// runtime match and the folder's short GPU name is part of the key's full name.
bool key_matches(const TuningKey& key, const GpuFolder& folder) {
  return std::to_string(key.cc_major) + "." + std::to_string(key.cc_minor) == folder.cc &&
         cuda_version_text(key.cuda_runtime) == folder.cuda &&
         alnum(key.gpu_name).find(folder.gpu) != std::string::npos;
}

struct HardwareNotes {
  std::optional<HardwareInfo> info;  // nothing when no GPU folder names the GPU
  std::vector<std::pair<std::string, std::string>> extra;  // rows after the libraries
  std::vector<std::string> sources;  // where the rows came from, for the note under the table
  std::vector<std::string> files;    // files read for them, for the result file list
  std::vector<std::string> problems;
};

HardwareNotes hardware_notes(const std::string& root, const BenchFolderResults& b) {
  HardwareNotes notes;
  if (!b.gpu) return notes;
  HardwareInfo h;
  h.gpu = true;
  std::error_code ec;
  for (const char* name : kInfoFiles) {
    if (!fs::exists(root + "/" + name, ec)) continue;
    try {
      HardwareInfo info = parse_info_output(read_file(root + "/" + name));
      const std::vector<std::string> of_info = info.folders();
      const bool same_gpu = std::all_of(b.folders.begin(), b.folders.end(), [&](const auto& f) {
        return std::find(of_info.begin(), of_info.end(), f) != of_info.end();
      });
      if (!same_gpu) continue;
      h = info;
      notes.sources.push_back("`" + std::string(name) +
                              "` (`slidesparse info` output, its result folders are these)");
      notes.files.push_back(std::string("`slidesparse info` output: `") + name + "`");
      break;
    } catch (const Error&) {
      // Not an info output (or not only one): the notes come from the other sources.
    }
  }
  // A tuning database records the GPU and library versions its timings were taken with.
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->path().filename() != "tuning.json") continue;
    const std::string relative = fs::relative(it->path(), root).string();
    try {
      std::ostringstream stale;  // loaded for its key only: no current GPU to compare with
      const TuningKey key = TuningDb::load(it->path().string(), TuningKey{}, stale).key();
      if (!key_matches(key, *b.gpu)) {
        notes.files.push_back("tuning database `" + relative + "`: made on " + key.describe() +
                              ", not this GPU: left out of the hardware notes");
        continue;
      }
      notes.files.push_back("tuning database `" + relative + "`: made on " + key.describe());
      if (h.name.empty()) h.name = key.gpu_name;
      if (h.driver.empty())
        h.driver = std::to_string(key.driver) + " (CUDA " + cuda_version_text(key.driver) + ")";
      if (h.cublaslt.empty()) h.cublaslt = std::to_string(key.cublaslt);
      if (h.cusparselt.empty()) h.cusparselt = std::to_string(key.cusparselt);
      notes.sources.push_back("the key of `" + relative +
                              "` (GPU name, driver, library versions the tuning ran with)");
    } catch (const Error& e) {
      notes.problems.push_back(e.what());
    }
  }
  if (h.name.empty()) h.name = b.gpu->gpu;
  if (h.compute_capability.empty()) h.compute_capability = b.gpu->cc;
  if (h.cuda_runtime.empty()) h.cuda_runtime = b.gpu->cuda;
  notes.extra.push_back({"CPU architecture", b.gpu->arch});
  notes.sources.insert(notes.sources.begin(),
                       "the GPU folder names (GPU, compute capability, CUDA runtime, CPU "
                       "architecture, dtypes)");
  // Only the dtypes measured here, and those the GPU cannot run (a hardware note).
  std::map<std::string, PrecisionSupport> precisions;
  for (const std::string& folder : b.folders)
    if (const auto f = parse_gpu_folder(folder)) precisions[f->dtype] = {true, "", folder};
  for (const auto& [dtype, p] : h.precisions)
    if (!p.supported) precisions[dtype] = p;
  h.precisions = precisions;

  double low = INFINITY, high = 0;
  for (const KernelRow& r : b.results.kernel)
    if (r.copy_gbps > 0) {
      low = std::min(low, r.copy_gbps);
      high = std::max(high, r.copy_gbps);
    }
  if (high > 0) {
    notes.extra.push_back({"device-to-device copy",
                           (low == high ? fixed(low, 0) : fixed(low, 0) + "-" + fixed(high, 0)) +
                               " GB/s (read + write), measured by the kernel benchmark"});
    notes.sources.push_back("`copy_GBps` of kernel_bench.csv");
  }
  notes.info = h;
  return notes;
}

std::string case_text(const std::string& pattern, std::int64_t m) {
  return pattern + " M=" + std::to_string(m);
}

// Per dtype (INT8, FP8, BF16, FP16) and model (by name): the cases of one benchmark.
template <typename Row, typename AddCase>
std::vector<GridTable> grid_of(const std::vector<Row>& rows, AddCase add_case) {
  std::map<std::pair<int, std::string>, GridTable> by_key;
  for (const Row& r : rows) {
    GridTable& t = by_key[{dtype_rank(r.dtype), r.model + "\n" + r.dtype}];
    t.dtype = r.dtype;
    t.model = r.model;
    if (std::find(t.patterns.begin(), t.patterns.end(), r.pattern) == t.patterns.end())
      t.patterns.push_back(r.pattern);
    t.ms.insert(r.m);
    add_case(t, r);
  }
  std::vector<GridTable> out;
  for (auto& [key, t] : by_key) {
    sort_patterns(t.patterns);
    out.push_back(t);
  }
  return out;
}

CellRecord cell_of(const std::string& pattern, std::int64_t m, const std::string& status,
                   const std::string& error) {
  CellRecord c;
  c.pattern = pattern;
  c.m = m;
  c.status = status;
  c.message = error;
  if (status == "failed") c.error_class = classify_error(error);
  return c;
}

std::vector<GridTable> end_to_end_grid(const std::vector<EndToEndRow>& rows) {
  return grid_of(rows, [](GridTable& t, const EndToEndRow& r) {
    t.cases[{r.pattern, r.m}] = cell_of(r.pattern, r.m, r.status, r.error);
  });
}

// A kernel case is every layer of the model at one pattern and M (merge_case_row's rule).
std::vector<GridTable> kernel_grid(const std::vector<KernelRow>& rows) {
  return grid_of(rows, [](GridTable& t, const KernelRow& r) {
    const auto [it, fresh] =
        t.cases.try_emplace({r.pattern, r.m}, cell_of(r.pattern, r.m, r.status, r.error));
    if (fresh) return;
    CaseResult merged{it->second.status, it->second.message};
    merge_case_row(merged, r.status, r.error);
    it->second = cell_of(r.pattern, r.m, merged.status, merged.error);
  });
}

struct Tally {
  int passed = 0, failed = 0, skipped = 0;
  std::string text() const {
    std::string s = std::to_string(passed) + " passed, " + std::to_string(failed) + " failed";
    if (skipped > 0) s += ", " + std::to_string(skipped) + " skipped";
    return s;
  }
};

Tally tally(const std::vector<GridTable>& tables) {
  Tally t;
  for (const GridTable& g : tables)
    for (const auto& [key, c] : g.cases)
      (c.status == "passed" ? t.passed : c.status == "failed" ? t.failed : t.skipped) += 1;
  return t;
}

class BenchReportWriter {
 public:
  BenchReportWriter(const BenchFolderResults& bench, const HardwareNotes& hardware,
                    const PerformanceGrids& grids, std::string root, std::string shown)
      : b_(bench), h_(hardware), g_(grids), root_(std::move(root)), shown_(std::move(shown)) {}

  std::string render(const Plots& plots, const std::string& plot_note) {
    header();
    hardware();
    failures();
    write_performance(md_, b_.results, g_, plots, plot_note);
    locations();
    return md_.str();
  }

 private:
  void header() {
    md_ << "# SlideSparse benchmark report: `" << fs::path(root_).filename().string() << "`\n\n";
    md_ << "Generated by `slidesparse report` on " << utc_now() << " from the result CSVs in `"
        << shown_ << "`; every number below comes from those files.\n\n";
    md_ << "This folder came from direct benchmark runs (`slidesparse bench kernel` / `bench "
           "e2e`), not a pipeline: it has no status.json, so there is no task table and no pass "
           "matrix. A case is one row of an end-to-end CSV, or the rows of every layer of a "
           "kernel CSV at one pattern and M; a failed row is a failed case, with its error.\n\n";
    md_ << "- GPU: "
        << (b_.gpu ? b_.gpu->describe() + " (folders `" + join_folders() + "`)"
                   : std::string("not recorded (no result CSV is in a GPU folder)"))
        << "\n";
    const std::pair<const char*, const std::vector<GridTable>*> benchmarks[] = {
        {"prefill", &g_.prefill}, {"decode", &g_.decode}, {"kernel", &g_.kernel}};
    for (const auto& [name, tables] : benchmarks)
      if (!tables->empty()) md_ << "- " << name << " cases: " << tally(*tables).text() << "\n";
    if (!b_.unplaced.empty() && b_.gpu) {
      md_ << "- Not in a GPU folder, taken as measured on this GPU (the only one whose results "
             "are here): ";
      for (std::size_t i = 0; i < b_.unplaced.size(); ++i)
        md_ << (i ? ", " : "") << "`" << b_.unplaced[i] << "`";
      md_ << "\n";
    }
    if (!b_.other_setups.empty()) {
      md_ << "- Results of other GPUs in this folder, left out (never mixed with these): ";
      bool first = true;
      for (const auto& [setup, files] : b_.other_setups) {
        md_ << (first ? "" : ", ") << setup << " (" << files << " file" << (files == 1 ? "" : "s")
            << ")";
        first = false;
      }
      md_ << ". `slidesparse report " << shown_ << " --gpu SETUP` reports one of them instead.\n";
    }
    md_ << "\n";
  }

  std::string join_folders() const {
    std::string s;
    for (const auto& f : b_.folders) s += (s.empty() ? "" : "`, `") + f;
    return s;
  }

  void hardware() {
    md_ << "## Hardware\n\n";
    if (!h_.info) {
      md_ << "Not recorded: no result CSV is in a GPU folder "
             "(`<GPU>_cc<XY>_<DTYPE>_cu<XYZ>_<arch>`), so which GPU measured these results is "
             "not known.\n\n";
      return;
    }
    write_hardware_table(md_, *h_.info, h_.extra);
    md_ << "From ";
    for (std::size_t i = 0; i < h_.sources.size(); ++i)
      md_ << (i == 0 ? "" : i + 1 == h_.sources.size() ? " and " : "; ") << h_.sources[i];
    md_ << ".\n\n";
  }

  void failures() {
    struct Failure {
      std::string benchmark, file, model_dtype, error_class, error;
      std::vector<std::string> cases;
    };
    std::vector<Failure> list;
    std::map<std::string, int> skip_reasons;
    const auto add = [&](const std::string& benchmark, const std::string& file,
                         const std::string& model, const std::string& dtype,
                         const std::string& what, const std::string& status,
                         const std::string& error) {
      if (status == "skipped") ++skip_reasons[error];
      if (status != "failed") return;
      const std::string model_dtype = model + " " + upper(dtype);
      auto it = std::find_if(list.begin(), list.end(), [&](const Failure& f) {
        return f.benchmark == benchmark && f.file == file && f.model_dtype == model_dtype &&
               f.error == error;
      });
      if (it == list.end()) {
        list.push_back({benchmark, file, model_dtype, classify_error(error), error, {}});
        it = list.end() - 1;
      }
      if (std::find(it->cases.begin(), it->cases.end(), what) == it->cases.end())
        it->cases.push_back(what);
    };
    for (const auto& r : b_.results.prefill)
      add("prefill", r.file, r.model, r.dtype, case_text(r.pattern, r.m), r.status, r.error);
    for (const auto& r : b_.results.decode)
      add("decode", r.file, r.model, r.dtype, case_text(r.pattern, r.m), r.status, r.error);
    for (const auto& r : b_.results.kernel)
      add("kernel", r.file, r.model, r.dtype, case_text(r.pattern, r.m) + " (" + r.layer + ")",
          r.status, r.error);
    md_ << "## Failures\n\n";
    if (list.empty()) {
      md_ << "None.\n\n";
    } else {
      md_ << table_head({"benchmark", "file", "model", "cases", "error class", "error"});
      for (const Failure& f : list) {
        std::string cases;
        for (const auto& c : f.cases) cases += (cases.empty() ? "" : ", ") + c;
        md_ << table_row({f.benchmark, "`" + f.file + "`", f.model_dtype, cell_text(cases),
                          cell_text(f.error_class), cell_text(f.error)});
      }
      md_ << "\nKernel cases are named per layer: a case fails when one of its layers does.\n\n";
    }
    if (!skip_reasons.empty()) {
      md_ << "Skipped rows:\n";
      for (const auto& [reason, count] : skip_reasons)
        md_ << "- " << count << (count == 1 ? " row: " : " rows: ") << cell_text(reason) << "\n";
      md_ << "\n";
    }
  }

  void locations() {
    md_ << "## Result files\n\nPaths relative to `" << shown_ << "`.\n\n";
    for (const auto& f : b_.results.files) md_ << "- `" << f << "`\n";
    for (const auto& f : h_.files) md_ << "- " << f << "\n";
    std::error_code ec;
    if (fs::exists(root_ + "/plots/plot_data.csv", ec))
      md_ << "- plotted data: `plots/plot_data.csv`\n";
    for (const auto& r : b_.replaced) md_ << "- " << r << "\n";
    for (const auto& p : b_.results.problems) md_ << "- **unreadable**: " << cell_text(p) << "\n";
    for (const auto& p : h_.problems) md_ << "- **unreadable**: " << cell_text(p) << "\n";
    if (!b_.results.ignored.empty()) {
      md_ << "\nNot in this report:\n\n";
      for (const auto& [file, why] : b_.results.ignored)
        md_ << "- `" << file << "`: " << why << "\n";
    }
    md_ << "\n";
  }

  const BenchFolderResults& b_;
  const HardwareNotes& h_;
  const PerformanceGrids& g_;
  std::string root_;   // absolute
  std::string shown_;  // as the command was given it
  std::ostringstream md_;
};

}  // namespace

ReportResult write_bench_report(const std::string& root, const std::string& as_given,
                                const ReportOptions& options) {
  std::string shown = as_given;
  while (shown.size() > 1 && shown.back() == '/') shown.pop_back();
  const BenchFolderResults bench = read_bench_folder(root, options.gpu);
  if (bench.results.files.empty() && bench.results.problems.empty())
    throw InvalidArgument(
        root +
        " holds no status.json and no benchmark result CSV (kernel_bench.csv, "
        "e2e_prefill.csv, e2e_decode.csv): nothing to report. A report is made from a "
        "pipeline's results folder, or from a folder that `slidesparse bench kernel` or "
        "`bench e2e` wrote into (--out)");
  const HardwareNotes hardware = hardware_notes(root, bench);
  const PerformanceGrids grids{end_to_end_grid(bench.results.prefill),
                               end_to_end_grid(bench.results.decode),
                               kernel_grid(bench.results.kernel)};
  ReportResult out;
  out.pipeline = false;
  const Plots plots = make_plots(bench.results, root, options, out.plot_note);
  for (const auto& p : plots) out.plots.push_back(p.first);
  out.ignored = bench.results.ignored;
  out.markdown_path = root + "/report.md";
  write_file_atomic(
      out.markdown_path,
      BenchReportWriter(bench, hardware, grids, root, shown).render(plots, out.plot_note));
  return out;
}

}  // namespace slidesparse::pipeline::report_parts
