// The kernel benchmark's part of the report (kernel_bench.csv): per dtype and model, the GEMM
// speedup of the 2:4 GEMM that made the sparse_* columns, the whole layer against the faster
// dense layer, with --sparse-backend both our CUTLASS kernel against its dense twin and at
// layer level, the quantize + lift kernel, and the rows of the plotted speedups.
// A case is every layer of the model at one pattern and M. Its ratio is one sum of times over
// the layers divided by another: a mean of the layers' ratios would weigh a small layer like a
// large one.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "report_parts.hpp"
#include "slidesparse/pipeline/verdict.hpp"

namespace slidesparse::pipeline::report_parts {

namespace {

using CaseKey = std::tuple<std::string, std::string, std::string, std::int64_t>;  // dtype, model,
                                                                                  // pattern, M

// Σ numerator / Σ denominator over a case's layers; no ratio when a layer failed or lacks a time.
struct SummedRatio {
  double numerator = 0, denominator = 0;
  int layers = 0;
  bool broken = false;
  void add(bool passed, double n, double d) {
    if (!passed || std::isnan(n) || std::isnan(d)) {
      broken = true;
      return;
    }
    numerator += n;
    denominator += d;
    ++layers;
  }
  bool valid() const { return !broken && layers > 0 && denominator > 0; }
  double value() const { return numerator / denominator; }
};

struct CaseSums {
  SummedRatio gemm;           // dense_gemm_us / sparse_gemm_us
  SummedRatio layer;          // the faster dense layer / sparse_layer_us
  SummedRatio cutlass_fair;   // cutlass_dense_epilogue_us / cutlass_gemm_epilogue_us
  SummedRatio cutlass_layer;  // the faster dense layer / cutlass_layer_us
  SummedRatio cutlass_lift_layer;  // the faster dense layer / cutlass_lift_layer_us (all)
  bool cutlass_columns = false;
  std::string cutlass_error;        // one layer's CUTLASS failure (the first by layer name) ...
  std::string cutlass_error_layer;  // ... and that layer
  int fused_measured = 0;           // layers with both dense layers timed ...
  int fused_faster = 0;             // ... and the fused one the faster
};

// The part of a row's error about the CUTLASS GEMMs ("cutlass: …", "cutlass_dense: …"): the
// sweep joins the errors of a cell's parts with "; ", and a cuBLASLt part must not name it.
std::string cutlass_error_of(const std::string& error) {
  for (std::size_t start = 0; start < error.size();) {
    std::size_t end = error.find("; ", start);
    if (end == std::string::npos) end = error.size();
    if (error.compare(start, 7, "cutlass") == 0) return error.substr(start, end - start);
    start = end + 2;
  }
  return "";
}

std::map<CaseKey, CaseSums> sum_cases(const std::vector<KernelRow>& kernel) {
  std::map<CaseKey, CaseSums> out;
  for (const KernelRow& r : kernel) {
    CaseSums& s = out[{r.dtype, r.model, r.pattern, r.m}];
    const bool passed = r.status == "passed";
    const double best_dense = r.best_dense_layer_us();
    s.gemm.add(passed, r.dense_gemm_us, r.sparse_gemm_us);
    s.layer.add(passed, best_dense, r.sparse_layer_us);
    if (r.cutlass_columns) {
      s.cutlass_columns = true;
      s.cutlass_fair.add(passed, r.cutlass_dense_us, r.cutlass_gemm_us);
      s.cutlass_layer.add(passed, best_dense, r.cutlass_layer_us);
      s.cutlass_lift_layer.add(passed, best_dense, r.cutlass_lift_layer_us);
      if (s.cutlass_error.empty()) {
        s.cutlass_error = cutlass_error_of(r.error);
        s.cutlass_error_layer = r.layer;
      }
    }
    if (passed && !std::isnan(r.dense_layer_us) && !std::isnan(r.dense_fused_layer_us)) {
      ++s.fused_measured;
      s.fused_faster += r.dense_fused_layer_us < r.dense_layer_us ? 1 : 0;
    }
  }
  return out;
}

const CaseSums* find_case(const std::map<CaseKey, CaseSums>& sums, const GridTable& t,
                          const std::string& pattern, std::int64_t m) {
  const auto it = sums.find({t.dtype, t.model, pattern, m});
  return it == sums.end() ? nullptr : &it->second;
}

std::string ratio_cell(const SummedRatio& r, const std::string& pattern) {
  const double speedup = r.value();
  return speedup_text(speedup) + " · " + percent_text(speedup / pattern_bound(pattern));
}

// A cell of `ratio`, or how its case ended; for a CUTLASS ratio of a case that passed (the
// cuSPARSELt and dense cells), why CUTLASS has no time.
std::string cell(const GridTable& t, const std::map<CaseKey, CaseSums>& sums,
                 const std::string& pattern, std::int64_t m, SummedRatio CaseSums::*ratio,
                 bool cutlass = false) {
  const CaseSums* s = find_case(sums, t, pattern, m);
  if (s && (s->*ratio).valid()) return ratio_cell(s->*ratio, pattern);
  const std::string mark = case_mark(t, pattern, m);
  if (mark.empty() && cutlass && s && !s->cutlass_error.empty())
    return "❌ " + cell_text(classify_error(s->cutlass_error));
  return mark;
}

// One table of a dtype and model: M rows, a column per pattern, and optionally a last column.
void pattern_table(std::ostream& md, const GridTable& t, const std::map<CaseKey, CaseSums>& sums,
                   SummedRatio CaseSums::*ratio, const std::string& last_head = "",
                   const std::function<std::string(std::int64_t)>& last = {}) {
  md << "**" << t.model << ", " << upper(t.dtype) << "**\n\n";
  std::vector<std::string> head = {"M"};
  for (const auto& p : t.patterns) head.push_back(pattern_label(p));
  if (last) head.push_back(last_head);
  md << table_head(head);
  for (std::int64_t m : t.ms) {
    std::vector<std::string> cells = {std::to_string(m)};
    for (const auto& p : t.patterns) cells.push_back(cell(t, sums, p, m, ratio));
    if (last) cells.push_back(last(m));
    md << table_row(cells);
  }
  md << "\n";
}

// Which 2:4 GEMM the sparse_* columns measured, as the tables' columns show it. Beside the
// GEMM alone (`gemm`), the CUTLASS time includes a dequantization that the dense time lacks.
std::string sparse_gemm_text(const std::vector<GridTable>& tables,
                             const std::map<CaseKey, CaseSums>& sums, bool gemm) {
  bool library = false, cutlass = false;
  for (const GridTable& t : tables)
    for (const auto& p : t.patterns)
      for (std::int64_t m : t.ms)
        if (find_case(sums, t, p, m)) (is_cutlass_series(p) ? cutlass : library) = true;
  const std::string ours =
      "our CUTLASS kernel of a `--sparse-backend cutlass` run" +
      std::string(gemm ? ", whose time includes the dequantizing epilogue that the dense time "
                         "lacks"
                       : "");
  if (!cutlass) return "cuSPARSELt on the slid weights";
  if (!library) return ours + ", on the slid weights";
  return "cuSPARSELt on the slid weights; in the columns marked CUTLASS, " + ours;
}

void gemm_tables(std::ostream& md, const std::vector<GridTable>& tables,
                 const std::map<CaseKey, CaseSums>& sums) {
  md << "### Kernel speedup (GEMM)\n\n";
  md << "Sparse GEMM (" << sparse_gemm_text(tables, sums, true)
     << ") against tuned dense cuBLASLt on the same pruned quantized weights, summed over the "
        "model's linear layers (qkv, o, gate_up, down): speedup · efficiency = speedup / bound "
        "L/(L-2).\n\n";
  for (const GridTable& t : tables) pattern_table(md, t, sums, &CaseSums::gemm);
}

std::string fused_text(int faster, int measured) {
  const std::string of = "/" + std::to_string(measured);
  if (faster == measured) return "fused " + std::to_string(faster) + of;
  if (faster == 0) return "plain " + std::to_string(measured) + of;
  return "fused " + std::to_string(faster) + of + ", plain " + std::to_string(measured - faster) +
         of;
}

void layer_tables(std::ostream& md, const std::vector<GridTable>& tables,
                  const std::map<CaseKey, CaseSums>& sums) {
  md << "### Layer speedup (whole linear layer)\n\n";
  md << "The whole sparse layer (quantize + lift, sparse GEMM, dequantization) against the "
        "faster dense layer of the same run, per layer and M: cuBLASLt with a dequantize kernel "
        "(plain), or where it was measured (FP8 on cc 9.0) cuBLASLt with the dequantization in "
        "its epilogue (fused). Times summed over the model's linear layers: speedup · efficiency "
        "= speedup / bound L/(L-2). Sparse GEMM: "
     << sparse_gemm_text(tables, sums, false) << ".\n\n";
  for (const GridTable& t : tables) {
    std::map<std::int64_t, std::pair<int, int>> fused;  // M → fused faster, both measured
    int faster = 0, measured = 0;
    bool any_layer = false;
    for (std::int64_t m : t.ms)
      for (const auto& p : t.patterns)
        if (const CaseSums* s = find_case(sums, t, p, m)) {
          fused[m].first += s->fused_faster;
          fused[m].second += s->fused_measured;
          faster += s->fused_faster;
          measured += s->fused_measured;
          any_layer = any_layer || s->layer.valid();
        }
    if (measured == 0) {
      pattern_table(md, t, sums, &CaseSums::layer);
      if (any_layer)
        md << "Dense baseline: the plain layer (no fused dense layer was measured here).\n\n";
      continue;
    }
    pattern_table(md, t, sums, &CaseSums::layer, "faster dense layer", [&](std::int64_t m) {
      const auto [f, n] = fused[m];
      return n == 0 ? std::string() : fused_text(f, n);
    });
    md << "Dense baseline: the faster of the two dense layers, per (layer, pattern, M) "
          "measurement (each pattern's run times both on its own pruned weights); the fused "
          "one was the faster in "
       << faster << " of " << measured << ", the plain one in " << measured - faster
       << ". Last column: the same count per M.\n\n";
  }
}

void cutlass_tables(std::ostream& md, const std::vector<GridTable>& tables,
                    const std::map<CaseKey, CaseSums>& sums) {
  std::vector<std::pair<const GridTable*, std::vector<std::string>>> shown;  // table, patterns
  for (const GridTable& t : tables) {
    std::vector<std::string> patterns;
    for (const auto& p : t.patterns) {
      if (is_cutlass_series(p)) continue;  // --sparse-backend cutlass: no columns of both
      for (std::int64_t m : t.ms)
        if (const CaseSums* s = find_case(sums, t, p, m); s && s->cutlass_columns) {
          patterns.push_back(p);
          break;
        }
    }
    if (!patterns.empty()) shown.emplace_back(&t, patterns);
  }
  if (shown.empty()) return;
  md << "### Our CUTLASS kernel (`--sparse-backend both`)\n\n";
  md << "Our sm_90a 2:4 GEMM (CUTLASS) on the slid weights, its time including its fused "
        "dequantizing epilogue, measured in the same run as the tables above. **GEMM**: against "
        "the CUTLASS dense GEMM with the same epilogue on the same pruned weights; both do the "
        "same work after their mainloop, so this is the fair kernel ratio. **CUTLASS layer**: "
        "the whole layer on it (quantize + lift, then the GEMM that dequantizes) against the "
        "faster dense layer (with `--sparse-backend all` also **lift in the GEMM**: quantize, "
        "then the GEMM that lifts in shared memory), beside **cuSPARSELt layer**, the library "
        "path's layer against the same dense layer. Times summed over the model's linear layers: speedup · efficiency = "
        "speedup / bound L/(L-2).\n\n";
  for (const auto& [t, patterns] : shown) {
    // --sparse-backend all: the layer on the GEMM that lifts its input, where any case has it.
    bool lift = false;
    for (const auto& p : patterns)
      for (std::int64_t m : t->ms)
        if (const CaseSums* s = find_case(sums, *t, p, m); s && s->cutlass_lift_layer.valid())
          lift = true;
    md << "**" << t->model << ", " << upper(t->dtype) << "**\n\n";
    std::vector<std::string> head = {"pattern", "M", "GEMM: CUTLASS / CUTLASS dense",
                                     "CUTLASS layer"};
    if (lift) head.push_back("CUTLASS layer, lift in the GEMM");
    head.push_back("cuSPARSELt layer");
    md << table_head(head);
    for (const auto& p : patterns)
      for (std::int64_t m : t->ms) {
        std::vector<std::string> cells = {pattern_label(p), std::to_string(m),
                                          cell(*t, sums, p, m, &CaseSums::cutlass_fair, true),
                                          cell(*t, sums, p, m, &CaseSums::cutlass_layer, true)};
        if (lift) cells.push_back(cell(*t, sums, p, m, &CaseSums::cutlass_lift_layer, true));
        cells.push_back(cell(*t, sums, p, m, &CaseSums::layer));
        md << table_row(cells);
      }
    md << "\n";
    std::string errors;  // the cases' CUTLASS failures, which the cells only classify
    for (const auto& p : patterns)
      for (std::int64_t m : t->ms)
        if (const CaseSums* s = find_case(sums, *t, p, m); s && !s->cutlass_error.empty())
          errors += "- " + pattern_label(p) + " M=" + std::to_string(m) + " (" +
                    s->cutlass_error_layer + "): " + cell_text(s->cutlass_error) + "\n";
    if (!errors.empty())
      md << "CUTLASS not measured (per case, one failed layer and its error):\n" << errors << "\n";
  }
}

void lift_table(std::ostream& md, const std::vector<KernelRow>& kernel) {
  std::map<std::pair<std::string, std::string>, std::vector<double>> vs_copy, gbps;
  for (const KernelRow& r : kernel)
    if (r.status == "passed" && !std::isnan(r.quant_lift_vs_copy)) {
      vs_copy[{r.dtype, r.pattern}].push_back(r.quant_lift_vs_copy);
      gbps[{r.dtype, r.pattern}].push_back(r.quant_lift_gbps);
    }
  if (vs_copy.empty()) return;
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  md << "### Quantize + lift kernel\n\nMedian over layers and M of the fused per-token "
        "quantization "
        "with lifting: bandwidth, and as a fraction of a device-to-device copy in the same "
        "run.\n\n";
  md << table_head({"dtype", "pattern", "GB/s", "of copy"});
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& [key, v] : vs_copy) keys.push_back(key);
  std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : pattern_rank(a.second) < pattern_rank(b.second);
  });
  for (const auto& key : keys)
    md << table_row({upper(key.first), pattern_label(key.second), fixed(median(gbps[key]), 0),
                     percent_text(median(vs_copy[key]))});
  md << "\n";
}

}  // namespace

