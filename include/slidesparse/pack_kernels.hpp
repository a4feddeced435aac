// The packer's inner loops: the same results as the references prune_magnitude,
// quantize_rows, float_to_e4m3 and slide_rows, bit for bit (tests/test_pack_kernels.cpp compares
// them), written to run at memory speed. The references say what the numbers are; these make the
// converter stream a 7B model in about a minute on two cores. Inputs must be finite.
#pragma once

#include <cstdint>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse::pack_kernels {

// prune_magnitude: in every group of L along each row, zero the 2 smallest |w| (ties: the
// higher column first); a last partial group of L-1 loses its smallest one.
void prune_magnitude(float* w, std::int64_t rows, std::int64_t k, const Pattern& p);

// quantize_rows: per-row symmetric quantization into precision_storage(p) elements.
void quantize_rows(const float* x, std::int64_t rows, std::int64_t cols, Precision p, void* q,
                   float* scales);

// float_to_e4m3 without branches or libm: RNE, saturating to ±448.
std::uint8_t float_to_e4m3(float x);

// slide_rows for the packer's storage types (I8, F8_E4M3, BF16, F16): each group's non-zero
// mask looks up where the reference greedy puts every value. Throws InvalidArgument naming
// the row and group when a group holds more than L-2 non-zeros.
void slide_rows(DType t, const void* in, std::int64_t rows, std::int64_t k, const Pattern& p,
                void* out);

}  // namespace slidesparse::pack_kernels
