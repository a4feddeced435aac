// RMSNorm of the residual stream (optionally after adding a layer's output) fused with the
// quantization of the next linear layer's input (runner/fused_quantize.hpp).
#include <cstdint>

#include "fused_quantize_kernel.cuh"
#include "slidesparse/runner/fused_quantize.hpp"

namespace slidesparse::runner {
namespace {

using detail::add_in_bf16;
using detail::aligned16;
using detail::load_floats;
using detail::store_floats;

// Rows of x [rows, width]; with y, x += y first (rounded to BF16) through `sum` (x itself, as
// a writable pointer), as add_rms_norm_kernel does.
struct ResidualSource {
  const bf16* x;
  const bf16* y;  // nullptr: no add
  bf16* sum;      // == x when y is given
  std::int64_t width;

  template <int V>
  __device__ __forceinline__ void load(std::int64_t row, std::int64_t col, float (&f)[V]) const {
    const std::int64_t offset = row * width + col;
    load_floats<V>(x + offset, f);
    if (y == nullptr) return;
    float a[V];
    load_floats<V>(y + offset, a);
#pragma unroll
    for (int k = 0; k < V; ++k) f[k] = add_in_bf16(f[k], a[k]);
    store_floats<V>(sum + offset, f);
  }
  template <int V>
  __device__ __forceinline__ void reload(std::int64_t row, std::int64_t col, float (&f)[V]) const {
    load_floats<V>(x + row * width + col, f);  // the sum, once stored
  }
  __device__ __forceinline__ float at(std::int64_t row, std::int64_t col) const {
    return __bfloat162float(x[row * width + col]);
  }
};

}  // namespace

void rms_norm_quantize_lift(const bf16* x, const bf16* weight, std::int64_t rows,
                            std::int64_t width, float eps, const QuantizeTarget& target,
                            cudaStream_t stream) {
  SLIDESPARSE_REQUIRE(weight != nullptr, InvalidArgument,
                      "rms_norm_quantize_lift: null norm weight");
  const ResidualSource source{x, nullptr, nullptr, width};
  detail::launch_produce_quantize("rms_norm_quantize_lift", source, rows, width, aligned16(x),
                                  weight, eps, target, stream);
}

void add_rms_norm_quantize_lift(bf16* residual, const bf16* y, const bf16* weight,
                                std::int64_t rows, std::int64_t width, float eps,
                                const QuantizeTarget& target, cudaStream_t stream) {
  SLIDESPARSE_REQUIRE(weight != nullptr && y != nullptr, InvalidArgument,
                      "add_rms_norm_quantize_lift: null y or norm weight");
  const ResidualSource source{residual, y, residual, width};
  detail::launch_produce_quantize("add_rms_norm_quantize_lift", source, rows, width,
                                  aligned16(residual) && aligned16(y), weight, eps, target, stream);
}

}  // namespace slidesparse::runner
