// Private to src/cuda: plain quantization is lifting through the identity column map,
// so both public entry points share one kernel template and one dispatch table.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse::detail {

// Which column map a quantized row goes through.
struct ColumnMap {
  static ColumnMap identity() { return ColumnMap{true, Pattern::infinite()}; }
  static ColumnMap lift(const Pattern& pattern) { return ColumnMap{false, pattern}; }

  bool is_identity;
  Pattern pattern;  // meaningful when !is_identity
};

// `caller` names the public function in error messages.
void quantize_rows(const char* caller, const void* x, DType x_type, std::int64_t m, std::int64_t k,
                   std::int64_t ld_x, const ColumnMap& map, Precision p, void* q,
                   std::int64_t k_out, float* scales, cudaStream_t stream);

}  // namespace slidesparse::detail
