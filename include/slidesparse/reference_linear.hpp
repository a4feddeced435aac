// CPU reference of the linear layer Y[M,N] = X[M,K] · W[N,K]ᵀ (+ bias[N]), the
// result every GPU backend (cuBLASLt dense, cuSPARSELt 2:4, our sparse GEMM) is
// checked against. Activations are quantized per token, weights per output channel.
#pragma once

#include <cstdint>
#include <vector>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse {

// A weight matrix in its compute precision: rows * cols elements of
// precision_storage(precision), row-major, and one scale per row (1 for BF16 / FP16).
struct QuantizedMatrix {
  Precision precision;
  std::int64_t rows = 0, cols = 0;
  std::vector<std::uint8_t> data;
  std::vector<float> scales;
};

// Per-row (per output channel) quantization of w [rows, cols].
QuantizedMatrix quantize_matrix(const float* w, std::int64_t rows, std::int64_t cols, Precision p);

// The slid weights: cols becomes p.k_slide(cols), values and scales unchanged.
QuantizedMatrix slide_matrix(const QuantizedMatrix& w, const Pattern& p);

// Dense path: x [m, w.cols] quantized per row (quantize_rows), times the un-slid w.
// INT8 accumulates in int32, FP8 / BF16 / FP16 in float in increasing k order;
// epilogue dequantize_output. bias is [w.rows] or null. Returns float Y [m, w.rows].
std::vector<float> reference_linear_dense(const float* x, std::int64_t m, const QuantizedMatrix& w,
                                          const float* bias);

// Sparse path: x [m, k] lifted by quantize_lift_row, times the slid w_slid
// (w_slid.cols == p.k_slide(k)) over K_slide. Same accumulation and epilogue.
std::vector<float> reference_linear_sparse(const float* x, std::int64_t m, std::int64_t k,
                                           const QuantizedMatrix& w_slid, const Pattern& p,
                                           const float* bias);

}  // namespace slidesparse
