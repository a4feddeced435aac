#include "slidesparse/cuda/device.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace slidesparse {

bool cuda_device_available(std::string* why_not) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // leave no error behind for the next check
    if (why_not)
      *why_not = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(status) + ": " +
                 cudaGetErrorString(status);
    return false;
  }
  if (count == 0) {
    if (why_not) *why_not = "cudaGetDeviceCount found no device";
    return false;
  }
  return true;
}

DeviceInfo query_device(int device) {
  int count = 0;
  SLIDESPARSE_CHECK_CUDA(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count)
    throw DeviceError("CUDA device " + std::to_string(device) + " does not exist (" +
                      std::to_string(count) + " visible)");
  cudaDeviceProp prop{};
  SLIDESPARSE_CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
  DeviceInfo info;
  info.name = prop.name;
  info.memory_bytes = prop.totalGlobalMem;
  // Attributes rather than cudaDeviceProp fields: CUDA 13 dropped clockRate from the struct.
  const auto attribute = [device](cudaDeviceAttr attr) {
    int value = 0;
    SLIDESPARSE_CHECK_CUDA(cudaDeviceGetAttribute(&value, attr, device));
    return value;
  };
  info.cc_major = attribute(cudaDevAttrComputeCapabilityMajor);
  info.cc_minor = attribute(cudaDevAttrComputeCapabilityMinor);
  info.sm_count = attribute(cudaDevAttrMultiProcessorCount);
  info.l2_bytes = static_cast<std::uint64_t>(attribute(cudaDevAttrL2CacheSize));
  info.clock_khz = attribute(cudaDevAttrClockRate);
  SLIDESPARSE_CHECK_CUDA(cudaDriverGetVersion(&info.driver_version));
  SLIDESPARSE_CHECK_CUDA(cudaRuntimeGetVersion(&info.runtime_version));
  return info;
}

bool supports_fp8(const DeviceInfo& info) {
  return info.cc_major > 8 || (info.cc_major == 8 && info.cc_minor >= 9);
}

std::string gpu_short_name(const DeviceInfo& info) {
  std::vector<std::string> tokens;
  std::string token;
  for (const char c : info.name + " ") {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      token += c;
    } else if (!token.empty()) {
      tokens.push_back(token);
      token.clear();
    }
  }
  const auto has_digit = [](const std::string& t) {
    return std::any_of(t.begin(), t.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  };
  const auto is_vendor_word = [](const std::string& t) {
    return t == "NVIDIA" || t == "GeForce" || t == "Tesla" || t == "Quadro";
  };
  tokens.erase(std::remove_if(tokens.begin(), tokens.end(), is_vendor_word), tokens.end());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    // "RTX 4090", "RTX A6000", "RTX PRO 6000": the series word joins the model number.
    if (tokens[i] == "RTX" || tokens[i] == "GTX") {
      std::string joined = tokens[i];
      for (std::size_t j = i + 1; j < tokens.size(); ++j) {
        joined += tokens[j];
        if (has_digit(tokens[j])) break;
      }
      return joined;
    }
    if (has_digit(tokens[i])) return tokens[i];
  }
  std::string joined;
  for (const auto& t : tokens) joined += t;
  return joined.empty() ? "GPU" : joined;
}

double measure_copy_bandwidth_gbs(cudaStream_t stream) {
  constexpr std::size_t kBytes = std::size_t{1} << 30;
  constexpr int kRepeats = 10;
  DeviceBuffer<unsigned char> source(kBytes);
  DeviceBuffer<unsigned char> destination(kBytes);
  source.fill_zero(stream);
  SLIDESPARSE_CHECK_CUDA(cudaMemcpyAsync(destination.get(), source.get(), kBytes,
                                         cudaMemcpyDeviceToDevice, stream));  // warm-up
  std::vector<float> times_ms;
  CudaEvent start;
  CudaEvent stop;
  for (int i = 0; i < kRepeats; ++i) {
    start.record(stream);
    SLIDESPARSE_CHECK_CUDA(
        cudaMemcpyAsync(destination.get(), source.get(), kBytes, cudaMemcpyDeviceToDevice, stream));
    stop.record(stream);
    times_ms.push_back(CudaEvent::elapsed_ms(start, stop));
  }
  std::nth_element(times_ms.begin(), times_ms.begin() + kRepeats / 2, times_ms.end());
  const double median_s = times_ms[kRepeats / 2] * 1e-3;
  return 2.0 * static_cast<double>(kBytes) / median_s / 1e9;
}

namespace detail {

void* device_allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* pointer = nullptr;
  const cudaError_t status = cudaMalloc(&pointer, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError("cudaMalloc of " + std::to_string(bytes) + " bytes failed: " +
                      cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
  }
  return pointer;
}

// A destructor cannot report; a failing cudaFree means the context is already broken
// and the next checked call will say so.
void device_free(void* pointer) noexcept {
  if (pointer) cudaFree(pointer);
}

}  // namespace detail

CudaStream::CudaStream() { SLIDESPARSE_CHECK_CUDA(cudaStreamCreate(&stream_)); }

CudaStream::~CudaStream() {
  if (stream_) cudaStreamDestroy(stream_);
}

CudaStream& CudaStream::operator=(CudaStream&& other) noexcept {
  if (this != &other) {
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = std::exchange(other.stream_, nullptr);
  }
  return *this;
}

void CudaStream::synchronize() const { SLIDESPARSE_CHECK_CUDA(cudaStreamSynchronize(stream_)); }

CudaEvent::CudaEvent() { SLIDESPARSE_CHECK_CUDA(cudaEventCreate(&event_)); }

CudaEvent::~CudaEvent() {
  if (event_) cudaEventDestroy(event_);
}

CudaEvent& CudaEvent::operator=(CudaEvent&& other) noexcept {
  if (this != &other) {
    if (event_) cudaEventDestroy(event_);
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}

void CudaEvent::record(cudaStream_t stream) {
  SLIDESPARSE_CHECK_CUDA(cudaEventRecord(event_, stream));
}

void CudaEvent::synchronize() const { SLIDESPARSE_CHECK_CUDA(cudaEventSynchronize(event_)); }

float CudaEvent::elapsed_ms(const CudaEvent& start, const CudaEvent& stop) {
  stop.synchronize();
  float ms = 0.0f;
  SLIDESPARSE_CHECK_CUDA(cudaEventElapsedTime(&ms, start.event_, stop.event_));
  return ms;
}

}  // namespace slidesparse
