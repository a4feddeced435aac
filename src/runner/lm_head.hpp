// The LM head: logits[rows, vocab] (float32) = x[rows, hidden] (BF16) · Wᵀ, W [vocab, hidden]
// BF16, through a cuBLASLt BF16 GEMM that accumulates and writes float32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "slidesparse/cuda/device.hpp"
#include "slidesparse/gemm/gemm.hpp"

namespace slidesparse::runner {

class LmHead {
 public:
  // `weight_bf16` [vocab, hidden] as BF16 bits; hidden must be a multiple of 8 (InvalidArgument).
  LmHead(GemmContext& ctx, const std::vector<std::uint16_t>& weight_bf16, std::int64_t vocab,
         std::int64_t hidden, std::int64_t max_rows);

  // Rows of x the GEMM reads for `rows` (rounded up to the library's M multiple): x must hold
  // that many rows (the extra ones are computed and dropped).
  std::int64_t padded_rows(std::int64_t rows) const;
  // Builds the plan for `rows` (not on the hot path).
  void prepare(std::int64_t rows);
  // logits [rows, vocab] on `stream`; no allocation, no sync. `logits` must hold
  // padded_rows(rows) rows (the padded ones are scratch).
  void forward(const void* x, std::int64_t rows, float* logits, cudaStream_t stream);

  std::uint64_t device_bytes() const;

 private:
  std::int64_t vocab_, hidden_, vocab_gemm_, m_multiple_, max_rows_;
  std::unique_ptr<Gemm> gemm_;
  DeviceBuffer<float> acc_;  // [padded max_rows, vocab_gemm] when vocab_gemm != vocab
};

}  // namespace slidesparse::runner
