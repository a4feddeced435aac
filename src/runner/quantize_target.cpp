// A linear layer's GEMM operand as the target of a fused producer (runner/fused_quantize.hpp).
#include "slidesparse/error.hpp"
#include "slidesparse/runner/fused_quantize.hpp"

namespace slidesparse::runner {

QuantizeTarget quantize_target(SlideSparseLinear& layer, std::int64_t m, LinearPath path) {
  SLIDESPARSE_REQUIRE(path != LinearPath::Auto, InvalidArgument,
                      "quantize_target: resolve the path for the M first (got auto)");
  const SlideSparseLinear::QuantizedRows rows = layer.quantized_rows(m, path);
  QuantizeTarget target;
  target.q = rows.q;
  target.k_out = rows.row;
  target.scales = layer.input_scales();
  target.precision = layer.precision();
  target.lift = rows.lifted;
  target.pattern = layer.pattern();
  return target;
}

}  // namespace slidesparse::runner
