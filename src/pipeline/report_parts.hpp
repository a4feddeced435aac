// What the report of a pipeline run and the report of a folder the benchmarks wrote directly
// share (private to the pipeline room): Markdown formatting, the grid of cases a performance
// table shows, the performance section (its kernel part in kernel_report.cpp), the hardware
// table and the speedup plots.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "run_results.hpp"
#include "slidesparse/pipeline/hardware.hpp"
#include "slidesparse/pipeline/report.hpp"
#include "slidesparse/pipeline/status.hpp"

namespace slidesparse::pipeline::report_parts {

// ---- formatting ----
std::string fixed(double v, int decimals);
std::string thousands(double v);  // 12500.4 → "12,500"
std::string speedup_text(double x);
std::string percent_text(double x);
// A table cell: no pipes, no line breaks, bounded length.
std::string cell_text(std::string s);
std::string upper(std::string s);
std::string table_row(const std::vector<std::string>& cells);
std::string table_head(const std::vector<std::string>& cells);

// ---- patterns, as table columns ----
// A column is a pattern ("dense", "2_8"), or a pattern with kCutlassSeries appended.
std::string base_pattern(const std::string& p);  // "2_8+cutlass" → "2_8"
bool is_cutlass_series(const std::string& p);
int pattern_rank(const std::string& p);           // dense first, then by L, 2_inf last
std::string pattern_label(const std::string& p);  // "6:8 (2_8)", "dense (cuBLASLt)"
double pattern_bound(const std::string& p);       // L/(L-2); 1 for dense
void sort_patterns(std::vector<std::string>& patterns);

// One performance table: per dtype and model, its patterns (columns) and M (rows), and how
// each case ended, so a case without a measurement still shows why.
struct GridTable {
  std::string dtype, model;
  std::vector<std::string> patterns;
  std::set<std::int64_t> ms;
  std::map<std::pair<std::string, std::int64_t>, CellRecord> cases;
};

struct PerformanceGrids {
  std::vector<GridTable> prefill, decode, kernel;
};

// A case with no measurement to show: how it ended ("" when it passed).
std::string case_mark(const GridTable& t, const std::string& pattern, std::int64_t m);

// ---- the kernel benchmark (kernel_report.cpp) ----
// Its tables: GEMM speedup, whole-layer speedup, our CUTLASS kernel (--sparse-backend both),
// quantize + lift.
void write_kernel_tables(std::ostream& md, const std::vector<GridTable>& tables,
                         const std::vector<KernelRow>& kernel);
// Its rows of plots/plot_data.csv (benchmarks kernel, layer, kernel_cutlass); returns how many.
int write_kernel_plot_data(std::ostream& csv, const std::vector<KernelRow>& kernel);
// A pipeline's grid names cases by the plan's patterns: a pattern whose kernel rows all measured
// our CUTLASS GEMM (--sparse-backend cutlass) becomes that pattern's CUTLASS series, as the
// rows name it.
void name_cutlass_kernel_series(std::vector<GridTable>& tables,
                                const std::vector<KernelRow>& kernel);

using Plots = std::vector<std::pair<std::string, std::string>>;  // PNG path, title

// "## Performance": throughput tables, kernel speedup, quantize + lift, the plots (or why
// there are none).
void write_performance(std::ostream& md, const RunResults& results, const PerformanceGrids& grids,
                       const Plots& plots, const std::string& plot_note);

// The rows of the hardware table (without its "## Hardware" title); `extra` rows go after
// the library versions.
void write_hardware_table(std::ostream& md, const HardwareInfo& h,
                          const std::vector<std::pair<std::string, std::string>>& extra);

// Writes plots/plot_data.csv and runs the plot script; the PNGs it made, or `note` says why
// there are none.
Plots make_plots(const RunResults& results, const std::string& root, const ReportOptions& options,
                 std::string& note);

// The report of a folder without status.json (bench_report.cpp). `root` is absolute;
// `as_given` is how the command was given it, the name the report shows.
ReportResult write_bench_report(const std::string& root, const std::string& as_given,
                                const ReportOptions& options);

}  // namespace slidesparse::pipeline::report_parts
