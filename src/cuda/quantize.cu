#include "quantize_rows.hpp"
#include "slidesparse/cuda/quantize.hpp"

namespace slidesparse {

void quantize_per_token(const void* x, DType x_type, std::int64_t m, std::int64_t k,
                        std::int64_t ld_x, Precision p, void* q, std::int64_t k_out, float* scales,
                        cudaStream_t stream) {
  detail::quantize_rows("quantize_per_token", x, x_type, m, k, ld_x, detail::ColumnMap::identity(),
                        p, q, k_out, scales, stream);
}

}  // namespace slidesparse
