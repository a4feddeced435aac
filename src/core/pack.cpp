#include "slidesparse/pack.hpp"

#include <algorithm>
#include <thread>

#include "slidesparse/error.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {

namespace {
// Runs fn(row_begin, row_end) over [0, rows) split across up to `threads` threads.
template <class Fn>
void parallel_rows(std::int64_t rows, int threads, Fn fn) {
  const std::int64_t count = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, rows));
  if (count == 1) {
    fn(std::int64_t{0}, rows);
    return;
  }
  std::vector<std::thread> pool;
  const std::int64_t chunk = (rows + count - 1) / count;
  for (std::int64_t begin = 0; begin < rows; begin += chunk)
    pool.emplace_back(fn, begin, std::min(rows, begin + chunk));
  for (auto& t : pool) t.join();
}
}  // namespace

PackedLinear pack_linear(const float* w, std::int64_t n, std::int64_t k, const float* bias,
                         Precision precision, const Pattern& pattern, PruneMode prune,
                         const std::string& tensor_name, int threads) {
  if (n <= 0 || k <= 0)
    throw InvalidArgument(tensor_name + ": invalid linear shape [" + std::to_string(n) + ", " +
                          std::to_string(k) + "]");
  std::vector<float> pruned(w, w + n * k);
  if (prune == PruneMode::None) {
    if (auto v = find_group_violation(pruned.data(), n, k, pattern))
      throw InvalidArgument(tensor_name + ": row " + std::to_string(v->row) + ", group " +
                            std::to_string(v->group) + " has " + std::to_string(v->nonzeros) +
                            " non-zeros, pattern " + pattern.display_name() + " allows " +
                            std::to_string(pattern.length() - 2) + " (use --prune magnitude)");
  }

  PackedLinear out;
  out.precision = precision;
  out.pattern = pattern;
  out.n = n;
  out.k = k;
  out.scale.resize(static_cast<std::size_t>(n));
  if (bias) out.bias.assign(bias, bias + n);
  const std::size_t element = dtype_size(precision_storage(precision));
  const std::int64_t k_slide = pattern.k_slide(k);
  out.weight.resize(static_cast<std::size_t>(n * k_slide) * element);

  parallel_rows(n, threads, [&](std::int64_t begin, std::int64_t end) {
    const std::int64_t rows = end - begin;
    float* rows_w = pruned.data() + begin * k;
    if (prune == PruneMode::Magnitude) prune_magnitude(rows_w, rows, k, pattern);
    std::vector<std::uint8_t> quantized(static_cast<std::size_t>(rows * k) * element);
    quantize_rows(rows_w, rows, k, precision, quantized.data(), out.scale.data() + begin);
    slide_rows(precision_storage(precision), quantized.data(), rows, k, pattern,
               out.weight.data() + static_cast<std::size_t>(begin * k_slide) * element);
  });
  return out;
}

std::vector<std::uint8_t> unpacked_weight(const PackedLinear& packed) {
  const std::size_t element = dtype_size(precision_storage(packed.precision));
  std::vector<std::uint8_t> dense(static_cast<std::size_t>(packed.n * packed.k) * element);
  unslide_rows(precision_storage(packed.precision), packed.weight.data(), packed.n, packed.k,
               packed.pattern, dense.data());
  return dense;
}

}  // namespace slidesparse
