// The GPU as the rest of the library sees it: is there one, what is it, and
// RAII owners for its memory, streams and events. DeviceBuffer is the one
// owner of cudaMalloc/cudaFree in the project.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse {

// False, with the runtime's reason in *why_not, when no device can be used
// (no driver, no GPU, driver too old). Never throws for those reasons.
bool cuda_device_available(std::string* why_not = nullptr);

struct DeviceInfo {
  std::string name;  // "NVIDIA H100 80GB HBM3"
  int cc_major = 0;
  int cc_minor = 0;
  int sm_count = 0;
  std::uint64_t memory_bytes = 0;
  int driver_version = 0;   // 13000 for CUDA 13.0
  int runtime_version = 0;  // likewise
  std::uint64_t l2_bytes = 0;
  int clock_khz = 0;  // peak SM clock
};

// Throws DeviceError when the device does not exist or cannot be queried.
DeviceInfo query_device(int device = 0);

// FP8 E4M3 tensor cores arrived with compute capability 8.9 (Ada, Hopper, Blackwell).
bool supports_fp8(const DeviceInfo& info);

// The model token of the marketing name, used in result folder names:
// "NVIDIA H100 80GB HBM3" -> "H100", "NVIDIA A100-SXM4-80GB" -> "A100",
// "NVIDIA GeForce RTX 4090" -> "RTX4090", "NVIDIA B200" -> "B200".
std::string gpu_short_name(const DeviceInfo& info);

// Device-to-device copy bandwidth in GB/s (1e9 bytes/s), counting the bytes read
// plus the bytes written: the median of 10 timed 1 GiB cudaMemcpyAsync on `stream`.
// The ceiling a memory-bound kernel is measured against.
double measure_copy_bandwidth_gbs(cudaStream_t stream);

namespace detail {
void* device_allocate(std::size_t bytes);  // throws DeviceError naming the size
void device_free(void* pointer) noexcept;
}  // namespace detail

// `count` elements of T in device memory. Move-only; assign a new buffer to resize.
template <class T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "device buffers hold plain data");

 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count)
      : data_(static_cast<T*>(detail::device_allocate(count * sizeof(T)))), size_(count) {}
  ~DeviceBuffer() { detail::device_free(data_); }

  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      detail::device_free(data_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }

  // Blocking copies of `count` elements starting at element `offset` of this buffer.
  void upload(const T* host, std::size_t count, std::size_t offset = 0) {
    check_range(count, offset, "upload");
    if (count == 0) return;
    SLIDESPARSE_CHECK_CUDA(
        cudaMemcpy(data_ + offset, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* host, std::size_t count, std::size_t offset = 0) const {
    check_range(count, offset, "download");
    if (count == 0) return;
    SLIDESPARSE_CHECK_CUDA(
        cudaMemcpy(host, data_ + offset, count * sizeof(T), cudaMemcpyDeviceToHost));
  }

  void fill_zero(cudaStream_t stream = nullptr) { fill_bytes(0, stream); }
  // Every byte set to `value` (tests poison outputs with 0xCD).
  void fill_bytes(unsigned char value, cudaStream_t stream = nullptr) {
    if (empty()) return;
    SLIDESPARSE_CHECK_CUDA(cudaMemsetAsync(data_, value, bytes(), stream));
  }

 private:
  void check_range(std::size_t count, std::size_t offset, const char* what) const {
    if (offset > size_ || count > size_ - offset)
      throw InvalidArgument(std::string("DeviceBuffer::") + what + " of " + std::to_string(count) +
                            " elements at offset " + std::to_string(offset) +
                            " overruns a buffer of " + std::to_string(size_));
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
};

// A stream that synchronizes with the legacy default stream, so the blocking
// DeviceBuffer copies are ordered with the kernels launched on it.
class CudaStream {
 public:
  CudaStream();
  ~CudaStream();
  CudaStream(CudaStream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
  CudaStream& operator=(CudaStream&& other) noexcept;
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  cudaStream_t get() const noexcept { return stream_; }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

class CudaEvent {
 public:
  CudaEvent();
  ~CudaEvent();
  CudaEvent(CudaEvent&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
  CudaEvent& operator=(CudaEvent&& other) noexcept;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  cudaEvent_t get() const noexcept { return event_; }
  void record(cudaStream_t stream = nullptr);
  void synchronize() const;

  // Milliseconds between two recorded events; waits for `stop`.
  static float elapsed_ms(const CudaEvent& start, const CudaEvent& stop);

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace slidesparse
