// The kernel sweep behind `bench kernel` and `tune`: for every shape × dtype × pattern × M,
// the searched sparse GEMM against the searched cuBLASLt dense GEMM on the same pruned
// quantized weights, measured in the same run, plus the whole layer both ways. For FP8 on cc 9.0
// the dense layer is also timed with the dequantization in cuBLASLt's epilogue, and the layer
// speedups take the faster of the two dense layers: the best dense we can build.
#include "kernel_sweep.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <tuple>

#include "bench_shapes.hpp"
#include "gpu_common.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack.hpp"

namespace slidesparse::cli {

namespace {

// One measured cell: a shape, dtype, pattern and M.
struct Cell {
  BenchShape shape;
  Pattern pattern = Pattern::infinite();
  std::int64_t m = 0;
  std::string status = "passed";
  std::string error;
  double dense_gemm_us = NAN, sparse_gemm_us = NAN;
  double dense_layer_us = NAN, sparse_layer_us = NAN;
  double lift_us = NAN, lift_gbs = NAN;
  double dense_fallback_mb = NAN;  // device memory the layer's dense copy of W costs
  std::string dense_algo, sparse_algo;
  int sparse_candidates = 0, dense_candidates = 0;
  // --sparse-backend both: the CUTLASS GEMM with its dequantizing epilogue, on the same weights.
  double cutlass_gemm_us = NAN;
  std::string cutlass_algo;
  // ... and the CUTLASS dense GEMM with the same epilogue, on the pruned weights unpacked.
  double cutlass_dense_us = NAN;
  // The whole sparse layer on the CUTLASS GEMM: quantize+lift, then the GEMM that dequantizes.
  double cutlass_layer_us = NAN;
  // The same GEMM lifting inside the kernel (cutlass_lift): its GEMM on the un-lifted quantized
  // X, and its whole layer (quantize, then the GEMM).
  double cutlass_lift_gemm_us = NAN, cutlass_lift_layer_us = NAN;
  std::string cutlass_lift_algo;
  // FP8 on cc 9.0: cuBLASLt with the dequantization in its epilogue (the GEMM, and the dense
  // layer built on it), on the same pruned weights.
  double dense_fused_gemm_us = NAN, dense_fused_layer_us = NAN;
  std::string dense_fused_algo;

