// Per-token (per-row) activation quantization for the dense path:
// X[M,K] (BF16 or F16) -> q[M,k_out] in the GEMM operand type of `p`, plus one scale per row.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/dtype.hpp"

namespace slidesparse {

// Row r of X starts at element r*ld_x of `x` (ld_x >= k). Row r of q starts at element
// r*k_out of `q`; columns [k, k_out) are written as zeros (GEMM libraries want K padded).
//   INT8: scales[r] = max(absmax/127, 1e-12), q = clamp(rint(x/scale), -127, 127)
//   FP8:  scales[r] = max(absmax/448, 1e-12), q = E4M3(x/scale), RNE, saturating
//   BF16/FP16: q = x rounded to the type (RNE); scales[r] = 1 where `scales` is given.
// Requirements (InvalidArgument otherwise): x_type BF16 or F16; k_out a multiple of 16 and
// >= k; q 16-byte aligned; `scales` non-null for INT8/FP8. Any m (grid over rows, 64-bit
// offsets) and any k; x needs no alignment (16-byte loads where x and ld_x allow them).
// Asynchronous on `stream`; bit-exact with the CPU reference.
void quantize_per_token(const void* x, DType x_type, std::int64_t m, std::int64_t k,
                        std::int64_t ld_x, Precision p, void* q, std::int64_t k_out, float* scales,
                        cudaStream_t stream);

}  // namespace slidesparse
