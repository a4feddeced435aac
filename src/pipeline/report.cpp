#include "slidesparse/pipeline/report.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "files.hpp"
#include "run_results.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/pipeline/child_process.hpp"
#include "slidesparse/pipeline/plan.hpp"
#include "slidesparse/pipeline/status.hpp"

namespace slidesparse::pipeline {

namespace fs = std::filesystem;

namespace {

const double kPlotTimeoutS = 300;
const int kPlotMissingMatplotlib = 3;  // scripts/plot_results.py's exit code
const std::size_t kMessageChars = 300;

// ---- formatting --------------------------------------------------------------------

std::string fixed(double v, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

// 12500.4 → "12,500".
std::string thousands(double v) {
  std::string digits = fixed(std::round(v), 0);
  const bool negative = !digits.empty() && digits[0] == '-';
  if (negative) digits.erase(0, 1);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return (negative ? "-" : "") + digits;
}

std::string speedup_text(double x) { return fixed(x, 2) + "x"; }
std::string percent_text(double x) { return fixed(100.0 * x, 0) + "%"; }

std::string duration_text(double s) {
  if (s < 60) return fixed(s, 1) + " s";
  const long total = std::lround(s);
  char buffer[48];
  if (total < 3600)
    std::snprintf(buffer, sizeof buffer, "%ld min %02ld s", total / 60, total % 60);
  else
    std::snprintf(buffer, sizeof buffer, "%ld h %02ld min", total / 3600, (total % 3600) / 60);
  return buffer;
}

// A table cell: no pipes, no line breaks, bounded length.
std::string cell_text(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > kMessageChars) {
    s.resize(kMessageChars);
    s += " …";
  }
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Patterns in a fixed order: dense first, then by L (2_4, 2_6, …, 2_16, 2_inf).
int pattern_rank(const std::string& p) {
  if (p == "dense" || p.empty()) return -1;
  try {
    const Pattern pattern = Pattern::parse(p);
    return pattern.is_infinite() ? 1000 : pattern.length();
  } catch (const InvalidArgument&) {
    return 2000;
  }
}

std::string pattern_label(const std::string& p) {
  if (p == "dense") return "dense (cuBLASLt)";
  try {
    return Pattern::parse(p).display_name();
  } catch (const InvalidArgument&) {
    return p;
  }
}

double pattern_bound(const std::string& p) {
  if (p == "dense") return 1.0;
  try {
    return Pattern::parse(p).speedup_bound();
  } catch (const InvalidArgument&) {
    return NAN;
  }
}

void sort_patterns(std::vector<std::string>& patterns) {
  std::stable_sort(
      patterns.begin(), patterns.end(),
      [](const std::string& a, const std::string& b) { return pattern_rank(a) < pattern_rank(b); });
}

std::string table_row(const std::vector<std::string>& cells) {
  std::string row = "|";
  for (const auto& c : cells) row += " " + c + " |";
  return row + "\n";
}

std::string table_head(const std::vector<std::string>& cells) {
  std::string rule = "|";
  for (std::size_t i = 0; i < cells.size(); ++i) rule += "---|";
  return table_row(cells) + rule + "\n";
}

// ---- statuses ----------------------------------------------------------------------

struct Counts {
  int passed = 0, failed = 0, skipped = 0, not_run = 0;
  void add(const std::string& status) {
    if (status == "passed")
      ++passed;
    else if (status == "failed")
      ++failed;
    else if (status == "skipped")
      ++skipped;
    else
      ++not_run;
  }
  int total() const { return passed + failed + skipped + not_run; }
};

std::string status_mark(const Counts& c) {
  if (c.failed > 0) return "❌ failed";
  if (c.not_run > 0) return "⏸ not finished";
  if (c.passed == 0 && c.skipped > 0) return "⏭ skipped";
  return "✅ passed";
}

std::string matrix_cell(const Counts& c) {
  if (c.total() == 0) return "";
  const std::string tally = std::to_string(c.passed) + "/" + std::to_string(c.total());
  if (c.failed > 0) return "❌ " + tally;
  if (c.not_run > 0) return "⏸ " + tally;
  if (c.passed == 0) return "⏭ skipped";
  return "✅ " + tally + (c.skipped > 0 ? " (" + std::to_string(c.skipped) + " skipped)" : "");
}

double job_seconds(const JobRecord& job) {
  double s = job.seconds;
  for (const JobRecord& p : job.parts) s += p.seconds;
  return s;
}

std::vector<std::string> plan_tasks(const PipelineStatus& status) {
  std::vector<std::string> tasks;
  if (status.plan.contains("tasks"))
    for (const auto& t : status.plan["tasks"]) tasks.push_back(t.get<std::string>());
  return tasks;
}

std::string task_title_of(const std::string& name) {
  try {
    return task_title(parse_task(name));
  } catch (const InvalidArgument&) {
    return name;
  }
}

// ---- the report's sections ------------------------------------------------------------

class ReportWriter {
 public:
  ReportWriter(const PipelineStatus& status, const RunResults& results, std::string root)
      : s_(status), r_(results), root_(std::move(root)) {}

  std::string render(const std::vector<std::pair<std::string, std::string>>& plots,
                     const std::string& plot_note) {
    header();
    summary();
    hardware();
    matrices();
    failures();
    performance(plots, plot_note);
    locations();
    return md_.str();
  }

 private:
  void header() {
    md_ << "# SlideSparse pipeline report: plan `" << s_.plan_name << "`\n\n";
    md_ << "Generated by `slidesparse report` on " << utc_now() << " from `"
        << PipelineStatus::kFileName << "` and the result files in `" << root_
        << "`; every number below comes from those files.\n\n";
    md_ << "- Plan: `" << s_.plan_source << "` (digest `" << s_.plan_digest << "`)\n";
    md_ << "- GPU: " << s_.hardware.identity() << "\n";
    for (std::size_t i = 0; i < s_.runs.size(); ++i) {
      const RunRecord& run = s_.runs[i];
      md_ << "- Run " << i + 1 << (run.resumed ? " (resumed)" : "") << ": " << run.started << " → "
          << (run.finished.empty() ? "did not finish" : run.finished);
      if (!run.finished.empty()) {
        const double overhead = std::max(0.0, run.seconds - run.child_seconds);
        md_ << ", " << duration_text(run.seconds) << " (" << duration_text(run.child_seconds)
            << " in jobs; pipeline overhead " << duration_text(overhead);
        if (run.seconds > 0) md_ << " = " << fixed(100.0 * overhead / run.seconds, 1) << "%";
        md_ << ")";
      }
      if (run.interrupted) md_ << ", interrupted (resume with `--resume`)";
      md_ << "\n";
    }
    md_ << "\n";
  }

  void summary() {
    md_ << "## Tasks\n\n";
    md_ << table_head({"task", "status", "jobs passed", "failed", "skipped", "not run",
                       "cases passed", "failed", "skipped", "not run", "time"});
    Counts all_jobs, all_cases;
    double all_seconds = 0;
    for (const std::string& task : plan_tasks(s_)) {
      Counts jobs, cases;
      double seconds = 0;
      for (const JobRecord& job : s_.jobs) {
        if (job.task != task) continue;
        jobs.add(job.status);
        all_jobs.add(job.status);
        for (const CellRecord& c : job.cells) {
          cases.add(c.status);
          all_cases.add(c.status);
        }
        seconds += job_seconds(job);
      }
      all_seconds += seconds;
      md_ << table_row(
          {task_title_of(task) + " (`" + task + "`)", status_mark(jobs),
           std::to_string(jobs.passed), std::to_string(jobs.failed), std::to_string(jobs.skipped),
           std::to_string(jobs.not_run), std::to_string(cases.passed), std::to_string(cases.failed),
           std::to_string(cases.skipped), std::to_string(cases.not_run), duration_text(seconds)});
    }
    md_ << table_row({"**all**", status_mark(all_jobs), std::to_string(all_jobs.passed),
                      std::to_string(all_jobs.failed), std::to_string(all_jobs.skipped),
                      std::to_string(all_jobs.not_run), std::to_string(all_cases.passed),
                      std::to_string(all_cases.failed), std::to_string(all_cases.skipped),
                      std::to_string(all_cases.not_run), duration_text(all_seconds)});
    md_ << "\nA job is one run of the `slidesparse` command (its own process); a case is one model "
           "× "
           "dtype × backend × pattern × M.\n\n";
  }

  void hardware() {
    const HardwareInfo& h = s_.hardware;
    md_ << "## Hardware\n\n";
    if (!h.gpu) {
      md_ << "No GPU: " << h.no_gpu_reason << ". The GPU tasks were skipped.\n\n";
      return;
    }
    md_ << table_head({"", ""});
    const std::pair<const char*, std::string> rows[] = {
        {"GPU", h.name},
        {"compute capability", h.compute_capability},
        {"memory", h.memory},
        {"driver", h.driver},
        {"CUDA runtime", h.cuda_runtime},
        {"cuBLASLt", h.cublaslt},
        {"cuSPARSELt", h.cusparselt},
        {"2:4 sparse tensor cores", h.sparse_tensor_cores}};
    for (const auto& [label, value] : rows)
      if (!value.empty()) md_ << table_row({label, cell_text(value)});
    for (const char* p : {"int8", "fp8", "bf16", "fp16"}) {
      const auto it = h.precisions.find(p);
      if (it == h.precisions.end()) continue;
      md_ << table_row({upper(p), it->second.supported
                                      ? "supported, results in `" + it->second.folder + "/`"
                                      : "**not supported**: " + it->second.reason});
    }
    md_ << "\n";
  }

  struct Matrix {
    std::vector<std::string> rows, columns;
    std::map<std::pair<std::string, std::string>, Counts> cells;
    std::map<std::string, int> skip_reasons;
  };

  template <typename RowOf, typename ColumnOf>
  Matrix matrix(const std::set<std::string>& tasks, RowOf row_of, ColumnOf column_of) const {
    Matrix m;
    for (const JobRecord& job : s_.jobs) {
      if (!tasks.count(job.task)) continue;
      const std::string row = row_of(job);
      if (std::find(m.rows.begin(), m.rows.end(), row) == m.rows.end()) m.rows.push_back(row);
      for (const CellRecord& c : job.cells) {
        const std::string column = column_of(job, c);
        if (std::find(m.columns.begin(), m.columns.end(), column) == m.columns.end())
          m.columns.push_back(column);
        m.cells[{row, column}].add(c.status);
        if (c.status == "skipped") ++m.skip_reasons[c.message];
      }
    }
    return m;
  }

  void write_matrix(const std::string& title, const std::string& corner, const Matrix& m,
                    const std::string& note, std::string (*label)(const std::string&)) {
    if (m.rows.empty()) return;
    md_ << "### " << title << "\n\n";
    std::vector<std::string> head = {corner};
    for (const auto& column : m.columns) head.push_back(label ? label(column) : column);
    md_ << table_head(head);
    for (const std::string& row : m.rows) {
      std::vector<std::string> cells = {row};
      for (const std::string& column : m.columns) {
        const auto it = m.cells.find({row, column});
        cells.push_back(it == m.cells.end() ? "" : matrix_cell(it->second));
      }
      md_ << table_row(cells);
    }
    if (!note.empty()) md_ << "\n" << note << "\n";
    if (!m.skip_reasons.empty()) {
      md_ << "\nSkipped:\n";
      for (const auto& [reason, count] : m.skip_reasons)
        md_ << "- " << count << (count == 1 ? " case: " : " cases: ") << cell_text(reason) << "\n";
    }
    md_ << "\n";
  }

  static std::string model_dtype(const JobRecord& job) {
    return job.model + " " + upper(job.dtype);
  }

  void matrices() {
    md_ << "## Pass matrices\n\nEach cell: cases passed / cases (one per M), per model × dtype × "
           "backend.\n\n";
    write_matrix(task_title(Task::Prepare), "model",
                 matrix(
                     {"prepare"}, [](const JobRecord& j) { return j.model; },
                     [](const JobRecord& j, const CellRecord& c) {
                       return j.kind == "make-model" ? std::string("make-model")
                                                     : upper(j.dtype) + " " + c.pattern;
                     }),
                 "Per dtype and pattern: convert, then verify (two cases).", nullptr);
    const auto by_pattern = [](const JobRecord&, const CellRecord& c) { return c.pattern; };
    const std::pair<std::set<std::string>, std::string> groups[] = {
        {{"tune-coarse", "tune-fine"}, "Tuning (dense = coarse, patterns = fine)"},
        {{"check"}, task_title(Task::Check)},
        {{"prefill"}, task_title(Task::Prefill)},
        {{"decode"}, task_title(Task::Decode)},
        {{"kernel-high", "kernel-low"}, "Kernel benchmarks (each case: every layer of the model)"}};
    for (const auto& [tasks, title] : groups) {
      Matrix m = matrix(tasks, model_dtype, by_pattern);
      sort_patterns(m.columns);
      write_matrix(title, "model", m, "", pattern_label);
    }
  }

  void failures() {
    struct Failure {
      std::string job, error_class, message, log;
      std::vector<std::string> cases;
    };
    std::vector<Failure> list;
    const auto log_of = [](const JobRecord& r) {
      return r.log.empty() ? std::string() : "`" + r.log + ":" + std::to_string(r.log_line) + "`";
    };
    for (const JobRecord& job : s_.jobs) {
      bool any = false;
      for (const CellRecord& c : job.cells) {
        if (c.status != "failed") continue;
        any = true;
        std::string log = log_of(job);
        for (const JobRecord& part : job.parts)
          for (const CellRecord& pc : part.cells)
            if (pc.pattern == c.pattern && pc.m == c.m) log = log_of(part) + " (rerun apart)";
        const std::string what = c.pattern.empty() ? std::string("—")
                                 : c.m > 0         ? c.pattern + " M=" + std::to_string(c.m)
                                                   : c.pattern;
        auto it = std::find_if(list.begin(), list.end(), [&](const Failure& f) {
          return f.job == job.id && f.error_class == c.error_class && f.message == c.message;
        });
        if (it == list.end()) {
          list.push_back({job.id, c.error_class, c.message, log, {}});
          it = list.end() - 1;
        }
        it->cases.push_back(what);
      }
      if (!any && job.status == "failed")
        list.push_back({job.id, job.error_class, job.message, log_of(job), {"(the job)"}});
    }
    md_ << "## Failures\n\n";
    if (list.empty()) {
      md_ << "None.\n\n";
      return;
    }
    md_ << table_head({"job", "cases", "error class", "error", "log"});
    for (const Failure& f : list) {
      std::string cases;
      for (const auto& c : f.cases) cases += (cases.empty() ? "" : ", ") + c;
      md_ << table_row({"`" + f.job + "`", cell_text(cases), cell_text(f.error_class),
                        cell_text(f.message), f.log});
    }
    md_ << "\n";
  }

  // The planned grid of one benchmark: per dtype and model (in plan order), its patterns
  // and M, and each case's status, so a case without a result row still shows how it ended.
  struct GridTable {
    std::string dtype, model;
    std::vector<std::string> patterns;
    std::set<std::int64_t> ms;
    std::map<std::pair<std::string, std::int64_t>, const CellRecord*> cases;
  };

  std::vector<GridTable> grid(const std::set<std::string>& tasks) const {
    std::vector<GridTable> tables;
    for (const std::string& dtype : plan_list("dtypes"))
      for (const std::string& model : plan_models()) {
        GridTable t{dtype, model, {}, {}, {}};
        for (const JobRecord& job : s_.jobs) {
          if (!tasks.count(job.task) || job.dtype != dtype || job.model != model) continue;
          for (const CellRecord& c : job.cells) {
            if (std::find(t.patterns.begin(), t.patterns.end(), c.pattern) == t.patterns.end())
              t.patterns.push_back(c.pattern);
            t.ms.insert(c.m);
            t.cases[{c.pattern, c.m}] = &c;
          }
        }
        sort_patterns(t.patterns);
        if (!t.cases.empty()) tables.push_back(t);
      }
    return tables;
  }

  std::vector<std::string> plan_list(const char* key) const {
    std::vector<std::string> out;
    if (s_.plan.contains(key))
      for (const auto& v : s_.plan[key]) out.push_back(v.get<std::string>());
    return out;
  }

  std::vector<std::string> plan_models() const {
    std::vector<std::string> out;
    if (s_.plan.contains("models"))
      for (const auto& v : s_.plan["models"])
        out.push_back(v.is_string() ? v.get<std::string>() : v["name"].get<std::string>());
    return out;
  }

  // A case with no measurement to show: how it ended.
  static std::string case_mark(const GridTable& t, const std::string& pattern, std::int64_t m) {
    const auto it = t.cases.find({pattern, m});
    if (it == t.cases.end()) return "";
    const CellRecord& c = *it->second;
    if (c.status == "failed") return "❌ " + cell_text(c.error_class);
    if (c.status == "skipped") return "⏭";
    if (c.status == "passed") return "";
    return "⏸";
  }

  void end_to_end_tables(const std::string& task, const std::string& title,
                         const std::vector<EndToEndRow>& rows) {
    const std::vector<GridTable> tables = grid({task});
    if (tables.empty() || rows.empty()) return;
    std::map<std::tuple<std::string, std::string, std::string, std::int64_t>, const EndToEndRow*>
        at;
    for (const auto& r : rows)
      if (r.status == "passed" && !std::isnan(r.tokens_per_s))
        at[{r.dtype, r.model, r.pattern, r.m}] = &r;
    md_ << "### " << title << " throughput\n\n";
    md_ << "Tokens/s of the dense baseline; for each pattern: tokens/s · speedup over dense at the "
           "same M · "
           "efficiency = speedup / bound L/(L-2).\n\n";
    for (const GridTable& t : tables) {
      md_ << "**" << t.model << ", " << upper(t.dtype) << "**\n\n";
      std::vector<std::string> head = {"M"};
      for (const auto& p : t.patterns)
        head.push_back(p == "dense" ? "dense tok/s" : pattern_label(p));
      md_ << table_head(head);
      for (std::int64_t m : t.ms) {
        std::vector<std::string> cells = {std::to_string(m)};
        const auto dense = at.find({t.dtype, t.model, "dense", m});
        for (const auto& p : t.patterns) {
          const auto it = at.find({t.dtype, t.model, p, m});
          if (it == at.end()) {
            cells.push_back(case_mark(t, p, m));
            continue;
          }
          const double tps = it->second->tokens_per_s;
          std::string text = thousands(tps);
          if (p != "dense" && dense != at.end() && dense->second->tokens_per_s > 0) {
            const double speedup = tps / dense->second->tokens_per_s;
            text +=
                " · " + speedup_text(speedup) + " · " + percent_text(speedup / pattern_bound(p));
          }
          cells.push_back(text);
        }
        md_ << table_row(cells);
      }
      md_ << "\n";
    }
  }

  void kernel_tables() {
    const std::vector<GridTable> tables = grid({"kernel-high", "kernel-low"});
    if (tables.empty() || r_.kernel.empty()) return;
    // Per case: all layers' GEMM time, dense over sparse; only cases whose every layer passed.
    std::map<std::tuple<std::string, std::string, std::string, std::int64_t>,
             std::pair<double, double>>
        time;
    std::set<std::tuple<std::string, std::string, std::string, std::int64_t>> incomplete;
    for (const KernelRow& r : r_.kernel) {
      const auto key = std::make_tuple(r.dtype, r.model, r.pattern, r.m);
      if (r.status != "passed" || std::isnan(r.dense_gemm_us) || std::isnan(r.sparse_gemm_us)) {
        incomplete.insert(key);
        continue;
      }
      time[key].first += r.dense_gemm_us;
      time[key].second += r.sparse_gemm_us;
    }
    md_ << "### Kernel speedup (GEMM)\n\n";
    md_ << "Sparse GEMM (cuSPARSELt on the slid weights) against tuned dense cuBLASLt on the same "
           "pruned "
           "quantized weights, summed over the model's linear layers (qkv, o, gate_up, down): "
           "speedup · "
           "efficiency = speedup / bound L/(L-2).\n\n";
    for (const GridTable& t : tables) {
      md_ << "**" << t.model << ", " << upper(t.dtype) << "**\n\n";
      std::vector<std::string> head = {"M"};
      for (const auto& p : t.patterns) head.push_back(pattern_label(p));
      md_ << table_head(head);
      for (std::int64_t m : t.ms) {
        std::vector<std::string> cells = {std::to_string(m)};
        for (const auto& p : t.patterns) {
          const auto key = std::make_tuple(t.dtype, t.model, p, m);
          const auto it = time.find(key);
          if (it != time.end() && !incomplete.count(key)) {
            const double speedup = it->second.first / it->second.second;
            cells.push_back(speedup_text(speedup) + " · " +
                            percent_text(speedup / pattern_bound(p)));
          } else {
            cells.push_back(case_mark(t, p, m));
          }
        }
        md_ << table_row(cells);
      }
      md_ << "\n";
    }
    lift_table();
  }

  void lift_table() {
    std::map<std::pair<std::string, std::string>, std::vector<double>> vs_copy, gbps;
    for (const KernelRow& r : r_.kernel)
      if (r.status == "passed" && !std::isnan(r.quant_lift_vs_copy)) {
        vs_copy[{r.dtype, r.pattern}].push_back(r.quant_lift_vs_copy);
        gbps[{r.dtype, r.pattern}].push_back(r.quant_lift_gbps);
      }
    if (vs_copy.empty()) return;
    const auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    };
    md_ << "### Quantize + lift kernel\n\nMedian over layers and M of the fused per-token "
           "quantization "
           "with lifting: bandwidth, and as a fraction of a device-to-device copy in the same "
           "run.\n\n";
    md_ << table_head({"dtype", "pattern", "GB/s", "of copy"});
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& [key, v] : vs_copy) keys.push_back(key);
    std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first
                                : pattern_rank(a.second) < pattern_rank(b.second);
    });
    for (const auto& key : keys)
      md_ << table_row({upper(key.first), pattern_label(key.second), fixed(median(gbps[key]), 0),
                        percent_text(median(vs_copy[key]))});
    md_ << "\n";
  }

  void performance(const std::vector<std::pair<std::string, std::string>>& plots,
                   const std::string& plot_note) {
    md_ << "## Performance\n\n";
    if (r_.prefill.empty() && r_.decode.empty() && r_.kernel.empty()) {
      md_ << "No performance results in this run.\n\n";
      return;
    }
    end_to_end_tables("prefill", "Prefill", r_.prefill);
    end_to_end_tables("decode", "Decode", r_.decode);
    kernel_tables();
    md_ << "### Speedup against M\n\n";
    if (plots.empty()) md_ << "No plots: " << plot_note << "\n\n";
    for (const auto& [path, title] : plots) md_ << "![" << title << "](" << path << ")\n\n";
  }

  void locations() {
    md_ << "## Result files\n\nPaths relative to `" << root_ << "`.\n\n";
    md_ << "- status of every job and case: `" << PipelineStatus::kFileName << "`\n";
    for (const RunRecord& run : s_.runs) md_ << "- log: `" << run.log << "`\n";
    std::error_code ec;
    if (fs::exists(root_ + "/hardware.txt", ec))
      md_ << "- `slidesparse info` output: `hardware.txt`\n";
    if (fs::exists(root_ + "/tuning.json", ec)) md_ << "- tuning database: `tuning.json`\n";
    if (fs::exists(root_ + "/models", ec)) md_ << "- models (made and converted): `models/`\n";
    std::vector<std::pair<std::string, std::vector<std::string>>> by_task;  // top folder → files
    for (const auto& f : r_.files) {
      const std::string top = f.substr(0, f.find('/'));
      auto it = std::find_if(by_task.begin(), by_task.end(),
                             [&](const auto& t) { return t.first == top; });
      if (it == by_task.end()) {
        by_task.push_back({top, {}});
        it = by_task.end() - 1;
      }
      it->second.push_back(f);
    }
    for (const auto& [top, files] : by_task)
      md_ << "- " << top << " results: " << files.size() << " CSV file"
          << (files.size() == 1 ? "" : "s") << " under `" << top << "/`, e.g. `" << files.front()
          << "` (each job's file is in status.json)\n";
    if (fs::exists(root_ + "/plots/plot_data.csv", ec))
      md_ << "- plotted data: `plots/plot_data.csv`\n";
    for (const auto& p : r_.problems) md_ << "- **unreadable**: " << cell_text(p) << "\n";
    if (!r_.ignored.empty()) {
      md_ << "\nNot in this report:\n\n";
      for (const auto& [file, why] : r_.ignored) md_ << "- `" << file << "`: " << why << "\n";
    }
    md_ << "\n";
  }

  const PipelineStatus& s_;
  const RunResults& r_;
  std::string root_;
  std::ostringstream md_;
};

