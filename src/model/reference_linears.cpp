#include "slidesparse/model/reference_linears.hpp"

#include <memory>

#include "slidesparse/pack.hpp"
#include "slidesparse/reference_linear.hpp"

namespace slidesparse {

namespace {

struct PackedReferenceLinear {
  QuantizedMatrix matrix;  // [n, k] un-slid (Dense) or [n, k_slide] slid (Sparse)
  std::vector<float> bias;
  std::int64_t k = 0;  // original input features
};

}  // namespace

LinearFn packed_reference_linears(const HostModelWeights& weights, const Pattern& pattern,
                                  Precision precision, PruneMode prune, ReferenceLinearPath path) {
  // [layer][kind], shared by every copy of the returned function.
  auto packed = std::make_shared<std::vector<std::vector<PackedReferenceLinear>>>();
  for (std::int64_t layer = 0; layer < weights.layers(); ++layer) {
    auto& kinds = packed->emplace_back();
    for (const LinearKind kind : all_linear_kinds()) {
      const HostLinear& linear = weights.layer(layer).linear(kind);
      const PackedLinear p =
          pack_linear(linear.weight.data(), linear.n, linear.k,
                      linear.bias.empty() ? nullptr : linear.bias.data(), precision, pattern, prune,
                      linear_weight_name(layer, kind));
      PackedReferenceLinear r;
      r.matrix.precision = precision;
      r.matrix.rows = p.n;
      r.matrix.cols = path == ReferenceLinearPath::Dense ? p.k : p.k_slide();
      r.matrix.data = path == ReferenceLinearPath::Dense ? unpacked_weight(p) : p.weight;
      r.matrix.scales = p.scale;
      r.bias = p.bias;
      r.k = p.k;
      kinds.push_back(std::move(r));
    }
  }
  return
      [packed, pattern, path](std::int64_t layer, LinearKind kind, const float* x, std::int64_t m) {
        const PackedReferenceLinear& r =
            (*packed)[static_cast<std::size_t>(layer)][static_cast<std::size_t>(kind)];
        const float* bias = r.bias.empty() ? nullptr : r.bias.data();
        return path == ReferenceLinearPath::Dense
                   ? reference_linear_dense(x, m, r.matrix, bias)
                   : reference_linear_sparse(x, m, r.k, r.matrix, pattern, bias);
      };
}

}  // namespace slidesparse
