// Activation lifting (DESIGN.md §4): slid column s of an activation row takes
// original column lift_source_column(s), so that Σ_s Wslide[n,s]·Xlift[m,s] equals
// Σ_k W[n,k]·X[m,k]. These are the CPU references of the fused GPU kernels.
#pragma once

#include <cstdint>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse {

// in [k] -> out [k_out] of the same raw element type t (any of 1, 2 or 4 bytes):
// out[s] = in[k(s)] for s < p.k_slide(k); all-zero bits where k(s) = -1 and for
// s in [k_slide, k_out) (the GEMMs may need K padded further). k_out >= k_slide.
void lift_row(DType t, const void* in, std::int64_t k, const Pattern& p, void* out,
              std::int64_t k_out);

// The fused per-token quantize + lift: absmax over the row's k real values,
// scale = quant_scale(absmax, prec), q_out [k_out] of precision_storage(prec) receives the
// quantized, lifted row (exactly quantize_rows followed by lift_row). Returns the scale.
float quantize_lift_row(const float* x, std::int64_t k, const Pattern& p, Precision prec,
                        void* q_out, std::int64_t k_out);

}  // namespace slidesparse
