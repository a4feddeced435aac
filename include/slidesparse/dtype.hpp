// Element types of tensors on disk and in memory, named as safetensors names them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace slidesparse {

enum class DType : std::uint8_t { BF16, F16, F32, I8, U8, I32, I64, F8_E4M3 };

// Bytes per element.
std::size_t dtype_size(DType t);

// The safetensors spelling: "BF16", "F16", "F32", "I8", "U8", "I32", "I64", "F8_E4M3".
const char* dtype_name(DType t);

// Inverse of dtype_name; throws FormatError naming the unknown string.
DType parse_dtype(const std::string& name);

// What a linear layer computes in: the GEMM operand type.
// INT8 and FP8 are W8A8 with per-channel weight and per-token activation scales;
// BF16 and FP16 run unquantized through the same sliding path.
enum class Precision : std::uint8_t { INT8, FP8, BF16, FP16 };

// "int8", "fp8", "bf16", "fp16" (also accepts "fp8e4m3", upper case).
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);   // "int8", "fp8", "bf16", "fp16"
const char* precision_label(Precision p);  // "INT8", "FP8E4M3", "BF16", "FP16" (folder names)
DType precision_storage(Precision p);      // I8, F8_E4M3, BF16, F16
bool precision_is_quantized(Precision p);  // INT8 and FP8

}  // namespace slidesparse
