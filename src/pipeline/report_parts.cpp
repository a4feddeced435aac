#include "report_parts.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <tuple>

#include "files.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/pipeline/child_process.hpp"

namespace slidesparse::pipeline::report_parts {

namespace fs = std::filesystem;

namespace {

const double kPlotTimeoutS = 300;
const int kPlotMissingMatplotlib = 3;  // scripts/plot_results.py's exit code
const std::size_t kMessageChars = 300;

void end_to_end_tables(std::ostream& md, const std::string& title,
                       const std::vector<GridTable>& tables, const std::vector<EndToEndRow>& rows) {
  if (tables.empty() || rows.empty()) return;
  std::map<std::tuple<std::string, std::string, std::string, std::int64_t>, const EndToEndRow*> at;
  for (const auto& r : rows)
    if (r.status == "passed" && !std::isnan(r.tokens_per_s))
      at[{r.dtype, r.model, r.pattern, r.m}] = &r;
  md << "### " << title << " throughput\n\n";
  md << "Tokens/s of the dense baseline (the fastest dense GEMM measured, named where it is not "
        "plain cuBLASLt); for each pattern: tokens/s · speedup over dense at the same M · "
        "efficiency = speedup / bound L/(L-2).\n\n";
  for (const GridTable& t : tables) {
    md << "**" << t.model << ", " << upper(t.dtype) << "**\n\n";
    std::vector<std::string> head = {"M"};
    for (const auto& p : t.patterns)
      head.push_back(p == "dense" ? "dense tok/s" : pattern_label(p));
    md << table_head(head);
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
        const std::string& backend = it->second->backend;
        if (p == "dense" && backend.rfind("dense-", 0) == 0)  // the dense GEMM that was fastest
          text += " (" + backend.substr(6) + ")";
        if (p != "dense" && dense != at.end() && dense->second->tokens_per_s > 0) {
          const double speedup = tps / dense->second->tokens_per_s;
          text += " · " + speedup_text(speedup) + " · " + percent_text(speedup / pattern_bound(p));
        }
        cells.push_back(text);
      }
      md << table_row(cells);
    }
    md << "\n";
  }
}

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
  rows += write_kernel_plot_data(csv, r.kernel);
  return rows > 0 ? csv.str() : "";
}

}  // namespace

// ---- formatting --------------------------------------------------------------------

std::string fixed(double v, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

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

// ---- patterns ----------------------------------------------------------------------

std::string base_pattern(const std::string& p) { return p.substr(0, p.find('+')); }

bool is_cutlass_series(const std::string& p) {
  return p.find(kCutlassSeries) != std::string::npos;
}

namespace {
// The series after a pattern, in column order: the library (""), then kCutlassSeries, ...
const std::vector<std::pair<std::string, std::string>>& series_labels() {
  static const std::vector<std::pair<std::string, std::string>> labels = {
      {"", ""},
      {kCutlassSeries, " CUTLASS"},
      {kFallbackSeries, " + dense fallback"},
      {std::string(kCutlassSeries) + kFallbackSeries, " CUTLASS + dense fallback"},
      {kAutoSeries, " auto backend"},
      {std::string(kAutoSeries) + kFallbackSeries, " auto backend + dense fallback"}};
  return labels;
}

int series_index(const std::string& p) {
  const std::string suffix = p.substr(base_pattern(p).size());
  const auto& labels = series_labels();
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i].first == suffix) return static_cast<int>(i);
  return static_cast<int>(labels.size());
}
}  // namespace

int pattern_rank(const std::string& p) {
  // By length, each pattern's series (CUTLASS, fallback, ...) in the columns beside it.
  const int series = series_index(p);
  const int width = static_cast<int>(series_labels().size()) + 1;
  const std::string base = base_pattern(p);
  if (base == "dense" || base.empty()) return -width + series;
  try {
    const Pattern pattern = Pattern::parse(base);
    return width * (pattern.is_infinite() ? 1000 : pattern.length()) + series;
  } catch (const InvalidArgument&) {
    return width * 4000 + series;
  }
}

