// Quantization reference (DESIGN.md §5): symmetric per-row scales for weights
// (per output channel) and activations (per token). The GPU kernels implement
// exactly these formulas, so the CPU and GPU results agree bit for bit.
#pragma once

#include <cstdint>

#include "slidesparse/dtype.hpp"

namespace slidesparse {

// Guards absmax = 0 (an all-zero row): its values quantize to 0 and the scale stays finite.
constexpr float kMinQuantScale = 1e-12f;

// INT8: max(absmax / 127, kMinQuantScale); FP8: max(absmax / 448, kMinQuantScale);
// BF16 / FP16 are not quantized: 1.
float quant_scale(float absmax, Precision p);

// clamp(nearbyint(x / scale), -127, 127): float division, round-half-even.
// NaN gives 0 (as the GPU's cvt.rni does) instead of undefined behaviour.
std::int8_t quantize_int8(float x, float scale);

// float_to_e4m3(x / scale): round-to-nearest-even, saturating to ±448.
std::uint8_t quantize_fp8(float x, float scale);

// The GEMM epilogue: fma(acc, scale_x * scale_w, bias). For INT8, acc is float(int32 acc).
float dequantize_output(float acc, float scale_x, float scale_w, float bias);

// Element `index` of raw storage as a float: I8 (the integer itself, no scale),
// F8_E4M3, BF16, F16, F32. Other dtypes throw InvalidArgument.
float storage_to_float(const void* data, std::int64_t index, DType t);

// Inverse of storage_to_float: I8 rounds half-even and saturates to [-128, 127];
// the float formats round to nearest even (E4M3 saturating).
void float_to_storage(float v, void* data, std::int64_t index, DType t);

// Per-row symmetric quantization of x [rows, cols] into q [rows, cols] of
// precision_storage(p) elements; scales [rows] receives each row's scale
// (1 for BF16 / FP16, which are only rounded). The absmax of a row must be finite.
void quantize_rows(const float* x, std::int64_t rows, std::int64_t cols, Precision p, void* q,
                   float* scales);

}  // namespace slidesparse
