#include "slidesparse/layer/linear_scratch.hpp"

namespace slidesparse {

namespace {
template <class T>
void grow(DeviceBuffer<T>& buffer, std::size_t count) {
  if (buffer.size() >= count) return;
  buffer = DeviceBuffer<T>();  // free first: the old and the new one need not fit together
  buffer = DeviceBuffer<T>(count);
  buffer.fill_zero(nullptr);
}
}  // namespace

void LinearScratch::reserve(std::size_t q_sparse_bytes, std::size_t q_dense_bytes,
                            std::size_t scale_count, std::size_t acc_bytes) {
  grow(q_sparse_, q_sparse_bytes);
  grow(q_dense_, q_dense_bytes);
  grow(scale_x_, scale_count);
  grow(acc_, acc_bytes);
}

std::uint64_t LinearScratch::bytes() const {
  return q_sparse_.size() + q_dense_.size() + scale_x_.size() * sizeof(float) + acc_.size();
}

}  // namespace slidesparse