  // The dense layer the layer speedups are measured against: the faster of the two.
  double best_dense_layer_us() const {
    if (std::isnan(dense_fused_layer_us)) return dense_layer_us;
    if (std::isnan(dense_layer_us)) return dense_fused_layer_us;
    return std::min(dense_layer_us, dense_fused_layer_us);
  }
};

const std::vector<std::string> kColumns = {"model",
                                           "layer",
                                           "N",
                                           "K",
                                           "M",
                                           "dtype",
                                           "pattern",
                                           "pattern_paper",
                                           "gamma",
                                           "bound",
                                           "dense_gemm_us",
                                           "sparse_gemm_us",
                                           "speedup_gemm",
                                           "efficiency_bound",
                                           "efficiency_vs_2_4",
                                           "dense_layer_us",
                                           "dense_fused_layer_us",
                                           "sparse_layer_us",
                                           "speedup_layer",
                                           "layer_overhead",
                                           "auto_path",
                                           "speedup_auto",
                                           "dense_fallback_MB",
                                           "quant_lift_us",
                                           "quant_lift_GBps",
                                           "quant_lift_vs_copy",
                                           "copy_GBps",
                                           "dense_algo",
                                           "sparse_algo",
                                           "dense_candidates",
                                           "sparse_candidates",
                                           "dense_fused_gemm_us",
                                           "dense_fused_algo",
                                           "sparse_backend",
                                           "status",
                                           "error"};

// Extra columns of --sparse-backend both (the cutlass_lift ones stay empty unless all).
const std::vector<std::string> kCutlassColumns = {
    "cutlass_gemm_epilogue_us", "speedup_cutlass_gemm", "cutlass_algo", "cutlass_dense_epilogue_us",
    "speedup_cutlass_vs_cutlass_dense", "cutlass_layer_us", "speedup_cutlass_layer",
    "cutlass_lift_gemm_epilogue_us", "cutlass_lift_algo", "cutlass_lift_layer_us",
    "speedup_cutlass_lift_layer"};

std::vector<std::string> columns(bool with_cutlass) {
  std::vector<std::string> out = kColumns;
  // Before status and error, which stay the last two.
  if (with_cutlass) out.insert(out.end() - 2, kCutlassColumns.begin(), kCutlassColumns.end());
  return out;
}

std::vector<float> random_matrix(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  std::vector<float> out(static_cast<std::size_t>(rows * cols));
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& v : out) {  // xorshift64*: cheap, and the values only need to be non-degenerate
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    const std::uint64_t r = s * 0x2545F4914F6CDD1Dull;
    v = static_cast<float>(static_cast<double>(r >> 11) * (2.0 / 9007199254740992.0) - 1.0);
  }
  return out;
}

std::string fmt_us(double us) { return std::isnan(us) ? "" : format_double(us, 2); }
std::string fmt_ratio(double r) { return std::isnan(r) ? "" : format_double(r, 3); }

std::vector<std::string> cell_row(const Cell& c, Precision precision, GemmBackendKind sparse_kind,
                                  double t24_sparse, double copy_gbs, bool with_cutlass) {
  const double speedup = c.dense_gemm_us / c.sparse_gemm_us;
  const double best_dense_layer_us = c.best_dense_layer_us();
  const double layer_speedup = best_dense_layer_us / c.sparse_layer_us;
  const double gamma = c.pattern.gamma();
  // Native 2:4 time scaled by γ is what a perfect slid kernel would take.
  const double vs24 = t24_sparse * gamma / c.sparse_gemm_us;
  // The path LinearPath::Auto takes with this cell in the tuning database (the layer's rule in
  // SlideSparseLinear::resolve: dense where its GEMM measured faster), and that path's layer.
  const bool measured = !std::isnan(c.dense_gemm_us) && !std::isnan(c.sparse_gemm_us);
  const bool dense_wins = measured && c.dense_gemm_us < c.sparse_gemm_us;
  const std::string auto_path = !measured ? "" : dense_wins ? "dense" : "sparse";
  const double auto_layer_us = dense_wins ? best_dense_layer_us : c.sparse_layer_us;
  std::vector<std::string> row = {
      c.shape.model,
      c.shape.layer,
      std::to_string(c.shape.n),
      std::to_string(c.shape.k),
      std::to_string(c.m),
      precision_name(precision),
      c.pattern.zeros_name(),
      c.pattern.paper_name(),
      format_double(gamma, 3),
      format_double(c.pattern.speedup_bound(), 3),
      fmt_us(c.dense_gemm_us),
      fmt_us(c.sparse_gemm_us),
      fmt_ratio(speedup),
      fmt_ratio(speedup / c.pattern.speedup_bound()),
      fmt_ratio(vs24),
      fmt_us(c.dense_layer_us),
      fmt_us(c.dense_fused_layer_us),
      fmt_us(c.sparse_layer_us),
      fmt_ratio(layer_speedup),
      fmt_ratio(c.sparse_layer_us / c.sparse_gemm_us - 1.0),
      auto_path,
      fmt_ratio(best_dense_layer_us / auto_layer_us),
      std::isnan(c.dense_fallback_mb) ? std::string() : format_double(c.dense_fallback_mb, 1),
      fmt_us(c.lift_us),
      std::isnan(c.lift_gbs) ? std::string() : format_double(c.lift_gbs, 1),
      fmt_ratio(c.lift_gbs / copy_gbs),
      format_double(copy_gbs, 1),
      c.dense_algo,
      c.sparse_algo,
      std::to_string(c.dense_candidates),
      std::to_string(c.sparse_candidates),
      fmt_us(c.dense_fused_gemm_us),
      c.dense_fused_algo,
      backend_name(sparse_kind),  // which 2:4 GEMM the sparse_* columns measured
      c.status,
      c.error};
  if (with_cutlass) {
    const std::vector<std::string> extra = {
        fmt_us(c.cutlass_gemm_us), fmt_ratio(c.dense_gemm_us / c.cutlass_gemm_us), c.cutlass_algo,
        fmt_us(c.cutlass_dense_us), fmt_ratio(c.cutlass_dense_us / c.cutlass_gemm_us),
        fmt_us(c.cutlass_layer_us), fmt_ratio(c.best_dense_layer_us() / c.cutlass_layer_us),
        fmt_us(c.cutlass_lift_gemm_us), c.cutlass_lift_algo, fmt_us(c.cutlass_lift_layer_us),
        fmt_ratio(c.best_dense_layer_us() / c.cutlass_lift_layer_us)};
    row.insert(row.end() - 2, extra.begin(), extra.end());
  }
  return row;
}

int count_ok(const std::vector<AlgoTiming>& timings) {
  int n = 0;
  for (const auto& t : timings) n += t.ok ? 1 : 0;
  return n;
}

// The fastest working candidate, or throws with the first candidate's error.
const AlgoTiming& best_of(const std::vector<AlgoTiming>& timings, const char* what) {
  for (const auto& t : timings)
    if (t.ok) return t;
  throw DeviceError(std::string(what) + ": no algorithm ran" +
                    (timings.empty() ? std::string() : ": " + timings.front().error));
}

// A dense GEMM's algorithm, searched once per M (on the first pattern's layer) and then
// prepared on each later layer, which times it on its own pruned weights: the dense weights of
// every pattern share the shape, so one search serves them all.
class DenseSearchedOncePerM {
 public:
  explicit DenseSearchedOncePerM(const char* what) : what_(what) {}
  struct Result {
    GemmAlgo algo;
    double search_us = NAN;  // the search's median of the chosen algorithm
    int candidates = 0;      // candidates that ran in the search
  };
  // The layer's input must be quantized for the dense path (quantize_input) first.
  const Result& prepare(SlideSparseLinear& layer, std::int64_t m, const SearchOptions& search,
                        cudaStream_t s) {
    const auto it = results_.find(m);
    if (it != results_.end()) {
      layer.use_algo(m, LinearPath::Dense, it->second.algo);
      return it->second;
    }
    const auto timings = layer.search(m, LinearPath::Dense, search, s);
    const AlgoTiming& best = best_of(timings, what_);
    return results_[m] = Result{best.algo, best.median_us, count_ok(timings)};
  }