// ---- plots -------------------------------------------------------------------------

// Rows of plots/plot_data.csv: benchmark, dtype, model, pattern, M, speedup, bound.
std::string plot_data(const RunResults& r) {
  std::ostringstream csv;
  csv << "benchmark,dtype,model,pattern,M,speedup,bound\n";
  int rows = 0;
  const auto end_to_end = [&](const char* benchmark, const std::vector<EndToEndRow>& data) {
    std::map<std::tuple<std::string, std::string, std::int64_t>, double> dense;
    for (const auto& e : data)
      if (e.pattern == "dense" && e.status == "passed")
        dense[{e.dtype, e.model, e.m}] = e.tokens_per_s;
    for (const auto& e : data) {
      const auto d = dense.find({e.dtype, e.model, e.m});
      if (e.pattern == "dense" || e.status != "passed" || d == dense.end() || !(d->second > 0))
        continue;
      csv << benchmark << "," << e.dtype << "," << e.model << "," << e.pattern << "," << e.m << ","
          << fixed(e.tokens_per_s / d->second, 4) << "," << fixed(pattern_bound(e.pattern), 4)
          << "\n";
      ++rows;
    }
  };
  end_to_end("prefill", r.prefill);
  end_to_end("decode", r.decode);
  std::map<std::tuple<std::string, std::string, std::string, std::int64_t>,
           std::pair<double, double>>
      kernel;
  std::set<std::tuple<std::string, std::string, std::string, std::int64_t>> broken;
  for (const auto& k : r.kernel) {
    const auto key = std::make_tuple(k.dtype, k.model, k.pattern, k.m);
    if (k.status != "passed" || std::isnan(k.dense_gemm_us) || std::isnan(k.sparse_gemm_us)) {
      broken.insert(key);
      continue;
    }
    kernel[key].first += k.dense_gemm_us;
    kernel[key].second += k.sparse_gemm_us;
  }
  for (const auto& [key, t] : kernel) {
    if (broken.count(key)) continue;
    csv << "kernel," << std::get<0>(key) << "," << std::get<1>(key) << "," << std::get<2>(key)
        << "," << std::get<3>(key) << "," << fixed(t.first / t.second, 4) << ","
        << fixed(pattern_bound(std::get<2>(key)), 4) << "\n";
    ++rows;
  }
  return rows > 0 ? csv.str() : "";
}

