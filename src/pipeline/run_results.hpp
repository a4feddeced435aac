// The measurements of a results folder, read back from its result CSVs: for a pipeline run
// the files its status file lists, only in this GPU's result folders; for a folder the
// benchmarks wrote directly, every result CSV of one GPU. Every other result file under the
// folder is listed as ignored, with the reason. Private to the pipeline room.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "slidesparse/pipeline/status.hpp"

namespace slidesparse::pipeline {

// The pattern of a row measured on our CUTLASS GEMM instead of cuSPARSELt carries this suffix
// ("2_8+cutlass"): its own table column, apart from cuSPARSELt's. End-to-end rows of the
// sparse-cutlass backend (in a folder of direct runs) and kernel rows of --sparse-backend cutlass.
inline constexpr const char* kCutlassSeries = "+cutlass";
// Other series of the end-to-end benchmark's sparse backends (their CSV backend label, through
// e2e_series of plan_gemms.hpp): sparse-fallback → "+fallback", sparse-cutlass-fallback →
// "+cutlass+fallback", sparse-auto → "+auto", sparse-auto-fallback → "+auto+fallback".
// Everything from the first '+' on names the series; before it stands the pattern.
inline constexpr const char* kFallbackSeries = "+fallback";
inline constexpr const char* kAutoSeries = "+auto";

// One row of e2e_prefill.csv / e2e_decode.csv (docs/results-format.md).
struct EndToEndRow {
  std::string model, dtype, pattern;  // pattern: "dense" or "2_8"
  // dense, dense-<gemm>, sparse, sparse-cutlass, sparse[-cutlass]-fallback, sparse-auto; of
  // several dense rows for one model, dtype and M, the fastest passed one is kept.
  std::string backend;
  std::string file;                   // the CSV, relative to the results folder
  std::int64_t m = 0;
  double tokens_per_s = 0, requests_per_s = 0, gemm_ms = 0, attention_ms = 0, other_ms = 0;
  std::string status, error;
};

// One row of kernel_bench.csv (one layer of one model at one M and pattern). A column the CSV
// lacks (files written before it existed) reads as not measured.
struct KernelRow {
  // pattern: "2_8", or "2_8+cutlass" (kCutlassSeries) where the sparse_* columns measured our
  // CUTLASS GEMM (--sparse-backend cutlass): its own table column, apart from cuSPARSELt's.
  std::string model, dtype, layer, pattern;
  std::string file;  // the CSV, relative to the results folder
  std::int64_t m = 0;
  double dense_gemm_us = 0, sparse_gemm_us = 0, dense_layer_us = 0, sparse_layer_us = 0;
  double quant_lift_gbps = 0, quant_lift_vs_copy = 0;
  double copy_gbps = 0;  // device-to-device copy bandwidth measured in the same run
  // FP8 on cc 9.0: the dense layer on cuBLASLt with the dequantization in its epilogue.
  double dense_fused_layer_us = NAN;
  // --sparse-backend both: our CUTLASS sparse GEMM with its dequantizing epilogue, the CUTLASS
  // dense GEMM with the same epilogue, and the whole layer on the CUTLASS GEMM.
  bool cutlass_columns = false;  // the CSV has them (empty cells: not measured, see error)
  double cutlass_gemm_us = NAN, cutlass_dense_us = NAN, cutlass_layer_us = NAN;
  // --sparse-backend all: the whole layer on the CUTLASS GEMM that lifts its input itself.
  double cutlass_lift_layer_us = NAN;
  std::string status, error;

  // The dense layer every layer speedup is measured against: the faster of the two.
  double best_dense_layer_us() const;
};

struct RunResults {
  std::vector<EndToEndRow> prefill, decode;
  std::vector<KernelRow> kernel;
  std::vector<std::string> files;                            // used, relative to the results folder
  std::vector<std::pair<std::string, std::string>> ignored;  // file, why
  std::vector<std::string> problems;                         // files that could not be read
};

RunResults read_run_results(const PipelineStatus& status, const std::string& results_dir);

// A result folder's name as the benchmarks make it (`slidesparse info` prints it per dtype):
// <GPU>_cc<XY>_<DTYPE>_cu<XYZ>_<arch>, e.g. H100_cc90_INT8_cu130_x86_64.
struct GpuFolder {
  std::string gpu;    // "H100"
  std::string cc;     // "9.0"
  std::string dtype;  // "int8", "fp8", "bf16", "fp16"
  std::string cuda;   // "13.0"
  std::string arch;   // "x86_64"
  // The name without its dtype ("H100_cc90_cu130_x86_64"): results of one setup compare.
  std::string setup;
  std::string describe() const;  // "H100, cc 9.0, CUDA 13.0, x86_64"
};

// Nothing when `name` is not such a folder name.
std::optional<GpuFolder> parse_gpu_folder(const std::string& name);

// A folder that `slidesparse bench kernel|e2e` wrote directly (no status.json): the result
// CSVs of one GPU setup. A CSV outside a GPU folder counts as that setup's when it is the
// folder's only one (listed in `unplaced`), and is left out when there are several.
struct BenchFolderResults {
  RunResults results;
  std::string setup;                        // "" when no CSV is in a GPU folder
  std::optional<GpuFolder> gpu;             // one of the setup's folders
  std::vector<std::string> folders;         // the setup's GPU folder names, one per dtype
  std::map<std::string, int> other_setups;  // setups left out → their result files
  std::vector<std::string> unplaced;        // CSVs outside a GPU folder, taken as this setup's
  std::vector<std::string> replaced;        // "B replaces N rows of A" (same case, two files)
};

// Every result CSV below `results_dir` (but plots/). `setup` picks the GPU when there are
// several ("": the one with the most result files, then by name); InvalidArgument when it
// names none of them.
BenchFolderResults read_bench_folder(const std::string& results_dir, const std::string& setup);

}  // namespace slidesparse::pipeline
