// Owners of the CUDA objects the runner needs beyond device.hpp's: a non-blocking stream (a
// stream that synchronizes with the legacy stream cannot be captured safely), pinned host
// memory (asynchronous copies a captured graph replays), and an instantiated graph.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>

#include "slidesparse/cuda/check.hpp"

namespace slidesparse::runner {

class NonBlockingStream {
 public:
  NonBlockingStream() {
    SLIDESPARSE_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NonBlockingStream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  NonBlockingStream(const NonBlockingStream&) = delete;
  NonBlockingStream& operator=(const NonBlockingStream&) = delete;
  cudaStream_t get() const noexcept { return stream_; }
  void synchronize() const { SLIDESPARSE_CHECK_CUDA(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// `count` elements of T in page-locked host memory.
template <class T>
class PinnedBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "pinned buffers hold plain data");

 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t count) : size_(count) {
    void* p = nullptr;
    SLIDESPARSE_CHECK_CUDA(cudaMallocHost(&p, count * sizeof(T)));
    data_ = static_cast<T*>(p);
  }
  ~PinnedBuffer() {
    if (data_) cudaFreeHost(data_);
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      if (data_) cudaFreeHost(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  T* get() const noexcept { return data_; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  std::size_t size() const noexcept { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

// The work `body` enqueues on `stream`, captured once and replayed as one launch.
class CudaGraph {
 public:
  CudaGraph(cudaStream_t stream, const std::function<void()>& body) {
    // Thread-local: only this thread's stream work is captured, other threads are unaffected.
    SLIDESPARSE_CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    try {
      body();
    } catch (...) {
      cudaStreamEndCapture(stream, &graph);  // leave the stream usable
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    SLIDESPARSE_CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
    const cudaError_t status = cudaGraphInstantiate(&exec_, graph, 0);
    cudaGraphDestroy(graph);
    SLIDESPARSE_CHECK_CUDA(status);
  }
  ~CudaGraph() {
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void launch(cudaStream_t stream) const { SLIDESPARSE_CHECK_CUDA(cudaGraphLaunch(exec_, stream)); }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace slidesparse::runner
