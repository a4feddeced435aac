// Ways the CPU reference forward can compute its seven linear layers (q, k, v, o,
// gate, up, down): plain float32, or W8A8 / BF16 through the SlideSparse CPU reference
// linear (reference_linear.hpp) on weights packed by pack_linear.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "slidesparse/checkpoint.hpp"
#include "slidesparse/dtype.hpp"
#include "slidesparse/model/weights.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse {

// Y[m, n] = X[m, k] · W[n, k]ᵀ (+ bias) of layer `layer`'s linear `kind`, bias included.
using LinearFn = std::function<std::vector<float>(std::int64_t layer, LinearKind kind,
                                                  const float* x, std::int64_t m)>;

enum class ReferenceLinearPath {
  Dense,   // reference_linear_dense on the un-slid quantized pruned weights (the baseline)
  Sparse,  // reference_linear_sparse on the slid weights with lifted activations
};

// Packs every linear of every layer once with pack_linear(pattern, precision, prune)
// and computes each call on `path`. Both paths see the same quantized pruned weights,
// so for a given input they return the same Y bit for bit (DESIGN.md §5).
LinearFn packed_reference_linears(const HostModelWeights& weights, const Pattern& pattern,
                                  Precision precision, PruneMode prune, ReferenceLinearPath path);

}  // namespace slidesparse
