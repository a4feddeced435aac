// The INT8 kernels of our CUTLASS sm_90a dense GEMM (cutlass_dense_configs.hpp), in their own
// translation unit so that nvcc compiles the precisions in parallel.
#include "cutlass_dense_configs.hpp"

namespace slidesparse::cutlass_dense::configs {

std::unique_ptr<Launch> make_int8_launch(int config, std::int64_t n, std::int64_t k,
                                         std::int64_t m, const void* w, int device) {
  return config == 0 ? launch<Int8Small>(n, k, m, w, device) : launch<Int8Large>(n, k, m, w, device);
}

}  // namespace slidesparse::cutlass_dense::configs