void write_kernel_tables(std::ostream& md, const std::vector<GridTable>& tables,
                         const std::vector<KernelRow>& kernel) {
  if (tables.empty() || kernel.empty()) return;
  const auto sums = sum_cases(kernel);
  gemm_tables(md, tables, sums);
  layer_tables(md, tables, sums);
  cutlass_tables(md, tables, sums);
  lift_table(md, kernel);
}

int write_kernel_plot_data(std::ostream& csv, const std::vector<KernelRow>& kernel) {
  const auto sums = sum_cases(kernel);
  int rows = 0;
  const auto row = [&](const char* benchmark, const CaseKey& key, const std::string& pattern,
                       const SummedRatio& r) {
    if (!r.valid()) return;
    csv << benchmark << "," << std::get<0>(key) << "," << std::get<1>(key) << "," << pattern << ","
        << std::get<3>(key) << "," << fixed(r.value(), 4) << "," << fixed(pattern_bound(pattern), 4)
        << "\n";
    ++rows;
  };
  for (const auto& [key, s] : sums) row("kernel", key, std::get<2>(key), s.gemm);
  for (const auto& [key, s] : sums) {
    row("layer", key, std::get<2>(key), s.layer);
    // The CUTLASS layer of --sparse-backend both as its pattern's CUTLASS series, unless a
    // --sparse-backend cutlass run of the same case already is that series.
    const std::string series = std::get<2>(key) + kCutlassSeries;
    if (!sums.count({std::get<0>(key), std::get<1>(key), series, std::get<3>(key)}))
      row("layer", key, series, s.cutlass_layer);
  }
  for (const auto& [key, s] : sums)
    row("kernel_cutlass", key, std::get<2>(key) + kCutlassSeries, s.cutlass_fair);
  return rows;
}

void name_cutlass_kernel_series(std::vector<GridTable>& tables,
                                const std::vector<KernelRow>& kernel) {
  std::set<std::tuple<std::string, std::string, std::string>> library, cutlass;
  for (const KernelRow& r : kernel)
    (is_cutlass_series(r.pattern) ? cutlass : library)
        .insert({r.dtype, r.model, base_pattern(r.pattern)});
  for (GridTable& t : tables) {
    std::map<std::pair<std::string, std::int64_t>, CellRecord> cases;
    for (auto& [key, c] : t.cases) {
      if (!library.count({t.dtype, t.model, c.pattern}) &&
          cutlass.count({t.dtype, t.model, c.pattern}))
        c.pattern += kCutlassSeries;
      cases[{c.pattern, key.second}] = c;
    }
    t.cases = cases;
    for (auto& p : t.patterns)
      if (!library.count({t.dtype, t.model, p}) && cutlass.count({t.dtype, t.model, p}))
        p += kCutlassSeries;
    sort_patterns(t.patterns);
  }
}

}  // namespace slidesparse::pipeline::report_parts
