// Checks a converted checkpoint (docs/format.md) the way the GPU will rely on it: every
// slid weight is 2:4 in every aligned window of 4 (what cuSPARSELt accepts), un-slides
// losslessly into a matrix that satisfies the pattern, and has usable scales.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "slidesparse/converted_checkpoint.hpp"

namespace slidesparse {

struct VerifyReport {
  ConvertedModelInfo info;
  std::int64_t layers_checked = 0;
  std::int64_t tensors = 0;        // tensors in the checkpoint
  std::uint64_t weight_bytes = 0;  // slid weight bytes checked
  double seconds = 0;
};

// Reports bytes of slid weights checked so far.
using VerifyProgress = std::function<void(std::uint64_t done, std::uint64_t total)>;

// Checks, for every layer of the "slidesparse" section: the weight exists with dtype
// precision_storage and shape [n, k_slide]; every aligned window of 4 holds at most 2
// non-zeros; no value is NaN or infinite; the rows un-slide losslessly (no non-zero in the
// padding, no two non-zeros claiming one column), which with the window check means every
// group of L holds at most L-2 non-zeros; the scales are [n] F32, finite and positive. Throws
// FormatError naming the file, the tensor and the row on the first failure; returns what was
// checked otherwise.
VerifyReport verify_checkpoint(const std::string& dir, const VerifyProgress& progress = {});

}  // namespace slidesparse
