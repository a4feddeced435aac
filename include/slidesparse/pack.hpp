// The weight packer for one linear layer: prune → quantize → slide (DESIGN.md §3, §5).
// Quantize first, slide second: sliding only moves values, so the slid weights hold exactly
// the quantized pruned values that the dense baseline uses too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse {

struct PackedLinear {
  Precision precision = Precision::INT8;
  Pattern pattern = Pattern::from_length(8);
  std::int64_t n = 0;                // output features
  std::int64_t k = 0;                // original input features
  std::vector<std::uint8_t> weight;  // [n, k_slide()] elements of precision_storage(precision)
  std::vector<float> scale;          // [n] per output channel (1 for BF16/FP16)
  std::vector<float> bias;           // [n], or empty

  std::int64_t k_slide() const { return pattern.k_slide(k); }
};

// Packs W [n,k] (row-major floats). PruneMode::None requires W to satisfy the pattern already
// and throws InvalidArgument naming `tensor_name`, the row and the group otherwise. A NaN or
// infinite weight throws InvalidArgument naming `tensor_name`, the row and the column.
// Uses up to `threads` threads over rows.
PackedLinear pack_linear(const float* w, std::int64_t n, std::int64_t k, const float* bias,
                         Precision precision, const Pattern& pattern, PruneMode prune,
                         const std::string& tensor_name, int threads = 2);

// The same from W's raw storage as a checkpoint holds it: BF16, F16 or F32 (other dtypes throw
// InvalidArgument). Rows are widened to float a block at a time inside each thread, so no
// float copy of the whole matrix is ever made.
PackedLinear pack_linear(DType dtype, const void* w, std::int64_t n, std::int64_t k,
                         const float* bias, Precision precision, const Pattern& pattern,
                         PruneMode prune, const std::string& tensor_name, int threads = 2);

// The same into `out`, whose buffers are reused: the converter streams hundreds of tensors
// through a few PackedLinear and so never faults in fresh pages for each one.
void pack_linear_into(PackedLinear& out, DType dtype, const void* w, std::int64_t n, std::int64_t k,
                      const float* bias, Precision precision, const Pattern& pattern,
                      PruneMode prune, const std::string& tensor_name, int threads = 2);

// The quantized pruned weights [n, k] without sliding: the dense baseline's operand.
std::vector<std::uint8_t> unpacked_weight(const PackedLinear& packed);

}  // namespace slidesparse
