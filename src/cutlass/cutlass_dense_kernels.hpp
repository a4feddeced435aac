// The compiled CUTLASS sm_90a dense GEMMs with the same dequantizing epilogue as our 2:4 sparse
// GEMM (cutlass_dequantize_epilogue.hpp): the fair dense counterpart of cutlass_sparse. Same
// GEMM view: A = W [N,K] row-major (K-major), B = X [M,K] (K-major), D = Y [M,N] row-major seen
// column-major (Mg = N, Ng = M); y[m,n] = bf16(fma(float(acc[n,m]), scale_x[m] * scale_w[n],
// bias[n])). W is used as given (no compression).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cutlass_sparse_kernels.hpp"  // LaunchPointers and Launch, shared by both GEMMs
#include "slidesparse/dtype.hpp"

namespace slidesparse::cutlass_dense {

using LaunchPointers = cutlass_sparse::LaunchPointers;
using Launch = cutlass_sparse::Launch;

// Compiled tile configurations for one precision (INT8 or FP8); 0 for the others.
int config_count(Precision precision);
std::string config_name(Precision precision, int config);

// Throws DeviceError when the configuration cannot run this shape (CUTLASS's can_implement).
std::unique_ptr<Launch> make_launch(Precision precision, int config, std::int64_t n, std::int64_t k,
                                    std::int64_t m, const void* w, int device);

}  // namespace slidesparse::cutlass_dense
