// The INT8 kernels of our CUTLASS sm_90a 2:4 GEMM (cutlass_sparse_configs.hpp), in their own
// translation unit so that nvcc compiles the precisions in parallel.
#include "cutlass_sparse_configs.hpp"

namespace slidesparse::cutlass_sparse::configs {

std::unique_ptr<Launch> make_int8_launch(int config, std::int64_t n, std::int64_t k,
                                          std::int64_t m, const void* values, const void* metadata,
                                          int device) {
  switch (config) {
    case 0: return launch<Int8Small>(n, k, m, values, metadata, device);
    case 1: return launch<Int8Large>(n, k, m, values, metadata, device);
    default: return launch<Int8StreamK>(n, k, m, values, metadata, device);
  }
}

}  // namespace slidesparse::cutlass_sparse::configs
