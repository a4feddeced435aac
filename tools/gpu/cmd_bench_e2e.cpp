// `slidesparse bench e2e MODEL --stage prefill|decode --M LIST --backend dense|sparse`: the
// whole model on the GPU model runner, one CSV row per M (docs/results-format.md, e2e).
//   prefill: M tokens per forward: one M-token prompt for M <= 1024, else M/1024 prompts of
//            1024 tokens; random ids (fixed seed); median of timed forwards after warm-up.
//   decode:  M sequences with 16-token prompts, 256 tokens generated per request; the steps
//            replay the batch's CUDA graph and are timed as the generation loop runs them.
// The gemm/attention split comes from CUDA events in extra uncaptured passes; other_ms is the
// measured time minus those two. --attention picks the prefill attention (cuDNN's fused SDPA or
// the runner's own kernel); the CSV's attention column says which one the measured stage ran.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gpu_commands.hpp"
#include "gpu_common.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/pipeline/csv.hpp"
#include "slidesparse/pipeline/plan_gemms.hpp"
#include "slidesparse/runner/gpu_model.hpp"

namespace slidesparse::cli {

namespace {

constexpr std::int64_t kPrefillPromptTokens = 1024;  // prompt length for M >= 1024
constexpr std::int64_t kDecodePromptTokens = 16;
constexpr std::int64_t kDecodeOutputTokens = 256;  // per request
constexpr int kTimingSteps = 4;                    // extra eager steps for the split

struct E2eOptions {
  std::string model, stage = "prefill", ms = "512", backend = "sparse", pattern, dtype = "int8";
  std::string out = "results", tuning;
  int warmup = 2, reps = 5;
  std::uint64_t seed = 1;
  bool unfused = false;    // norms and activation not fused into the quantize(+lift)
  bool no_search = false;  // without --tuning: library defaults instead of a search per M
  std::string sparse_backend = "cusparselt";
  bool dense_fallback = false;  // sparse: dense where dense measured faster (GpuModelOptions)
  std::string dense_gemm;  // "" = the layer's choice (plain cuBLASLt without a tuning database)
  std::string attention;  // "" = the runner's default (cudnn when built with cuDNN)
};

// The CSV's backend: dense, sparse (cuSPARSELt), sparse-cutlass (our kernel) or sparse-auto (the
// faster of the two per linear and M), so rows of the sparse GEMMs keep apart; a dense GEMM asked
// for by name is named too (dense-cublaslt, ...), so the best dense can be found among them. The
// pipeline's plans and the report spell them with the same function.
std::string backend_label(const E2eOptions& opt) {
  using pipeline::GemmSide;
  if (opt.backend == "sparse")
    return pipeline::e2e_backend_label(GemmSide::Sparse, opt.sparse_backend, opt.dense_fallback);
  return pipeline::e2e_backend_label(
      GemmSide::Dense, opt.dense_gemm.empty() ? pipeline::default_gemm(GemmSide::Dense)
                                              : opt.dense_gemm,
      false);
}

// The attention asked for the stage: decode steps always run the runner's decode kernel.
std::string attention_label(const E2eOptions& opt) {
  if (opt.stage == "decode") return "own";
  return opt.attention.empty() ? runner::prefill_attention_name(runner::default_prefill_attention())
                               : opt.attention;
}

const std::vector<std::string> kColumns = {
    "model",          "stage",        "backend", "pattern",      "dtype",    "attention", "M",
    "requests_per_s", "tokens_per_s", "gemm_ms", "attention_ms", "other_ms", "status",    "error"};

struct Row {
  std::int64_t m = 0;
  std::string attention;  // the attention the measured stage ran: cudnn or own
  double requests_per_s = NAN, tokens_per_s = NAN, gemm_ms = NAN, attention_ms = NAN,
         other_ms = NAN;
  std::string status = "passed", error;
};

// A row that did not run says the attention it was asked for.
std::string row_attention(const E2eOptions& opt, const Row& r) {
  return r.attention.empty() ? attention_label(opt) : r.attention;
}

std::string cell(double v, int decimals) { return std::isnan(v) ? "" : format_double(v, decimals); }

std::string model_name(const std::string& model) {
  std::string path = model;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Prompts of a prefill forward of M tokens.
std::vector<std::int64_t> prefill_prompt_lengths(std::int64_t m) {
  if (m <= kPrefillPromptTokens) return {m};
  SLIDESPARSE_REQUIRE(m % kPrefillPromptTokens == 0, InvalidArgument,
                      "prefill M " + std::to_string(m) + " is above 1024 and not a multiple of it");
  return std::vector<std::int64_t>(static_cast<std::size_t>(m / kPrefillPromptTokens),
                                   kPrefillPromptTokens);
}

std::vector<std::vector<int>> random_prompts(const std::vector<std::int64_t>& lengths,
                                             std::int64_t vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> id(0, static_cast<int>(vocab - 1));
  std::vector<std::vector<int>> prompts;
  for (std::int64_t length : lengths) {
    std::vector<int> p(static_cast<std::size_t>(length));
    for (int& t : p) t = id(rng);
    prompts.push_back(std::move(p));
  }
  return prompts;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void split_time(Row& row, const runner::GpuTimings& split, double measured_ms) {
  row.gemm_ms = split.gemm_ms;
  row.attention_ms = split.attention_ms;
  row.other_ms = std::max(0.0, measured_ms - split.gemm_ms - split.attention_ms);
}

void measure_prefill(runner::GpuModel& model, Row& row, const E2eOptions& opt) {
  const auto lengths = prefill_prompt_lengths(row.m);
  const auto prompts = random_prompts(lengths, model.config().vocab, opt.seed);
  model.set_timing(false);
  for (int i = 0; i < opt.warmup; ++i) model.prefill(prompts);
  std::vector<double> ms;
  for (int i = 0; i < opt.reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    model.prefill(prompts);
    ms.push_back(seconds_since(start) * 1e3);
  }
  const double forward_ms = median(ms);
  model.set_timing(true);
  model.prefill(prompts);
  const runner::GpuTimings split = model.last_timings();
  model.set_timing(false);
  row.tokens_per_s = static_cast<double>(row.m) / (forward_ms * 1e-3);
  row.requests_per_s = static_cast<double>(lengths.size()) / (forward_ms * 1e-3);
  split_time(row, split, forward_ms);
  row.attention = runner::prefill_attention_name(model.prefill_attention());
}

void measure_decode(runner::GpuModel& model, Row& row, const E2eOptions& opt) {
  const std::vector<std::int64_t> lengths(static_cast<std::size_t>(row.m), kDecodePromptTokens);
  const auto prompts = random_prompts(lengths, model.config().vocab, opt.seed);
  model.set_timing(false);
  // Warm-up: one short generation captures the batch's graph and builds every plan.
  std::vector<int> next = model.prefill(prompts);
  for (int i = 0; i < 2; ++i) next = model.decode_step(next);
  // The measured requests: the first output token comes from prefill, the other 255 are steps.
  next = model.prefill(prompts);
  const int steps = static_cast<int>(kDecodeOutputTokens) - 1;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) next = model.decode_step(next);
  const double step_ms = seconds_since(start) * 1e3 / steps;
  // The split: a few eager steps with events, at the end of the same requests.
  model.set_timing(true);
  runner::GpuTimings split;
  for (int i = 0; i < kTimingSteps; ++i) {
    next = model.decode_step(next);
    const runner::GpuTimings t = model.last_timings();
    split.gemm_ms += t.gemm_ms / kTimingSteps;
    split.attention_ms += t.attention_ms / kTimingSteps;
    split.other_ms += t.other_ms / kTimingSteps;
  }
  model.set_timing(false);
  row.tokens_per_s = static_cast<double>(row.m) / (step_ms * 1e-3);
  row.requests_per_s =
      static_cast<double>(row.m) / (step_ms * 1e-3) / static_cast<double>(kDecodeOutputTokens);
  split_time(row, split, step_ms);
  row.attention = runner::prefill_attention_name(runner::PrefillAttention::Own);  // decode kernel
}

struct Output {
  std::string csv_path, md_path;
  std::vector<std::vector<std::string>> kept;  // rows of earlier runs with other keys
};

std::vector<std::string> row_cells(const E2eOptions& opt, const std::string& name,
                                   const std::string& pattern, const Row& r) {
  return {name,
          opt.stage,
          backend_label(opt),
          pattern,
          opt.dtype,
          row_attention(opt, r),
          std::to_string(r.m),
          cell(r.requests_per_s, 3),
          cell(r.tokens_per_s, 1),
          cell(r.gemm_ms, 4),
          cell(r.attention_ms, 4),
          cell(r.other_ms, 4),
          r.status,
          r.error};
}

void save(const Output& out, const E2eOptions& opt, const std::string& name,
          const std::string& pattern, const std::vector<Row>& rows, const DeviceInfo& device) {
  CsvTable table(out.csv_path, kColumns);
  for (const auto& cells : out.kept) table.add_row(cells);
  for (const Row& r : rows) table.add_row(row_cells(opt, name, pattern, r));
  table.save();
  std::string md = "# End-to-end " + opt.stage + ": " + name + ", " + backend_label(opt) + " (" +
                   pattern + "), " + opt.dtype + " on " + device.name + "\n\n";
  md += opt.stage == "prefill"
            ? "M tokens per forward: one M-token prompt up to 1024, else M/1024 prompts of 1024 "
              "tokens (random ids). Median of " +
                  std::to_string(opt.reps) + " forwards after " + std::to_string(opt.warmup) +
                  " warm-up ones, prompt upload and sampled-token readback included.\n\n"
            : "M concurrent requests of a 16-token prompt and 256 generated tokens (one from "
              "prefill, 255 decode steps replayed from the batch's CUDA graph, each reading its "
              "tokens back); requests/s = steps/s × M / 256.\n\n";
  md +=
      "gemm_ms and attention_ms come from CUDA events in an extra uncaptured pass; other_ms is "
      "the measured time minus both.\n\n";
  md += std::string("GEMM algorithms: ") +
        (!opt.tuning.empty() ? "from the tuning database " + opt.tuning
         : opt.no_search     ? std::string("the libraries' defaults (--no-search)")
                             : std::string("searched once per M on the first layer, reused by "
                                               "the layers of the same shape")) +
        ". Norms and gated activation " + (opt.unfused ? "apart from" : "fused into") +
        " the linear layers' quantize(+lift).\n\n";
  if (opt.sparse_backend == "auto" && opt.backend == "sparse")
    md +=
        "Sparse GEMM auto: every linear keeps cuSPARSELt and, where it can run, the CUTLASS "
        "sparse GEMM on the same slid weights, and runs the one measured faster for the M "
        "(cuSPARSELt where neither was measured; the memory of the second copy is printed at "
        "load).\n\n";
  if (opt.dense_fallback)
    md += "Dense fallback: every linear also keeps its dense weights and runs dense for the M "
          "where dense measured faster (the memory it costs is printed at load).\n\n";
  md +=
      "Attention: `cudnn` is cuDNN's fused SDPA, `own` the runner's kernels (decode steps always "
      "run the runner's decode kernel; a prefill shape cuDNN refuses falls back to `own`).\n\n";
  md += "| M | attention | tokens/s | requests/s | gemm ms | attention ms | other ms | status |\n";
  md += "|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows)
    md += "| " + std::to_string(r.m) + " | " + row_attention(opt, r) + " | " +
          cell(r.tokens_per_s, 1) + " | " + cell(r.requests_per_s, 3) + " | " + cell(r.gemm_ms, 3) +
          " | " + cell(r.attention_ms, 3) + " | " + cell(r.other_ms, 3) + " | " + r.status +
          (r.error.empty() ? "" : ": " + r.error) + " |\n";
  write_file_atomic(out.md_path, md);
}

// Rows of an existing CSV whose key this run does not measure (a rerun replaces its rows).
std::vector<std::vector<std::string>> kept_rows(const std::string& path, const E2eOptions& opt,
                                                const std::string& name, const std::string& pattern,
                                                const std::vector<std::int64_t>& ms) {
  std::vector<std::vector<std::string>> kept;
  if (access(path.c_str(), F_OK) != 0) return kept;
  const pipeline::CsvFile csv = pipeline::CsvFile::read(path);
  for (std::size_t r = 0; r < csv.rows(); ++r) {
    // Files from before the attention column ran the runner's own kernel.
    const std::string attention = csv.has_column("attention") ? csv.at(r, "attention") : "own";
    bool same = csv.at(r, "model") == name && csv.at(r, "stage") == opt.stage &&
                csv.at(r, "backend") == backend_label(opt) && csv.at(r, "pattern") == pattern &&
                csv.at(r, "dtype") == opt.dtype && attention == attention_label(opt);
    same = same && std::find(ms.begin(), ms.end(), static_cast<std::int64_t>(csv.number(r, "M"))) !=
                       ms.end();
    if (same) continue;
    std::vector<std::string> cells;
    for (const auto& column : kColumns)
      cells.push_back(column == "attention"    ? attention
                      : csv.has_column(column) ? csv.at(r, column)
                                               : "");
    kept.push_back(std::move(cells));
  }
  return kept;
}

void run_bench_e2e(const E2eOptions& opt) {
  SLIDESPARSE_REQUIRE(opt.stage == "prefill" || opt.stage == "decode", InvalidArgument,
                      "--stage must be prefill or decode, not '" + opt.stage + "'");
  SLIDESPARSE_REQUIRE(opt.reps >= 1 && opt.warmup >= 0, InvalidArgument,
                      "--reps must be >= 1 and --warmup >= 0");
  runner::GpuModelOptions options;
  options.precision = parse_precision(opt.dtype);
  options.backend = runner::parse_gpu_backend(opt.backend);
  if (options.backend == runner::GpuBackend::Sparse) {
    SLIDESPARSE_REQUIRE(!opt.pattern.empty(), InvalidArgument,
                        "--backend sparse needs --pattern (e.g. 2_8)");
    options.pattern = Pattern::parse(opt.pattern);
  } else {
    SLIDESPARSE_REQUIRE(opt.pattern.empty(), InvalidArgument,
                        "--pattern goes with --backend sparse (dense runs the unpruned weights)");
    options.pattern = Pattern::infinite();
  }
  const std::string pattern = options.backend == runner::GpuBackend::Dense
                                  ? std::string("dense")
                                  : options.pattern.zeros_name();
  const std::vector<std::int64_t> ms = parse_int_list(opt.ms, "--M");
  std::string why;
  if (!cuda_device_available(&why)) throw DeviceError("no CUDA device: " + why);
  const DeviceInfo device = query_device();
  const std::string name = model_name(opt.model);
  const std::string folder =
      make_dir(make_dir(opt.out) + "/" + result_folder_name(device, options.precision));
  Output out;
  out.csv_path = folder + "/e2e_" + opt.stage + ".csv";
  out.md_path = folder + "/e2e_" + opt.stage + ".md";
  out.kept = kept_rows(out.csv_path, opt, name, pattern, ms);

  std::vector<Row> rows;
  const std::string unsupported = precision_unsupported_reason(device, options.precision);
  if (!unsupported.empty()) {
    for (std::int64_t m : ms) {
      Row r;
      r.m = m;
      r.status = "skipped";
      r.error = unsupported;
      rows.push_back(r);
    }
    save(out, opt, name, pattern, rows, device);
    return;
  }
  std::unique_ptr<TuningDb> tuning;
  if (!opt.tuning.empty()) {
    tuning = std::make_unique<TuningDb>(TuningDb::load(opt.tuning, current_tuning_key(device)));
    options.tuning = tuning.get();
  }
  options.fuse_quantize = !opt.unfused;
  options.sparse_gemm = opt.sparse_backend == "cutlass"        ? GemmBackendKind::CutlassSparse
                        : opt.sparse_backend == "cutlass_lift" ? GemmBackendKind::CutlassSparseLift
                                                               : GemmBackendKind::CusparseLt;
  // Like cutlass, auto names the sparse backend's GEMMs and means nothing to the dense one.
  options.sparse_gemm_auto =
      opt.sparse_backend == "auto" && options.backend == runner::GpuBackend::Sparse;
  if (!opt.dense_gemm.empty()) {
    SLIDESPARSE_REQUIRE(opt.backend == "dense", InvalidArgument,
                        "--dense-gemm goes with --backend dense");
    options.dense_gemm = parse_backend(opt.dense_gemm);
  }
  options.search_untuned = !opt.no_search;
  SLIDESPARSE_REQUIRE(!opt.dense_fallback || opt.backend == "sparse", InvalidArgument,
                      "--dense-fallback goes with --backend sparse");
  options.dense_fallback = opt.dense_fallback;
  if (!opt.attention.empty()) options.attention = runner::parse_prefill_attention(opt.attention);
  // Capacity for one M of the stage.
  const auto capacity = [&](std::int64_t m, runner::GpuModelOptions& o) {
    if (opt.stage == "prefill") {
      const auto lengths = prefill_prompt_lengths(m);
      o.max_tokens = std::max(o.max_tokens, m);
      o.max_sequences =
          std::max<std::int64_t>(o.max_sequences, static_cast<std::int64_t>(lengths.size()));
      o.max_context = std::max(o.max_context, lengths.front());
    } else {
      o.max_tokens = std::max(o.max_tokens, m * kDecodePromptTokens);
      o.max_sequences = std::max(o.max_sequences, m);
      o.max_context = kDecodePromptTokens + kDecodeOutputTokens + kTimingSteps;
    }
  };
  // One model sized for every M; if that does not fit, one model per M (slower to load, but
  // only the M that do not fit fail).
  std::unique_ptr<runner::GpuModel> shared;
  {
    runner::GpuModelOptions all = options;
    all.max_tokens = all.max_sequences = all.max_context = 1;
    bool valid = true;
    for (std::int64_t m : ms) {
      try {
        capacity(m, all);
      } catch (const InvalidArgument&) {
        valid = false;  // reported as that M's failed row below
      }
    }
    if (valid) {
      try {
        shared = std::make_unique<runner::GpuModel>(opt.model, all);
      } catch (const DeviceError& e) {
        if (!cuda_context_lost().empty()) throw;
        std::fprintf(stderr,
                     "slidesparse: one model for every M does not fit (%s); loading "
                     "one per M\n",
                     e.what());
      }
    }
  }
  for (std::size_t i = 0; i < ms.size(); ++i) {
    Row row;
    row.m = ms[i];
    try {
      std::unique_ptr<runner::GpuModel> own;
      runner::GpuModel* model = shared.get();
      if (!model) {
        runner::GpuModelOptions o = options;
        o.max_tokens = o.max_sequences = o.max_context = 1;
        capacity(row.m, o);
        own = std::make_unique<runner::GpuModel>(opt.model, o);
        model = own.get();
      }
      if (opt.stage == "prefill")
        measure_prefill(*model, row, opt);
      else
        measure_decode(*model, row, opt);
    } catch (const std::exception& e) {
      row = Row{};
      row.m = ms[i];
      row.status = "failed";
      row.error = e.what();
    }
    std::printf(
        "%s %s %s %s (%s attention) M=%lld: %s tokens/s  gemm %s ms  attention %s ms  other %s "
        "ms  %s\n",
        name.c_str(), opt.stage.c_str(), pattern.c_str(), opt.dtype.c_str(),
        row_attention(opt, row).c_str(), static_cast<long long>(row.m),
        cell(row.tokens_per_s, 1).c_str(), cell(row.gemm_ms, 3).c_str(),
        cell(row.attention_ms, 3).c_str(), cell(row.other_ms, 3).c_str(), row.status.c_str());
    std::fflush(stdout);
    rows.push_back(row);
    const std::string lost = row.status == "failed" ? cuda_context_lost() : "";
    if (!lost.empty()) {
      for (std::size_t j = i + 1; j < ms.size(); ++j) {
        Row r;
        r.m = ms[j];
        r.status = "failed";
        r.error = "not run: the CUDA context was lost (" + lost + ") at M=" + std::to_string(ms[i]);
        rows.push_back(r);
      }
      save(out, opt, name, pattern, rows, device);
      throw DeviceError("bench e2e stopped: the CUDA context was lost (" + lost + ") at M=" +
                        std::to_string(ms[i]) + "; results so far are saved in " + folder);
    }
    save(out, opt, name, pattern, rows, device);
  }
}

}  // namespace

void add_bench_e2e_command(CLI::App& bench) {
  auto opt = std::make_shared<E2eOptions>();
  CLI::App* cmd = bench.add_subcommand("e2e", "Whole-model prefill or decode throughput per M");
  cmd->add_option("MODEL", opt->model, "Preset name, Hugging Face folder or converted folder")
      ->required();
  cmd->add_option("--stage", opt->stage, "prefill or decode")->capture_default_str();
  cmd->add_option("--M", opt->ms,
                  "prefill: tokens per forward; decode: concurrent sequences (comma-separated)")
      ->capture_default_str();
  cmd->add_option("--backend", opt->backend, "dense (cuBLASLt) or sparse (SlideSparse)")
      ->capture_default_str();
  cmd->add_option("--pattern", opt->pattern, "Sparse backend's pattern (2_8 or 6:8 spelling)");
  cmd->add_option("--dtype", opt->dtype, "int8, fp8 or bf16")->capture_default_str();
  cmd->add_option("--out", opt->out, "Results root; a folder per GPU and dtype is made in it")
      ->capture_default_str();
  cmd->add_option("--tuning", opt->tuning, "Tuning database of `slidesparse tune`");
  cmd->add_option("--warmup", opt->warmup, "Untimed prefill forwards per M")->capture_default_str();
  cmd->add_option("--reps", opt->reps, "Timed prefill forwards per M (median)")
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Seed of the random prompts")->capture_default_str();
  cmd->add_option("--sparse-backend", opt->sparse_backend,
                  "2:4 GEMM of the sparse backend: cusparselt, cutlass (our sm_90a kernel "
                  "with the dequantization in its epilogue), cutlass_lift (the same, lifting the "
                  "quantized activations in shared memory), or auto (cusparselt and cutlass "
                  "kept, each linear runs "
                  "the faster per M: from --tuning of `tune --sparse-backend both`, or searched; "
                  "the CSV's backend is sparse-auto)")
      ->check(CLI::IsMember({"cusparselt", "cutlass", "cutlass_lift", "auto"}))
      ->capture_default_str();
  cmd->add_option("--dense-gemm", opt->dense_gemm,
                  "GEMM of the dense backend: cublaslt (accumulators, then a dequantize kernel), "
                  "cublaslt_fused (FP8 on cc 9.0: the dequantization in cuBLASLt's epilogue) or "
                  "cutlass_dense (our CUTLASS dense GEMM with the same epilogue); the CSV's "
                  "backend says which (dense-<gemm>)")
      ->check(CLI::IsMember({"cublaslt", "cublaslt_fused", "cutlass_dense"}));
  cmd->add_option("--attention", opt->attention,
                  "Prefill attention: cudnn (cuDNN's fused SDPA; the default when built with "
                  "cuDNN) or own (the runner's kernel)")
      ->check(CLI::IsMember({"cudnn", "own"}));
  cmd->add_flag("--unfused", opt->unfused,
                "Run RMSNorm and the gated activation apart from the quantize(+lift)");
  cmd->add_flag("--dense-fallback", opt->dense_fallback,
                "Sparse: also keep the dense weights and run dense for the M where dense measured "
                "faster (--tuning, or a search of both paths); the CSV's backend ends in "
                "-fallback, the memory it costs goes to stderr");
  cmd->add_flag("--no-search", opt->no_search,
                "Without --tuning, keep the libraries' default algorithms (no search per M)");
  cmd->callback([opt]() { run_bench_e2e(*opt); });
}

}  // namespace slidesparse::cli