 private:
  const char* what_;
  std::map<std::int64_t, Result> results_;
};

// Appends one more error to a cell's error column ("a; b").
void append_error(std::string& error, const std::string& more) {
  error = error.empty() ? more : error + "; " + more;
}


void write_summary(const std::string& path, const std::vector<Cell>& cells, Precision precision,
                   GemmBackendKind sparse_kind, const DeviceInfo& device, double copy_gbs,
                   bool warm_l2) {
  std::string md = "# Kernel benchmark: " + std::string(precision_label(precision)) + " on " +
                   device.name + "\n\n";
  md += "GEMM speedup of each pattern (sparse GEMM: " +
        std::string(sparse_kind == GemmBackendKind::CutlassSparse
                        ? "our CUTLASS kernel, its time including the dequantizing epilogue"
                        : "cuSPARSELt") +
        ") over tuned cuBLASLt dense on the same pruned quantized "
        "weights (same run); in brackets the whole layer (quantize(+lift) → GEMM → dequantize) "
        "against the faster dense layer (cuBLASLt + dequantize kernel, or for FP8 on cc 9.0 "
        "cuBLASLt with the dequantization in its epilogue). " +
        std::string(warm_l2 ? "Timed back to back, with whatever L2 still held (--warm-l2). "
                            : "L2 flushed before every timed run: weights and activations come "
                              "from device memory, as inside a model. ") +
        "Device-to-device copy bandwidth in this run: " + format_double(copy_gbs, 0) + " GB/s.\n\n";
  std::vector<std::string> patterns;
  for (const auto& c : cells)
    if (std::find(patterns.begin(), patterns.end(), c.pattern.zeros_name()) == patterns.end())
      patterns.push_back(c.pattern.zeros_name());
  md += "| model | layer | N | K | M | dense µs |";
  for (const auto& p : patterns) md += " " + Pattern::parse(p).display_name() + " |";
  md += "\n|---|---|---|---|---|---|";
  for (std::size_t i = 0; i < patterns.size(); ++i) md += "---|";
  md += "\n";
  std::map<std::tuple<std::string, std::string, std::int64_t>, std::vector<const Cell*>> rows;
  std::vector<std::tuple<std::string, std::string, std::int64_t>> order;
  for (const auto& c : cells) {
    auto key = std::make_tuple(c.shape.model, c.shape.layer, c.m);
    if (!rows.count(key)) order.push_back(key);
    rows[key].push_back(&c);
  }
  for (const auto& key : order) {
    const auto& group = rows[key];
    const Cell& first = *group.front();
    md += "| " + first.shape.model + " | " + first.shape.layer + " | " +
          std::to_string(first.shape.n) + " | " + std::to_string(first.shape.k) + " | " +
          std::to_string(first.m) + " | " + fmt_us(first.dense_gemm_us) + " |";
    for (const auto& p : patterns) {
      const Cell* c = nullptr;
      for (const Cell* g : group)
        if (g->pattern.zeros_name() == p) c = g;
      if (!c) {
        md += " |";
      } else if (c->status != "passed") {
        md += " " + c->status + " |";
      } else {
        md += " " + format_double(c->dense_gemm_us / c->sparse_gemm_us, 2) + "x (" +
              format_double(c->best_dense_layer_us() / c->sparse_layer_us, 2) + "x) |";
      }
    }
    md += "\n";
  }
  // What the layer's Auto dispatch makes of it: dense wherever its GEMM measured faster.
  int dispatched_dense = 0, measured = 0;
  double worst_auto = NAN, fallback_mb = 0;
  for (const auto& c : cells) {
    if (c.status != "passed" || std::isnan(c.dense_gemm_us) || std::isnan(c.sparse_gemm_us))
      continue;
    ++measured;
    const bool dense = c.dense_gemm_us < c.sparse_gemm_us;
    dispatched_dense += dense;
    const double best_dense = c.best_dense_layer_us();
    const double auto_speedup = best_dense / (dense ? best_dense : c.sparse_layer_us);
    if (std::isnan(worst_auto) || auto_speedup < worst_auto) worst_auto = auto_speedup;
    if (dense && !std::isnan(c.dense_fallback_mb))
      fallback_mb = std::max(fallback_mb, c.dense_fallback_mb);
  }
  if (measured > 0)
    md += "\nWith the layer's Auto dispatch (dense where the dense GEMM measured faster), " +
          std::to_string(dispatched_dense) + " of " + std::to_string(measured) +
          " cells run dense; the lowest whole-layer speedup over dense is then " +
          format_double(worst_auto, 2) + "x (`speedup_auto`). The dense fallback keeps a dense " +
          "copy of those layers' weights: up to " + format_double(fallback_mb, 1) +
          " MB per layer here (`dense_fallback_MB`).\n";
  std::vector<const Cell*> failed;
  for (const auto& c : cells)
    if (c.status == "failed") failed.push_back(&c);
  if (!failed.empty()) {
    md += "\n## Failed cells\n\n";
    for (const Cell* c : failed)
      md += "- " + c->shape.model + " " + c->shape.layer + " M=" + std::to_string(c->m) + " " +
            c->pattern.zeros_name() + ": " + c->error + "\n";
  }
  write_file_atomic(path, md);
}

// Device bytes a cell's activations need at M tokens (X and Y in 16 bits, the quantized copies
// of X for both paths with the largest lift γ = 2, the 32-bit accumulators, and the fused dense
// layer's quantized X and BF16 Y): an M that cannot fit is recorded as failed up front instead
// of sizing every buffer of the sweep for it.
std::uint64_t activation_bytes(std::int64_t m, const BenchShape& shape) {
  const auto um = static_cast<std::uint64_t>(m);
  const auto n = static_cast<std::uint64_t>(shape.n), k = static_cast<std::uint64_t>(shape.k);
  return um * (2 * k + 2 * n + 3 * 2 * k + 4 * n + k + 2 * n);
}

std::uint64_t free_device_bytes() {
  std::size_t free = 0, total = 0;
  SLIDESPARSE_CHECK_CUDA(cudaMemGetInfo(&free, &total));
  return free;
}

}  // namespace

