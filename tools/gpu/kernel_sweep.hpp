// The sweep over shapes × dtypes × patterns × M that `bench kernel` and `tune` run.
#pragma once

#include <cstdint>
#include <string>

namespace slidesparse::cli {

struct KernelSweepOptions {
  std::string models = "qwen2.5-7b";  // presets and/or "square"
  std::string ms = "64,128,256,512,1024,2048,4096,8192,16384";
  bool large_m = false;  // adds 32768 and 65536
  std::string patterns = "2_4,2_6,2_8,2_10,2_12,2_14,2_16,2_inf";
  std::string dtypes = "int8,fp8,bf16,fp16";
  std::string out = "results";
  std::string tuning;      // database to record the best algorithms into ("" = none)
  bool tune_only = false;  // search and record only: no layer or quantize timings
  // The 2:4 GEMM of the sparse columns: "cusparselt", "cutlass" (our sm_90a GEMM with its
  // dequantizing epilogue), or "both" (cuSPARSELt in the sparse columns; CUTLASS sparse and the
  // CUTLASS dense GEMM with the same epilogue in extra ones). With a tuning database, "both"
  // records cuSPARSELt's, CUTLASS's and the dense GEMMs' entries for each shape and M: what a
  // layer with LinearOptions::sparse_backend_auto chooses from.
  std::string sparse_backend = "cusparselt";
  int reps = 20;
  // Timings flush L2 before each run (weights from device memory, as inside a model); true
  // times back-to-back runs instead, with whatever L2 still holds.
  bool warm_l2 = false;
  std::uint64_t seed = 1;
};

// Writes <out>/<GPU folder>/kernel_bench.csv and kernel_bench.md per dtype (unless
// tune_only) and updates the tuning database. A failing cell is recorded and the sweep goes on.
void run_kernel_sweep(const KernelSweepOptions& options);

}  // namespace slidesparse::cli