// Runs the plot script; returns the PNGs it made (path, title), or sets `note`.
std::vector<std::pair<std::string, std::string>> make_plots(const RunResults& results,
                                                            const std::string& root,
                                                            const ReportOptions& options,
                                                            std::string& note) {
  std::vector<std::pair<std::string, std::string>> plots;
  if (!options.plots) {
    note = "plots were not asked for (--no-plots).";
    return plots;
  }
  const std::string data = plot_data(results);
  if (data.empty()) {
    note = "no passed performance cases to plot.";
    return plots;
  }
  std::error_code ec;
  fs::create_directories(root + "/plots", ec);
  if (ec) throw IoError("cannot create " + root + "/plots: " + ec.message());
  write_file_atomic(root + "/plots/plot_data.csv", data);
  if (options.plot_script.empty()) {
    note =
        "scripts/plot_results.py was not found (set SLIDESPARSE_HOME to the project folder); the "
        "data is "
        "in plots/plot_data.csv.";
    return plots;
  }
  const std::string log_path = root + "/plots/plot.log";
  ChildOutcome outcome;
  {
    const FileDescriptor log(
        ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (log.get() < 0) throw IoError(os_error("cannot create", log_path));
    std::vector<std::string> argv = options.python;
    argv.insert(argv.end(), {options.plot_script, root});
    ChildOptions child;
    child.timeout_s = kPlotTimeoutS;
    outcome = run_child(argv, log.get(), child);
  }
  if (outcome.end != ChildOutcome::End::Exited || outcome.exit_code != 0) {
    std::string last;
    std::istringstream log(read_file(log_path));
    for (std::string line; std::getline(log, line);)
      if (!line.empty()) last = line;
    note = outcome.end == ChildOutcome::End::Exited && outcome.exit_code == kPlotMissingMatplotlib
               ? "matplotlib is not installed (" + last + "); the data is in plots/plot_data.csv."
               : "the plot script failed (" + last +
                     "; see plots/plot.log); the data is in plots/plot_data.csv.";
    return plots;
  }
  std::set<std::pair<std::string, std::string>> made;
  std::istringstream rows(data);
  std::string line;
  std::getline(rows, line);  // header
  while (std::getline(rows, line)) {
    const std::string benchmark = line.substr(0, line.find(','));
    const std::string rest = line.substr(line.find(',') + 1);
    made.insert({benchmark, rest.substr(0, rest.find(','))});
  }
  for (const char* benchmark : {"prefill", "decode", "kernel"})
    for (const auto& [b, dtype] : made) {
      if (b != benchmark) continue;
      const std::string png = "plots/" + b + "_" + dtype + ".png";
      if (fs::exists(root + "/" + png, ec))
        plots.emplace_back(png, std::string(b == "kernel"    ? "Kernel GEMM"
                                            : b == "prefill" ? "Prefill"
                                                             : "Decode") +
                                    " speedup against M, " + upper(dtype));
    }
  if (plots.empty()) note = "the plot script made no PNG (see plots/plot.log).";
  return plots;
}

}  // namespace

