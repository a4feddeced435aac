// The runner's producers of a linear layer's input fused with its quantization: the BF16 row
// (a normed residual, a gated activation) is computed in the block and quantized (and lifted)
// straight into the layer's GEMM operand, never written to memory as BF16.
//
// Each function equals, bit for bit (q bytes and scales), the unfused sequence it replaces:
// the model_kernels.hpp kernel(s) writing a BF16 buffer, then quantize_lift_per_token
// (target.lift) or quantize_per_token (identity map) of that buffer with ld = width, where all
// row buffers are 16-byte aligned (as cudaMalloc'ed ones are: the sums of squares run in the
// same layout only when both sides choose the same vector width). One block per row (any row count
// up to 2^31-1, 64-bit offsets); the row stays in shared memory up to 49k columns, wider rows are
// recomputed from global memory. Requirements (InvalidArgument otherwise, naming the function): the
// target's contract of quantize_lift_per_token (k_out a multiple of 16 and >= width, or >=
// pattern.k_slide(width) when lifting; q 16-byte aligned; scales for INT8/FP8); width positive;
// rows non-negative.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/dtype.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/model/config.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/runner/model_kernels.hpp"

namespace slidesparse::runner {

// Where the quantized rows go.
struct QuantizeTarget {
  void* q = nullptr;        // [rows, k_out] in precision_storage(precision)
  std::int64_t k_out = 0;   // q's row length in elements
  float* scales = nullptr;  // [rows]; may be nullptr for BF16/FP16 (else written as 1)
  Precision precision = Precision::INT8;
  bool lift = false;                      // false: the identity column map (the dense path)
  Pattern pattern = Pattern::infinite();  // the lifting pattern when `lift`
};

// The GEMM operand of `layer` for M tokens on `path` (Sparse or Dense, not Auto: resolve it for
// the M first), the buffers quantize_input would fill (un-lifted for a GEMM that lifts itself).
QuantizeTarget quantize_target(SlideSparseLinear& layer, std::int64_t m, LinearPath path);

// rms_norm(x) with `weight`, rounded to BF16, then quantized into `target`.
void rms_norm_quantize_lift(const bf16* x, const bf16* weight, std::int64_t rows,
                            std::int64_t width, float eps, const QuantizeTarget& target,
                            cudaStream_t stream);

// add_rms_norm: residual += y (rounded to BF16, written back), then the norm of the sum,
// rounded to BF16, quantized into `target`.
void add_rms_norm_quantize_lift(bf16* residual, const bf16* y, const bf16* weight,
                                std::int64_t rows, std::int64_t width, float eps,
                                const QuantizeTarget& target, cudaStream_t stream);

// gated_activation: act(gate)·up of gate_up [rows, 2·intermediate] rounded to BF16, then
// quantized into `target`.
void gated_activation_quantize_lift(const bf16* gate_up, std::int64_t rows,
                                    std::int64_t intermediate, Activation act,
                                    const QuantizeTarget& target, cudaStream_t stream);

// gated_activation, then rms_norm of its BF16 output with `weight` (BitNet's ffn_sub_norm),
// rounded to BF16, quantized into `target`.
void gated_activation_rms_norm_quantize_lift(const bf16* gate_up, std::int64_t rows,
                                             std::int64_t intermediate, Activation act,
                                             const bf16* weight, float eps,
                                             const QuantizeTarget& target, cudaStream_t stream);

}  // namespace slidesparse::runner
