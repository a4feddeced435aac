#include "slidesparse/quantize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"

namespace slidesparse {

namespace {
template <typename T>
T load(const void* data, std::int64_t index) {
  T v;
  std::memcpy(&v, static_cast<const unsigned char*>(data) + index * std::int64_t{sizeof(T)},
              sizeof v);
  return v;
}

template <typename T>
void store(T v, void* data, std::int64_t index) {
  std::memcpy(static_cast<unsigned char*>(data) + index * std::int64_t{sizeof(T)}, &v, sizeof v);
}

[[noreturn]] void unsupported(DType t, const char* what) {
  throw InvalidArgument(std::string(what) + ": dtype " + dtype_name(t) +
                        " is not a value type (expected I8, F8_E4M3, BF16, F16 or F32)");
}

float row_absmax(const float* x, std::int64_t cols) {
  float absmax = 0.0f;
  for (std::int64_t c = 0; c < cols; ++c) absmax = std::max(absmax, std::fabs(x[c]));
  return absmax;
}
}  // namespace

float quant_scale(float absmax, Precision p) {
  switch (p) {
    case Precision::INT8:
      return std::max(absmax / kInt8Max, kMinQuantScale);
    case Precision::FP8:
      return std::max(absmax / kE4M3Max, kMinQuantScale);
    case Precision::BF16:
    case Precision::FP16:
      return 1.0f;
  }
  throw InvalidArgument("quant_scale: unknown precision");
}

std::int8_t quantize_int8(float x, float scale) {
  const float r = std::nearbyint(x / scale);
  if (r >= kInt8Max) return 127;
  if (r <= -kInt8Max) return -127;
  if (std::isnan(r)) return 0;
  return static_cast<std::int8_t>(r);
}

std::uint8_t quantize_fp8(float x, float scale) { return float_to_e4m3(x / scale); }

float dequantize_output(float acc, float scale_x, float scale_w, float bias) {
  return std::fma(acc, scale_x * scale_w, bias);
}

float storage_to_float(const void* data, std::int64_t index, DType t) {
  switch (t) {
    case DType::I8:
      return load<std::int8_t>(data, index);
    case DType::F8_E4M3:
      return e4m3_to_float(load<std::uint8_t>(data, index));
    case DType::BF16:
      return bf16_to_float(load<std::uint16_t>(data, index));
    case DType::F16:
      return fp16_to_float(load<std::uint16_t>(data, index));
    case DType::F32:
      return load<float>(data, index);
    default:
      unsupported(t, "storage_to_float");
  }
}

void float_to_storage(float v, void* data, std::int64_t index, DType t) {
  switch (t) {
    case DType::I8: {
      const float r = std::nearbyint(v);
      const float clamped = std::isnan(r) ? 0.0f : std::min(127.0f, std::max(-128.0f, r));
      store(static_cast<std::int8_t>(clamped), data, index);
      return;
    }
    case DType::F8_E4M3:
      store(float_to_e4m3(v), data, index);
      return;
    case DType::BF16:
      store(float_to_bf16(v), data, index);
      return;
    case DType::F16:
      store(float_to_fp16(v), data, index);
      return;
    case DType::F32:
      store(v, data, index);
      return;
    default:
      unsupported(t, "float_to_storage");
  }
}

void quantize_rows(const float* x, std::int64_t rows, std::int64_t cols, Precision p, void* q,
                   float* scales) {
  SLIDESPARSE_REQUIRE(
      rows >= 0 && cols >= 0, InvalidArgument,
      "quantize_rows: negative shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    const std::int64_t base = r * cols;
    const float scale = quant_scale(row_absmax(row, cols), p);
    scales[r] = scale;
    switch (p) {
      case Precision::INT8:
        for (std::int64_t c = 0; c < cols; ++c) store(quantize_int8(row[c], scale), q, base + c);
        break;
      case Precision::FP8:
        for (std::int64_t c = 0; c < cols; ++c) store(quantize_fp8(row[c], scale), q, base + c);
        break;
      case Precision::BF16:
        for (std::int64_t c = 0; c < cols; ++c) store(float_to_bf16(row[c]), q, base + c);
        break;
      case Precision::FP16:
        for (std::int64_t c = 0; c < cols; ++c) store(float_to_fp16(row[c]), q, base + c);
        break;
    }
  }
}

}  // namespace slidesparse
