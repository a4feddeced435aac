// The device buffers a linear layer uses between its stages: the quantized (and lifted) input
// of each path, the input's row scales, and the GEMM's accumulators (or fused output). Layers
// that run one after another on one stream can share one LinearScratch: a model then holds the
// largest layer's buffers once instead of every layer's (for Qwen2.5-7B at 16384 tokens the
// accumulators alone are 3.3 GB per decoder layer, 91 GB for all 28).
#pragma once

#include <cstddef>
#include <cstdint>

#include "slidesparse/cuda/device.hpp"

namespace slidesparse {

class LinearScratch {
 public:
  LinearScratch() = default;
  LinearScratch(const LinearScratch&) = delete;
  LinearScratch& operator=(const LinearScratch&) = delete;

  // Grows each buffer to at least these sizes, zero-filled (a search may run on a buffer no
  // kernel wrote yet; zeros are valid operands of every precision). What was there is not
  // kept, and a buffer that grows moves: grow only while building layers, before any plan or
  // captured graph holds the pointers.
  void reserve(std::size_t q_sparse_bytes, std::size_t q_dense_bytes, std::size_t scale_count,
               std::size_t acc_bytes);

  std::uint8_t* q_sparse() const { return q_sparse_.get(); }
  std::uint8_t* q_dense() const { return q_dense_.get(); }
  float* scale_x() const { return scale_x_.get(); }
  std::uint8_t* acc() const { return acc_.get(); }
  std::size_t acc_bytes() const { return acc_.size(); }
  // Device bytes held by the four buffers.
  std::uint64_t bytes() const;

 private:
  DeviceBuffer<std::uint8_t> q_sparse_, q_dense_;
  DeviceBuffer<float> scale_x_;
  DeviceBuffer<std::uint8_t> acc_;
};

}  // namespace slidesparse
