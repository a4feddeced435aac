// The lifting variant of our sm_90a 2:4 GEMM (phase 2, cutlass_lift_mainloop.hpp): the same
// compressed slid weights and dequantizing epilogue as cutlass_sparse, but B is the un-lifted
// quantized X [M, raw_k] (rows raw_ld elements apart), lifted inside the kernel. Plain C++
// surface: no CUTLASS header reaches the rest of the library.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cutlass_sparse_kernels.hpp"  // Launch, LaunchPointers, the compressed weights
#include "slidesparse/dtype.hpp"

namespace slidesparse::cutlass_lift {

// X as the kernel reads it, and the pattern's lift: window w of group g reads raw columns
// g·group_cols + 2w … + 3 (a finite pattern of length L: group_cols = L, L/2 - 1 windows;
// 2_inf: 2 and 1). Columns at or past raw_k read as zero.
struct LiftInput {
  int group_cols = 0;
  int windows = 0;
  std::int64_t raw_k = 0;
  std::int64_t raw_ld = 0;  // a multiple of 16 (TMA's 16-byte row stride)
};

// Compiled tile configurations for one precision (INT8 or FP8); 0 for the others.
int config_count(Precision precision);
std::string config_name(Precision precision, int config);
// Whether the kernel can lift this pattern: each K tile's 128 lifted columns must read at most
// 128 raw ones (true for every pattern of the family).
bool can_lift(int group_cols, int windows);

// Throws DeviceError when the configuration cannot run this shape (CUTLASS's can_implement).
// values/metadata: the weights compressed by cutlass_sparse::compress for [n, k] (k lifted).
std::unique_ptr<cutlass_sparse::Launch> make_launch(Precision precision, int config, std::int64_t n,
                                                    std::int64_t k, std::int64_t m,
                                                    const void* values, const void* metadata,
                                                    int device, const LiftInput& input);

}  // namespace slidesparse::cutlass_lift