std::string pattern_label(const std::string& p) {
  const std::string base = base_pattern(p);
  if (base != p) {
    const int series = series_index(p);
    const auto& labels = series_labels();
    return pattern_label(base) + (series < static_cast<int>(labels.size())
                                      ? labels[static_cast<std::size_t>(series)].second
                                      : " " + p.substr(base.size()));
  }
  if (p == "dense") return "dense (cuBLASLt)";
  try {
    return Pattern::parse(p).display_name();
  } catch (const InvalidArgument&) {
    return p;
  }
}

double pattern_bound(const std::string& p) {
  const std::string base = base_pattern(p);
  if (base == "dense") return 1.0;
  try {
    return Pattern::parse(base).speedup_bound();
  } catch (const InvalidArgument&) {
    return NAN;
  }
}

void sort_patterns(std::vector<std::string>& patterns) {
  std::stable_sort(
      patterns.begin(), patterns.end(),
      [](const std::string& a, const std::string& b) { return pattern_rank(a) < pattern_rank(b); });
}

// ---- sections ----------------------------------------------------------------------

std::string case_mark(const GridTable& t, const std::string& pattern, std::int64_t m) {
  const auto it = t.cases.find({pattern, m});
  if (it == t.cases.end()) return "";
  const CellRecord& c = it->second;
  if (c.status == "failed") return "❌ " + cell_text(c.error_class);
  if (c.status == "skipped") return "⏭";
  if (c.status == "passed") return "";
  return "⏸";
}

void write_performance(std::ostream& md, const RunResults& results, const PerformanceGrids& grids,
                       const Plots& plots, const std::string& plot_note) {
  md << "## Performance\n\n";
  if (results.prefill.empty() && results.decode.empty() && results.kernel.empty()) {
    md << "No performance results in this run.\n\n";
    return;
  }
  end_to_end_tables(md, "Prefill", grids.prefill, results.prefill);
  end_to_end_tables(md, "Decode", grids.decode, results.decode);
  write_kernel_tables(md, grids.kernel, results.kernel);
  md << "### Speedup against M\n\n";
  if (plots.empty()) md << "No plots: " << plot_note << "\n\n";
  for (const auto& [path, title] : plots) md << "![" << title << "](" << path << ")\n\n";
}

void write_hardware_table(std::ostream& md, const HardwareInfo& h,
                          const std::vector<std::pair<std::string, std::string>>& extra) {
  md << table_head({"", ""});
  std::vector<std::pair<std::string, std::string>> rows = {
      {"GPU", h.name},
      {"compute capability", h.compute_capability},
      {"memory", h.memory},
      {"driver", h.driver},
      {"CUDA runtime", h.cuda_runtime},
      {"cuBLASLt", h.cublaslt},
      {"cuSPARSELt", h.cusparselt},
      {"2:4 sparse tensor cores", h.sparse_tensor_cores}};
  rows.insert(rows.end(), extra.begin(), extra.end());
  for (const auto& [label, value] : rows)
    if (!value.empty()) md << table_row({label, cell_text(value)});
  for (const char* p : {"int8", "fp8", "bf16", "fp16"}) {
    const auto it = h.precisions.find(p);
    if (it == h.precisions.end()) continue;
    md << table_row({upper(p), it->second.supported
                                   ? "supported, results in `" + it->second.folder + "/`"
                                   : "**not supported**: " + it->second.reason});
  }
  md << "\n";
}

// ---- plots -------------------------------------------------------------------------

Plots make_plots(const RunResults& results, const std::string& root, const ReportOptions& options,
                 std::string& note) {
  Plots plots;
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
  // The plot script's benchmarks (plot_data's first column), in the report's order.
  const std::pair<const char*, const char*> titles[] = {
      {"prefill", "Prefill speedup"},
      {"decode", "Decode speedup"},
      {"kernel", "Kernel GEMM speedup"},
      {"layer", "Whole-layer speedup (over the faster dense layer)"},
      {"kernel_cutlass", "CUTLASS GEMM speedup (over the CUTLASS dense GEMM)"}};
  for (const auto& [benchmark, title] : titles)
    for (const auto& [b, dtype] : made) {
      if (b != benchmark) continue;
      const std::string png = "plots/" + b + "_" + dtype + ".png";
      if (fs::exists(root + "/" + png, ec))
        plots.emplace_back(png, std::string(title) + " against M, " + upper(dtype));
    }
  if (plots.empty()) note = "the plot script made no PNG (see plots/plot.log).";
  return plots;
}

}  // namespace slidesparse::pipeline::report_parts
