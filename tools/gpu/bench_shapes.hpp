// The GEMM shapes the kernel benchmark and the tuner sweep: each preset's linear layers as a
// serving engine runs them (q,k,v fused; gate and up fused), plus a SQUARE set.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slidesparse::cli {

struct BenchShape {
  std::string model;  // preset name or "square"
  std::string layer;  // qkv, o, gate_up, down, or NxK for the square set
  std::int64_t n, k;
};

// `names`: preset names and/or "square".
std::vector<BenchShape> bench_shapes(const std::vector<std::string>& names);

}  // namespace slidesparse::cli