ReportResult write_report(const std::string& results_dir, const ReportOptions& options) {
  std::string root = fs::absolute(results_dir).lexically_normal().string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  const std::string status_path = root + "/" + PipelineStatus::kFileName;
  std::error_code ec;
  if (!fs::exists(status_path, ec))
    throw InvalidArgument(
        root + " holds no " + PipelineStatus::kFileName +
        ": a report is made from a pipeline's results (slidesparse pipeline PLAN --out " +
        results_dir + ")");
  const PipelineStatus status = PipelineStatus::load(status_path);
  const RunResults results = read_run_results(status, root);
  ReportResult out;
  const auto plots = make_plots(results, root, options, out.plot_note);
  for (const auto& p : plots) out.plots.push_back(p.first);
  out.ignored = results.ignored;
  out.markdown_path = root + "/report.md";
  write_file_atomic(out.markdown_path,
                    ReportWriter(status, results, root).render(plots, out.plot_note));
  return out;
}

ReportOptions report_options_for(const std::string& executable, bool plots) {
  ReportOptions o;
  o.plots = plots;
  o.plot_script = find_project_file("scripts/plot_results.py", executable);
  if (const char* python = std::getenv("SLIDESPARSE_PYTHON"); python && *python)
    o.python = {python};
  return o;
}

std::string find_project_file(const std::string& relative, const std::string& executable) {
  std::vector<fs::path> roots;
  if (const char* home = std::getenv("SLIDESPARSE_HOME")) roots.emplace_back(home);
  roots.push_back(fs::current_path());
  if (!executable.empty()) {
    fs::path dir = fs::absolute(executable).parent_path();
    for (int up = 0; up < 4 && !dir.empty(); ++up, dir = dir.parent_path()) {
      roots.push_back(dir);
      if (dir == dir.root_path()) break;
    }
  }
  std::error_code ec;
  for (const fs::path& r : roots)
    if (fs::is_regular_file(r / relative, ec)) return (r / relative).lexically_normal().string();
  return "";
}

}  // namespace slidesparse::pipeline
