#include "lm_head.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::runner {

namespace {
std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}
}  // namespace

LmHead::LmHead(GemmContext& ctx, const std::vector<std::uint16_t>& weight_bf16, std::int64_t vocab,
               std::int64_t hidden, std::int64_t max_rows)
    : vocab_(vocab), hidden_(hidden), max_rows_(max_rows) {
  const GemmRequirements req = gemm_requirements(Precision::BF16, GemmBackendKind::CublasLtDense);
  SLIDESPARSE_REQUIRE(hidden % req.k_multiple == 0, InvalidArgument,
                      "LM head: hidden size " + std::to_string(hidden) + " is not a multiple of " +
                          std::to_string(req.k_multiple) + " (cuBLASLt BF16)");
  SLIDESPARSE_REQUIRE(static_cast<std::int64_t>(weight_bf16.size()) == vocab * hidden,
                      InvalidArgument,
                      "LM head: " + std::to_string(weight_bf16.size()) + " weights for [" +
                          std::to_string(vocab) + ", " + std::to_string(hidden) + "]");
  m_multiple_ = std::max<std::int64_t>(1, req.m_multiple);
  vocab_gemm_ = round_up(vocab, req.n_multiple);
  {
    // Zero rows pad the vocabulary to the GEMM's N multiple; their logits are dropped.
    DeviceBuffer<std::uint16_t> w(static_cast<std::size_t>(vocab_gemm_ * hidden));
    w.fill_zero(nullptr);
    w.upload(weight_bf16.data(), weight_bf16.size());
    gemm_ = make_cublaslt_gemm(ctx, Precision::BF16, vocab_gemm_, hidden, w.get());
    SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());  // the copy is made before w is freed
  }
  SLIDESPARSE_REQUIRE(gemm_->output_type() == DType::F32, InvalidArgument,
                      "LM head: cuBLASLt BF16 GEMM does not write float32 here");
  if (vocab_gemm_ != vocab_)
    acc_ = DeviceBuffer<float>(
        static_cast<std::size_t>(round_up(max_rows, m_multiple_) * vocab_gemm_));
}

std::int64_t LmHead::padded_rows(std::int64_t rows) const { return round_up(rows, m_multiple_); }

void LmHead::prepare(std::int64_t rows) { gemm_->prepare(padded_rows(rows), GemmAlgo{}); }

void LmHead::forward(const void* x, std::int64_t rows, float* logits, cudaStream_t stream) {
  SLIDESPARSE_REQUIRE(rows > 0 && rows <= max_rows_, InvalidArgument,
                      "LM head called with " + std::to_string(rows) + " rows outside [1, " +
                          std::to_string(max_rows_) + "]");
  if (vocab_gemm_ == vocab_) {  // no padded columns: straight into the caller's rows
    gemm_->run(x, logits, padded_rows(rows), stream);
    return;
  }
  gemm_->run(x, acc_.get(), padded_rows(rows), stream);
  SLIDESPARSE_CHECK_CUDA(
      cudaMemcpy2DAsync(logits, static_cast<std::size_t>(vocab_) * sizeof(float), acc_.get(),
                        static_cast<std::size_t>(vocab_gemm_) * sizeof(float),
                        static_cast<std::size_t>(vocab_) * sizeof(float),
                        static_cast<std::size_t>(rows), cudaMemcpyDeviceToDevice, stream));
}

std::uint64_t LmHead::device_bytes() const {
  return static_cast<std::uint64_t>(vocab_gemm_ * hidden_) * 2 + acc_.bytes();
}

}  // namespace slidesparse::runner
