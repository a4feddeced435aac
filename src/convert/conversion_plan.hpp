// Private to src/convert: what the converter decided to write, before writing a byte.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/safetensors.hpp"

namespace slidesparse::convert_detail {

// One piece of output: a tensor copied unchanged, or a linear layer's weight + scale
// (kept in one shard).
struct OutputUnit {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* source = nullptr;
  std::vector<TensorSpec> specs;  // 1 for a copy, 2 for a linear (weight, scale)
  bool linear = false;

  std::uint64_t nbytes() const {
    std::uint64_t total = 0;
    for (const auto& spec : specs) total += spec.nbytes();
    return total;
  }
};

struct OutputShard {
  std::string file_name;
  std::vector<const OutputUnit*> units;
};

}  // namespace slidesparse::convert_detail
