// A linear layer's GEMM operand as the target of a fused producer (runner/fused_quantize.hpp).
#include "slidesparse/error.hpp"
#include "slidesparse/runner/fused_quantize.hpp"

namespace slidesparse::runner {

QuantizeTarget quantize_target(SlideSparseLinear& layer, std::int64_t m, LinearPath path) {
  SLIDESPARSE_REQUIRE(path != LinearPath::Auto, InvalidArgument,
                      "quantize_target: resolve the path for the M first (got auto)");
  QuantizeTarget target;
  target.q = layer.quantized_input(path);
  target.k_out = layer.quantized_row(m, path);
  target.scales = layer.input_scales();
  target.precision = layer.precision();
  target.lift = layer.quantize_lifts(m, path);
  target.pattern = layer.pattern();
  return target;
}

}  // namespace slidesparse::runner
