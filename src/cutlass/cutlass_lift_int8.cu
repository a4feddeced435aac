// The INT8 kernels of the lifting variant of our CUTLASS sm_90a 2:4 GEMM
// (cutlass_lift_configs.hpp), in their own translation unit so that nvcc compiles the
// precisions in parallel.
#include "cutlass_lift_configs.hpp"

namespace slidesparse::cutlass_lift::configs {

std::unique_ptr<cutlass_sparse::Launch> make_int8_launch(int config, std::int64_t n, std::int64_t k,
                                                         std::int64_t m, const void* values,
                                                         const void* metadata, int device,
                                                         const LiftInput& input) {
  switch (config) {
    case 0: return launch<Int8Pair>(n, k, m, values, metadata, device, input);
    case 1: return launch<Int8Wide>(n, k, m, values, metadata, device, input);
    default: return launch<Int8Narrow>(n, k, m, values, metadata, device, input);
  }
}

}  // namespace slidesparse::cutlass_lift::configs
