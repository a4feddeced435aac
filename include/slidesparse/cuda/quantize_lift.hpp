// Per-token quantization fused with the activation lifting of DESIGN.md §4:
// X[M,K] -> Xslide[M,k_out], slid column s holding quantized X[m, lift_source_column(s)].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse {

// Same contract as quantize_per_token (quantize.hpp), with the lifted row as output:
// k_out >= pattern.k_slide(k), a multiple of 16; columns whose source is past K and columns
// [k_slide, k_out) are zeros. The scale is the absmax of the K real values of the row.
void quantize_lift_per_token(const void* x, DType x_type, std::int64_t m, std::int64_t k,
                             std::int64_t ld_x, const Pattern& pattern, Precision p, void* q,
                             std::int64_t k_out, float* scales, cudaStream_t stream);

}  // namespace slidesparse
