// The GEMM epilogue as a kernel: Y[M,N] = acc[M,N] · scale_x[m] · scale_w[n] + bias[n],
// rounded to BF16 or F16.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/dtype.hpp"

namespace slidesparse {

// y[r, c] = RN_out(fma(acc[r, c], scale_x[r] · scale_w[c], bias[c])), acc converted to
// float first (int32 rounds to nearest). A null scale reads as 1 and a null bias as 0
// (BF16/FP16 GEMMs pass both scales null). Row r of acc starts at element r*ld_acc,
// of y at r*ld_y. Requirements (InvalidArgument otherwise): acc_type I32, F32, BF16 or F16,
// y_type BF16 or F16, ld_acc >= n, ld_y >= n, n < 2^31. Any m (64-bit offsets);
// 16-byte vector accesses where pointers and strides allow. Asynchronous on `stream`.
void dequantize_output(const void* acc, DType acc_type, std::int64_t m, std::int64_t n,
                       std::int64_t ld_acc, const float* scale_x, const float* scale_w,
                       const float* bias, DType y_type, void* y, std::int64_t ld_y,
                       cudaStream_t stream);

}  // namespace slidesparse
