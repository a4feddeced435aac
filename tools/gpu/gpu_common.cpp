#include "gpu_common.hpp"

#include <cuda_profiler_api.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <system_error>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/gemm/gemm.hpp"

namespace slidesparse::cli {

std::string result_folder_name(const DeviceInfo& device, Precision precision) {
  utsname uts{};
  uname(&uts);
  const int cuda_major = device.runtime_version / 1000;
  const int cuda_minor = (device.runtime_version % 1000) / 10;
  return gpu_short_name(device) + "_cc" + std::to_string(device.cc_major) +
         std::to_string(device.cc_minor) + "_" + precision_label(precision) + "_cu" +
         std::to_string(cuda_major) + std::to_string(cuda_minor) + "_" + uts.machine;
}

TuningKey current_tuning_key(const DeviceInfo& device) {
  TuningKey key;
  key.gpu_name = device.name;
  key.cc_major = device.cc_major;
  key.cc_minor = device.cc_minor;
  key.driver = device.driver_version;
  key.cuda_runtime = device.runtime_version;
  key.cublaslt = cublaslt_version();
  key.cusparselt = cusparselt_version();
  return key;
}

std::string precision_unsupported_reason(const DeviceInfo& device, Precision precision) {
  if (precision == Precision::FP8 && !supports_fp8(device))
    return "no FP8 on cc " + std::to_string(device.cc_major) + "." +
           std::to_string(device.cc_minor) + " (needs 8.9 or newer)";
  return "";
}

L2Flusher::L2Flusher() {
  int device = 0, l2_bytes = 0;
  SLIDESPARSE_CHECK_CUDA(cudaGetDevice(&device));
  SLIDESPARSE_CHECK_CUDA(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
  buffer_ = DeviceBuffer<std::uint8_t>(2 * static_cast<std::size_t>(l2_bytes));
}

void L2Flusher::flush(cudaStream_t stream) {
  if (buffer_.size() == 0) return;
  // A new value each time, so no cache line can keep its old contents.
  SLIDESPARSE_CHECK_CUDA(
      cudaMemsetAsync(buffer_.get(), static_cast<int>(++rounds_ & 0xFFu), buffer_.size(), stream));
}

double time_median_us(const std::function<void()>& fn, cudaStream_t stream, int warmup, int reps,
                      L2Flusher* l2) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<CudaEvent> starts(static_cast<std::size_t>(reps));
  std::vector<CudaEvent> stops(static_cast<std::size_t>(reps));
  // A profiler range around the timed runs alone: `ncu --profile-from-start off` then sees
  // them and not the warm-ups or the algorithm searches (scripts/gpu_kernel_study.sh).
  SLIDESPARSE_CHECK_CUDA(cudaProfilerStart());
  for (int i = 0; i < reps; ++i) {
    if (l2) l2->flush(stream);
    SLIDESPARSE_CHECK_CUDA(cudaEventRecord(starts[i].get(), stream));
    fn();
    SLIDESPARSE_CHECK_CUDA(cudaEventRecord(stops[i].get(), stream));
  }
  SLIDESPARSE_CHECK_CUDA(cudaStreamSynchronize(stream));
  SLIDESPARSE_CHECK_CUDA(cudaProfilerStop());
  std::vector<double> us;
  for (int i = 0; i < reps; ++i) us.push_back(1000.0 * CudaEvent::elapsed_ms(starts[i], stops[i]));
  std::nth_element(us.begin(), us.begin() + reps / 2, us.end());
  return us[static_cast<std::size_t>(reps / 2)];
}

CsvTable::CsvTable(std::string path, std::vector<std::string> columns)
    : path_(std::move(path)), columns_(std::move(columns)) {}

void CsvTable::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

namespace {
std::string csv_cell(const std::string& cell) {
  if (cell.find_first_of(",\"\n") == std::string::npos) return cell;
  std::string quoted = "\"";
  for (char c : cell)
    quoted += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' ? ' ' : c);
  return quoted + "\"";
}
}  // namespace

void CsvTable::save() const {
  std::ostringstream out;
  for (std::size_t i = 0; i < columns_.size(); ++i) out << (i ? "," : "") << columns_[i];
  out << "\n";
  for (const auto& row : rows_) {
    for (std::size_t i = 0; i < row.size(); ++i) out << (i ? "," : "") << csv_cell(row[i]);
    out << "\n";
  }
  write_file_atomic(path_, out.str());
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::int64_t> parse_int_list(const std::string& text, const std::string& what) {
  std::vector<std::int64_t> out;
  for (const auto& item : split_list(text)) {
    std::size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || value <= 0)
      throw InvalidArgument(what + ": '" + item + "' is not a positive integer");
    out.push_back(value);
  }
  if (out.empty()) throw InvalidArgument(what + ": empty list");
  return out;
}

std::string format_double(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string make_dir(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) throw IoError("cannot create directory " + path + ": " + error.message());
  return path;
}

std::string cuda_context_lost() {
  cudaGetLastError();
  if (cudaDeviceSynchronize() == cudaSuccess) return "";
  const cudaError_t sticky = cudaGetLastError();
  if (cudaDeviceSynchronize() == cudaSuccess) return "";
  return std::string(cudaGetErrorName(sticky)) + " (" + cudaGetErrorString(sticky) + ")";
}

}  // namespace slidesparse::cli
