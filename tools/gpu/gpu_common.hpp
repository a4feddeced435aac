// Pieces the GPU subcommands share: device description, result folders, CSV output, timing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "slidesparse/cuda/device.hpp"
#include "slidesparse/dtype.hpp"
#include "slidesparse/tuning_db.hpp"

namespace slidesparse::cli {

// "H100_cc90_FP8E4M3_cu130_x86_64": GPU, compute capability, dtype, CUDA runtime, CPU arch.
std::string result_folder_name(const DeviceInfo& device, Precision precision);

// The key a tuning database made on this machine carries.
TuningKey current_tuning_key(const DeviceInfo& device);

// Why `precision` cannot run on `device` ("" when it can): FP8 needs cc >= 8.9.
std::string precision_unsupported_reason(const DeviceInfo& device, Precision precision);

// Overwrites a buffer of twice the GPU's L2 size, so that the next kernel reads its operands
// from device memory, as a layer inside a model does (the other layers evict its weights).
class L2Flusher {
 public:
  L2Flusher();  // sized for the current device
  void flush(cudaStream_t stream);

 private:
  DeviceBuffer<std::uint8_t> buffer_;
  unsigned rounds_ = 0;
};

// Median time in microseconds of `reps` runs of `fn` on `stream` after `warmup` runs,
// timed with CUDA events around each run. With `l2`, L2 is flushed before each timed run,
// outside its events (the GEMM search times its candidates the same way).
double time_median_us(const std::function<void()>& fn, cudaStream_t stream, int warmup, int reps,
                      L2Flusher* l2 = nullptr);

// A CSV table written atomically (temporary file, then rename) each time save() is called,
// so a crash mid-run keeps every row finished so far.
class CsvTable {
 public:
  CsvTable(std::string path, std::vector<std::string> columns);
  void add_row(std::vector<std::string> cells);
  void save() const;
  const std::vector<std::vector<std::string>>& rows() const { return rows_; }
  const std::vector<std::string>& columns() const { return columns_; }

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::vector<std::vector<std::string>> rows_;
};

std::vector<std::int64_t> parse_int_list(const std::string& text, const std::string& what);
std::vector<std::string> split_list(const std::string& text);
// After a failure: clears a non-sticky error (a refused launch, an allocation that did not
// fit) and returns "" while the CUDA context is still usable; else the sticky error's name and
// text. An asynchronous kernel fault (illegal address, ...) is sticky: every later CUDA call
// fails, so a benchmark must stop and say so.
std::string cuda_context_lost();

// Creates `path` and its missing parents (the pipeline passes nested --out folders); returns it.
// Throws IoError naming the folder.
std::string make_dir(const std::string& path);
std::string format_double(double value, int decimals);

}  // namespace slidesparse::cli