void run_kernel_sweep(const KernelSweepOptions& opt) {
  std::string why;
  if (!cuda_device_available(&why)) throw DeviceError("no CUDA device: " + why);
  const DeviceInfo device = query_device();
  std::vector<std::int64_t> ms = parse_int_list(opt.ms, "--M");
  if (opt.large_m) {
    ms.push_back(32768);
    ms.push_back(65536);
  }
  std::vector<Pattern> patterns;
  for (const auto& p : split_list(opt.patterns)) patterns.push_back(Pattern::parse(p));
  std::vector<Precision> precisions;
  for (const auto& d : split_list(opt.dtypes)) precisions.push_back(parse_precision(d));
  const auto shapes = bench_shapes(split_list(opt.models));
  if (opt.reps < 3) throw InvalidArgument("--reps must be at least 3");
  if (opt.sparse_backend != "cusparselt" && opt.sparse_backend != "cutlass" &&
      opt.sparse_backend != "both" && opt.sparse_backend != "all")
    throw InvalidArgument("--sparse-backend must be cusparselt, cutlass, both or all, not '" +
                          opt.sparse_backend + "'");
  const bool with_cutlass = opt.sparse_backend == "both" || opt.sparse_backend == "all";
  const bool with_lift = opt.sparse_backend == "all";
  const GemmBackendKind sparse_kind = opt.sparse_backend == "cutlass"
                                          ? GemmBackendKind::CutlassSparse
                                          : GemmBackendKind::CusparseLt;

  CudaStream stream;
  const double copy_gbs = measure_copy_bandwidth_gbs(stream.get());
  std::printf("device %s, copy bandwidth %.0f GB/s\n", device.name.c_str(), copy_gbs);
  GemmContext ctx;
  std::unique_ptr<TuningDb> tuning;
  if (!opt.tuning.empty())
    tuning = std::make_unique<TuningDb>(
        TuningDb::open_or_create(opt.tuning, current_tuning_key(device)));
  SearchOptions search;
  search.reps = std::max(5, opt.reps / 2);
  search.flush_l2 = !opt.warm_l2;
  std::optional<L2Flusher> flusher;
  if (!opt.warm_l2) flusher.emplace();
  L2Flusher* l2 = flusher ? &*flusher : nullptr;
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  make_dir(opt.out);

  for (Precision precision : precisions) {
    const std::string folder = make_dir(opt.out + "/" + result_folder_name(device, precision));
    CsvTable table(folder + "/kernel_bench.csv", columns(with_cutlass));
    std::vector<Cell> cells;
    const std::string unsupported = precision_unsupported_reason(device, precision);
    const DType activation = precision == Precision::FP16 ? DType::F16 : DType::BF16;
    auto emit = [&]() {
      table = CsvTable(folder + "/kernel_bench.csv", columns(with_cutlass));
      for (const Cell& c : cells) {
        double t24 = NAN;
        for (const Cell& o : cells)
          if (o.shape.model == c.shape.model && o.shape.layer == c.shape.layer && o.m == c.m &&
              !o.pattern.is_infinite() && o.pattern.length() == 4)
            t24 = o.sparse_gemm_us;
        table.add_row(cell_row(c, precision, sparse_kind, t24, copy_gbs, with_cutlass));
      }
      table.save();
      write_summary(folder + "/kernel_bench.md", cells, precision, sparse_kind, device, copy_gbs,
                    opt.warm_l2);
    };

    for (const BenchShape& shape : shapes) {
      const auto w =
          random_matrix(shape.n, shape.k, opt.seed + static_cast<std::uint64_t>(shape.n));
      // Leave a quarter of the free memory to weights, workspaces and the libraries.
      const std::uint64_t budget = free_device_bytes() / 4 * 3;
      const auto fits = [&](std::int64_t m) { return activation_bytes(m, shape) <= budget; };
      std::int64_t shape_max_m = 1;
      for (std::int64_t m : ms)
        if (fits(m)) shape_max_m = std::max(shape_max_m, m);
      std::vector<std::uint16_t> x_host(static_cast<std::size_t>(shape_max_m * shape.k));
      {
        const auto xf = random_matrix(shape_max_m, shape.k, opt.seed + 7);
        for (std::size_t i = 0; i < x_host.size(); ++i)
          x_host[i] = activation == DType::F16 ? float_to_fp16(xf[i]) : float_to_bf16(xf[i]);
      }
      std::optional<DeviceBuffer<std::uint16_t>> x, y;
      DenseSearchedOncePerM cublaslt_dense("cuBLASLt"), cutlass_dense("CUTLASS dense"),
          fused_dense("cuBLASLt fused");
      for (const Pattern& pattern : patterns) {
        std::vector<Cell> pattern_cells;
        for (std::int64_t m : ms) {
          Cell c;
          c.shape = shape;
          c.pattern = pattern;
          c.m = m;
          if (!unsupported.empty()) {
            c.status = "skipped";
            c.error = unsupported;
          } else if (!fits(m)) {
            c.status = "failed";
            c.error = "out of memory: M = " + std::to_string(m) + " needs about " +
                      std::to_string(activation_bytes(m, shape) >> 30) + " GiB of activations, " +
                      std::to_string(budget >> 30) + " GiB are available";
          }
          pattern_cells.push_back(c);
        }
        std::size_t finished = 0;  // cells of this pattern already in `cells` (and saved)
        const auto finish = [&](const Cell& c) {
          cells.push_back(c);
          ++finished;
          if (!opt.tune_only) emit();
        };
        // Records the cells not reached, saves, and stops the sweep: the GPU is unusable.
        const auto stop_on_lost_context = [&](const std::string& lost, const std::string& where) {
          for (std::size_t i = finished; i < pattern_cells.size(); ++i) {
            Cell c = pattern_cells[i];
            c.status = "failed";
            c.error = "not run: the CUDA context was lost (" + lost + ") after " + where;
            finish(c);
          }
          if (tuning) tuning->save(opt.tuning);
          throw DeviceError("kernel sweep stopped: the CUDA context was lost (" + lost +
                            ") after " + where + "; results so far are saved in " + folder);
        };
        if (!unsupported.empty()) {
          for (const Cell& c : pattern_cells) finish(c);
          continue;
        }
        std::string lost;  // set when a failure left the CUDA context unusable
        std::string lost_where;
        try {
          if (!x) {
            x.emplace(x_host.size());
            x->upload(x_host.data(), x_host.size());
            y.emplace(static_cast<std::size_t>(shape_max_m * shape.n));
          }
          const std::string name = shape.model + "." + shape.layer;
          const PackedLinear packed = pack_linear(w.data(), shape.n, shape.k, nullptr, precision,
                                                  pattern, PruneMode::Magnitude, name, threads);
          LinearOptions lo;
          lo.activation = activation;
          lo.max_m = shape_max_m;
          lo.sparse_backend = sparse_kind;
          lo.dense_backend = GemmBackendKind::CublasLtDense;  // the dense_* columns' meaning
          SlideSparseLinear layer(ctx, packed, lo);
          // FP8 on cc 9.0: a dense-only layer with the dequantization in cuBLASLt's epilogue,
          // so the layer speedups take the faster dense layer. Where it cannot be built, its
          // columns stay empty and the reason goes to the error column.
          std::unique_ptr<SlideSparseLinear> fused_dense_layer;
          std::string fused_dense_error;
          if (precision == Precision::FP8 && ctx.cc_major() == 9 && ctx.cc_minor() == 0) {
            try {
              LinearOptions fo = lo;
              fo.dense_backend = GemmBackendKind::CublasLtFused;
              fo.build_sparse = false;
              fused_dense_layer = std::make_unique<SlideSparseLinear>(ctx, packed, fo);
            } catch (const Error& e) {
              fused_dense_error = std::string("cublaslt_fused: ") + e.what();
            }
          }
          // --sparse-backend both: a second, sparse-only layer on the CUTLASS GEMM. Where it
          // cannot be built (BF16/FP16, not cc 9.0, no backend in this build) its columns stay
          // empty and the reason goes to the error column.
          // And a dense-only layer on the CUTLASS dense GEMM (the same fused epilogue): the fair
          // baseline of the CUTLASS sparse GEMM.
          // And a sparse-only layer on its lifting variant (quantize, then lift in the GEMM).
          std::unique_ptr<SlideSparseLinear> cutlass_layer, cutlass_dense_layer, cutlass_lift_layer;
          std::string cutlass_error;
          if (with_cutlass) {
            try {
              LinearOptions co = lo;
              co.sparse_backend = GemmBackendKind::CutlassSparse;
              co.build_dense = false;
              cutlass_layer = std::make_unique<SlideSparseLinear>(ctx, packed, co);
              if (with_lift) {
                co.sparse_backend = GemmBackendKind::CutlassSparseLift;
                cutlass_lift_layer = std::make_unique<SlideSparseLinear>(ctx, packed, co);
              }
              LinearOptions cdo = lo;
              cdo.dense_backend = GemmBackendKind::CutlassDense;
              cdo.build_sparse = false;
              cutlass_dense_layer = std::make_unique<SlideSparseLinear>(ctx, packed, cdo);
            } catch (const Error& e) {
              cutlass_error = std::string("cutlass: ") + e.what();
            }
          }
          for (Cell& c : pattern_cells) {
            if (c.status == "failed") {  // did not fit: recorded as it is
              finish(c);
              continue;
            }
            try {
              const std::int64_t m = c.m;
              const void* xp = x->get();
              void* yp = y->get();
              cudaStream_t s = stream.get();
              // Sparse: search on the layer's own quantized lifted input.
              layer.quantize_input(xp, m, LinearPath::Sparse, s);
              const auto sparse = layer.search(m, LinearPath::Sparse, search, s);
              const AlgoTiming& best_sparse = best_of(
                  sparse, sparse_kind == GemmBackendKind::CutlassSparse ? "CUTLASS" : "cuSPARSELt");
              c.sparse_algo = best_sparse.algo.to_json().dump();
              c.sparse_candidates = count_ok(sparse);
              c.sparse_gemm_us =
                  opt.tune_only ? best_sparse.median_us
                                : time_median_us([&] { layer.run_gemm(m, LinearPath::Sparse, s); },
                                                 s, 3, opt.reps, l2);
              layer.quantize_input(xp, m, LinearPath::Dense, s);
              const auto& dense = cublaslt_dense.prepare(layer, m, search, s);
              c.dense_algo = dense.algo.to_json().dump();
              c.dense_candidates = dense.candidates;
              c.dense_gemm_us =
                  opt.tune_only ? dense.search_us
                                : time_median_us([&] { layer.run_gemm(m, LinearPath::Dense, s); },
                                                 s, 3, opt.reps, l2);
              if (tuning) {
                tuning->put({backend_name(sparse_kind), precision_name(precision),
                             pattern.zeros_name(), layer.n_gemm(), layer.k_gemm(LinearPath::Sparse),
                             m, best_sparse.algo.to_json(), c.sparse_gemm_us});
                tuning->put({"cublaslt", precision_name(precision), "dense", layer.n_gemm(),
                             layer.k_gemm(LinearPath::Dense), m, dense.algo.to_json(),
                             c.dense_gemm_us});
              }
              if (cutlass_layer) {
                try {
                  cutlass_layer->quantize_input(xp, m, LinearPath::Sparse, s);
                  const auto timings = cutlass_layer->search(m, LinearPath::Sparse, search, s);
                  const AlgoTiming& best = best_of(timings, "CUTLASS");
                  c.cutlass_algo = best.algo.to_json().dump();
                  c.cutlass_gemm_us =
                      opt.tune_only
                          ? best.median_us
                          : time_median_us(
                                [&] { cutlass_layer->run_gemm(m, LinearPath::Sparse, s); }, s, 3,
                                opt.reps, l2);
                  if (!opt.tune_only)
                    c.cutlass_layer_us = time_median_us(
                        [&] { cutlass_layer->forward(xp, m, yp, s, LinearPath::Sparse); }, s, 3,
                        opt.reps, l2);
                  if (tuning)
                    tuning->put({backend_name(GemmBackendKind::CutlassSparse),
                                 precision_name(precision), pattern.zeros_name(),
                                 cutlass_layer->n_gemm(), cutlass_layer->k_gemm(LinearPath::Sparse),
                                 m, best.algo.to_json(), c.cutlass_gemm_us});
                } catch (const Error& e) {
                  c.error = std::string("cutlass: ") + e.what();
                  if (!cuda_context_lost().empty()) throw;  // the whole cell is lost
                }
              }
              if (cutlass_lift_layer) {
                try {
                  SlideSparseLinear& cl = *cutlass_lift_layer;
                  cl.quantize_input(xp, m, LinearPath::Sparse, s);
                  const auto timings = cl.search(m, LinearPath::Sparse, search, s);
                  const AlgoTiming& best = best_of(timings, "CUTLASS lifting");
                  c.cutlass_lift_algo = best.algo.to_json().dump();
                  c.cutlass_lift_gemm_us =
                      opt.tune_only ? best.median_us
                                    : time_median_us([&] { cl.run_gemm(m, LinearPath::Sparse, s); },
                                                     s, 3, opt.reps, l2);
                  if (!opt.tune_only)
                    c.cutlass_lift_layer_us = time_median_us(
                        [&] { cl.forward(xp, m, yp, s, LinearPath::Sparse); }, s, 3, opt.reps, l2);
                  if (tuning)
                    tuning->put({backend_name(GemmBackendKind::CutlassSparseLift),
                                 precision_name(precision), pattern.zeros_name(), cl.n_gemm(),
                                 cl.k_gemm(LinearPath::Sparse), m, best.algo.to_json(),
                                 c.cutlass_lift_gemm_us});
                } catch (const Error& e) {
                  append_error(c.error, std::string("cutlass_lift: ") + e.what());
                  if (!cuda_context_lost().empty()) throw;  // the whole cell is lost
                }
              }
              if (cutlass_dense_layer) {
                try {
                  SlideSparseLinear& cd = *cutlass_dense_layer;
                  cd.quantize_input(xp, m, LinearPath::Dense, s);
                  const auto& searched = cutlass_dense.prepare(cd, m, search, s);
                  c.cutlass_dense_us =
                      opt.tune_only ? searched.search_us
                                    : time_median_us([&] { cd.run_gemm(m, LinearPath::Dense, s); },
                                                     s, 3, opt.reps, l2);
                  if (tuning)
                    tuning->put({backend_name(GemmBackendKind::CutlassDense),
                                 precision_name(precision), "dense", cd.n_gemm(),
                                 cd.k_gemm(LinearPath::Dense), m, searched.algo.to_json(),
                                 c.cutlass_dense_us});
                } catch (const Error& e) {
                  append_error(c.error, std::string("cutlass_dense: ") + e.what());
                  if (!cuda_context_lost().empty()) throw;  // the whole cell is lost
                }
              }
              if (fused_dense_layer) {
                try {
                  SlideSparseLinear& fd = *fused_dense_layer;
                  fd.quantize_input(xp, m, LinearPath::Dense, s);
                  const auto& searched = fused_dense.prepare(fd, m, search, s);
                  c.dense_fused_algo = searched.algo.to_json().dump();
                  c.dense_fused_gemm_us =
                      opt.tune_only ? searched.search_us
                                    : time_median_us([&] { fd.run_gemm(m, LinearPath::Dense, s); },
                                                     s, 3, opt.reps, l2);
                  if (tuning)
                    tuning->put({backend_name(GemmBackendKind::CublasLtFused),
                                 precision_name(precision), "dense", fd.n_gemm(),
                                 fd.k_gemm(LinearPath::Dense), m, searched.algo.to_json(),
                                 c.dense_fused_gemm_us});
                  if (!opt.tune_only)
                    c.dense_fused_layer_us = time_median_us(
                        [&] { fd.forward(xp, m, yp, s, LinearPath::Dense); }, s, 3, opt.reps, l2);
                } catch (const Error& e) {
                  append_error(c.error, std::string("cublaslt_fused: ") + e.what());
                  if (!cuda_context_lost().empty()) throw;  // the whole cell is lost
                }
              }
              for (const std::string* built : {&cutlass_error, &fused_dense_error})
                if (!built->empty())  // a layer that could not be built
                  append_error(c.error, *built);
              c.dense_fallback_mb = static_cast<double>(layer.dense_weight_bytes()) / 1e6;
              if (!opt.tune_only) {
                c.sparse_layer_us = time_median_us(
                    [&] { layer.forward(xp, m, yp, s, LinearPath::Sparse); }, s, 3, opt.reps, l2);
                c.dense_layer_us = time_median_us(
                    [&] { layer.forward(xp, m, yp, s, LinearPath::Dense); }, s, 3, opt.reps, l2);
                c.lift_us = time_median_us(
                    [&] { layer.quantize_input(xp, m, LinearPath::Sparse, s); }, s, 3, opt.reps, l2);
                // Bytes the kernel must move: X read once (BF16/F16), the lifted row written
                // at its padded width, and one float scale per token where it quantizes.
                const double scale_bytes = precision_is_quantized(precision) ? 4.0 : 0.0;
                const double bytes =
                    static_cast<double>(m) *
                    (static_cast<double>(shape.k) * static_cast<double>(dtype_size(activation)) +
                     static_cast<double>(layer.k_gemm(LinearPath::Sparse)) *
                         static_cast<double>(dtype_size(precision_storage(precision))) +
                     scale_bytes);
                c.lift_gbs = bytes / (c.lift_us * 1e3);
              }
            } catch (const std::exception& e) {
              c.status = "failed";
              c.error = e.what();
              lost = cuda_context_lost();
            }
            std::printf("%-12s %-8s %-6s %-5s M=%-6lld dense %9s us  sparse %9s us  %s\n",
                        shape.model.c_str(), shape.layer.c_str(), precision_name(precision),
                        pattern.zeros_name().c_str(), static_cast<long long>(c.m),
                        fmt_us(c.dense_gemm_us).c_str(), fmt_us(c.sparse_gemm_us).c_str(),
                        c.status == "passed" ? fmt_ratio(c.dense_gemm_us / c.sparse_gemm_us).c_str()
                                             : c.error.c_str());
            if (with_cutlass && c.status == "passed")
              std::printf("%-12s cutlass %9s us (%s)  cutlass_dense %9s us  layers: cutlass %s us, "
                          "lift in GEMM %s us, best dense %s us%s%s\n",
                          "", fmt_us(c.cutlass_gemm_us).c_str(),
                          fmt_ratio(c.dense_gemm_us / c.cutlass_gemm_us).c_str(),
                          fmt_us(c.cutlass_dense_us).c_str(), fmt_us(c.cutlass_layer_us).c_str(),
                          fmt_us(c.cutlass_lift_layer_us).c_str(),
                          fmt_us(c.best_dense_layer_us()).c_str(), c.error.empty() ? "" : "  ",
                          c.error.c_str());
            std::fflush(stdout);
            finish(c);
            if (!lost.empty()) {
              lost_where = shape.model + " " + shape.layer + " " + pattern.zeros_name() +
                           " M=" + std::to_string(c.m);
              break;
            }
          }
        } catch (const std::exception& e) {
          // The layer could not be built (out of memory, unsupported shape): every cell of
          // this pattern not yet recorded fails with its error.
          for (std::size_t i = finished; i < pattern_cells.size(); ++i) {
            Cell c = pattern_cells[i];
            c.status = "failed";
            c.error = e.what();
            finish(c);
          }
          lost = cuda_context_lost();
          lost_where = shape.model + " " + shape.layer + " " + pattern.zeros_name();
          std::printf("%s %s %s: failed: %s\n", shape.model.c_str(), shape.layer.c_str(),
                      pattern.zeros_name().c_str(), e.what());
        }
        if (!lost.empty()) stop_on_lost_context(lost, lost_where);
      }
    }
    if (tuning) {
      tuning->save(opt.tuning);
      std::printf("saved the tuning database %s\n", opt.tuning.c_str());
    }
    if (!opt.tune_only)
      std::printf("wrote %s/kernel_bench.csv and kernel_bench.md\n", folder.c_str());
  }
}

}  // namespace slidesparse::cli
