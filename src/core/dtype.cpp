#include "slidesparse/dtype.hpp"

#include <algorithm>
#include <cctype>

#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {
struct DTypeInfo {
  DType type;
  const char* name;
  std::size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::BF16, "BF16", 2}, {DType::F16, "F16", 2},         {DType::F32, "F32", 4},
    {DType::I8, "I8", 1},     {DType::U8, "U8", 1},           {DType::I32, "I32", 4},
    {DType::I64, "I64", 8},   {DType::F8_E4M3, "F8_E4M3", 1},
};

struct PrecisionInfo {
  Precision precision;
  const char* name;
  const char* label;
  DType storage;
};
constexpr PrecisionInfo kPrecisions[] = {
    {Precision::INT8, "int8", "INT8", DType::I8},
    {Precision::FP8, "fp8", "FP8E4M3", DType::F8_E4M3},
    {Precision::BF16, "bf16", "BF16", DType::BF16},
    {Precision::FP16, "fp16", "FP16", DType::F16},
};

const DTypeInfo& info(DType t) { return kDTypes[static_cast<int>(t)]; }
const PrecisionInfo& info(Precision p) { return kPrecisions[static_cast<int>(p)]; }
}  // namespace

std::size_t dtype_size(DType t) { return info(t).size; }
const char* dtype_name(DType t) { return info(t).name; }

DType parse_dtype(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.type;
  throw FormatError("unknown dtype '" + name + "'");
}

Precision parse_precision(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "fp8e4m3" || lower == "fp8_e4m3" || lower == "e4m3") lower = "fp8";
  if (lower == "float16" || lower == "half") lower = "fp16";
  if (lower == "bfloat16") lower = "bf16";
  for (const auto& p : kPrecisions)
    if (lower == p.name) return p.precision;
  throw InvalidArgument("unknown dtype '" + name + "' (expected int8, fp8, bf16 or fp16)");
}

const char* precision_name(Precision p) { return info(p).name; }
const char* precision_label(Precision p) { return info(p).label; }
DType precision_storage(Precision p) { return info(p).storage; }
bool precision_is_quantized(Precision p) { return p == Precision::INT8 || p == Precision::FP8; }

}  // namespace slidesparse
