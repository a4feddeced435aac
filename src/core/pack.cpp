#include "slidesparse/pack.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <thread>

#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/pack_kernels.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {

namespace {
// Rows are packed in blocks of about this many weights: the float block, its quantized copy
// and the slid output stay in L2 while one block goes through prune → quantize → slide.
constexpr std::int64_t kBlockElements = std::int64_t{1} << 16;

// Runs fn(row_begin, row_end) over [0, rows) split across up to `threads` threads. An
// exception thrown by a worker is rethrown here; when several throw, the one of the lowest
// rows wins, so the error reported does not depend on the thread count.
template <class Fn>
void parallel_rows(std::int64_t rows, int threads, Fn fn) {
  const std::int64_t count = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, rows));
  if (count == 1) {
    fn(std::int64_t{0}, rows);
    return;
  }
  const std::int64_t chunk = (rows + count - 1) / count;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(count));
  std::vector<std::thread> pool;
  for (std::int64_t t = 0; t < count && t * chunk < rows; ++t) {
    pool.emplace_back([&, t] {
      try {
        fn(t * chunk, std::min(rows, (t + 1) * chunk));
      } catch (...) {
        errors[static_cast<std::size_t>(t)] = std::current_exception();
      }
    });
  }
  for (auto& thread : pool) thread.join();
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
}

// Raw BF16 / F16 / F32 rows → floats. BF16 is the upper half of a float: one shift.
void widen(DType dtype, const std::uint8_t* in, std::int64_t count, float* out) {
  switch (dtype) {
    case DType::BF16:
      for (std::int64_t i = 0; i < count; ++i) {
        std::uint16_t half;
        std::memcpy(&half, in + 2 * i, 2);
        const std::uint32_t bits = static_cast<std::uint32_t>(half) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
    case DType::F16:
      for (std::int64_t i = 0; i < count; ++i) {
        std::uint16_t half;
        std::memcpy(&half, in + 2 * i, 2);
        out[i] = fp16_to_float(half);
      }
      return;
    case DType::F32:
      std::memcpy(out, in, static_cast<std::size_t>(count) * 4);
      return;
    default:
      throw InvalidArgument(std::string("pack_linear: weights of dtype ") + dtype_name(dtype) +
                            " cannot be packed (expected BF16, F16 or F32)");
  }
}

// Throws naming the first non-finite weight of rows [first_row, first_row + rows).
void require_finite(const float* w, std::int64_t rows, std::int64_t k, std::int64_t first_row,
                    const std::string& tensor_name) {
  // Exponent all ones is Inf or NaN; the branch-free scan keeps the common case fast.
  std::uint32_t any = 0;
  for (std::int64_t i = 0; i < rows * k; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, w + i, 4);
    any |= static_cast<std::uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
  }
  if (!any) return;
  for (std::int64_t i = 0; i < rows * k; ++i) {
    if (std::isfinite(w[i])) continue;
    throw InvalidArgument(tensor_name + ": row " + std::to_string(first_row + i / k) + ", column " +
                          std::to_string(i % k) + " holds " + (std::isnan(w[i]) ? "NaN" : "Inf") +
                          " (weights must be finite to be quantized)");
  }
}

// prune → quantize → slide rows [begin, end) of W into `out`.
void pack_rows(DType dtype, const std::uint8_t* w, std::int64_t begin, std::int64_t end,
               PruneMode prune, const std::string& tensor_name, PackedLinear& out) {
  const std::int64_t k = out.k;
  const std::int64_t k_slide = out.k_slide();
  const DType storage = precision_storage(out.precision);
  const std::size_t element = dtype_size(storage);
  const std::size_t in_element = dtype_size(dtype);
  const std::int64_t block_rows = std::max<std::int64_t>(1, kBlockElements / k);
  std::vector<float> block(static_cast<std::size_t>(std::min(block_rows, end - begin) * k));
  std::vector<std::uint8_t> quantized(block.size() * element);
  for (std::int64_t row = begin; row < end; row += block_rows) {
    const std::int64_t rows = std::min(block_rows, end - row);
    widen(dtype, w + static_cast<std::size_t>(row * k) * in_element, rows * k, block.data());
    require_finite(block.data(), rows, k, row, tensor_name);
    if (prune == PruneMode::Magnitude) {
      pack_kernels::prune_magnitude(block.data(), rows, k, out.pattern);
    } else if (auto v = find_group_violation(block.data(), rows, k, out.pattern)) {
      throw InvalidArgument(tensor_name + ": row " + std::to_string(row + v->row) + ", group " +
                            std::to_string(v->group) + " has " + std::to_string(v->nonzeros) +
                            " non-zeros, pattern " + out.pattern.display_name() + " allows " +
                            std::to_string(out.pattern.length() - 2) + " (use --prune magnitude)");
    }
    pack_kernels::quantize_rows(block.data(), rows, k, out.precision, quantized.data(),
                                out.scale.data() + row);
    pack_kernels::slide_rows(storage, quantized.data(), rows, k, out.pattern,
                             out.weight.data() + static_cast<std::size_t>(row * k_slide) * element);
  }
}
}  // namespace

void pack_linear_into(PackedLinear& out, DType dtype, const void* w, std::int64_t n, std::int64_t k,
                      const float* bias, Precision precision, const Pattern& pattern,
                      PruneMode prune, const std::string& tensor_name, int threads) {
  if (n <= 0 || k <= 0)
    throw InvalidArgument(tensor_name + ": invalid linear shape [" + std::to_string(n) + ", " +
                          std::to_string(k) + "]");
  out.precision = precision;
  out.pattern = pattern;
  out.n = n;
  out.k = k;
  out.scale.resize(static_cast<std::size_t>(n));
  if (bias) {
    out.bias.assign(bias, bias + n);
  } else {
    out.bias.clear();
  }
  const std::size_t element = dtype_size(precision_storage(precision));
  out.weight.resize(static_cast<std::size_t>(n * out.k_slide()) * element);
  const auto* bytes = static_cast<const std::uint8_t*>(w);
  parallel_rows(n, threads, [&](std::int64_t begin, std::int64_t end) {
    pack_rows(dtype, bytes, begin, end, prune, tensor_name, out);
  });
}

PackedLinear pack_linear(DType dtype, const void* w, std::int64_t n, std::int64_t k,
                         const float* bias, Precision precision, const Pattern& pattern,
                         PruneMode prune, const std::string& tensor_name, int threads) {
  PackedLinear out;
  pack_linear_into(out, dtype, w, n, k, bias, precision, pattern, prune, tensor_name, threads);
  return out;
}

PackedLinear pack_linear(const float* w, std::int64_t n, std::int64_t k, const float* bias,
                         Precision precision, const Pattern& pattern, PruneMode prune,
                         const std::string& tensor_name, int threads) {
  return pack_linear(DType::F32, w, n, k, bias, precision, pattern, prune, tensor_name, threads);
}

std::vector<std::uint8_t> unpacked_weight(const PackedLinear& packed) {
  const std::size_t element = dtype_size(precision_storage(packed.precision));
  std::vector<std::uint8_t> dense(static_cast<std::size_t>(packed.n * packed.k) * element);
  unslide_rows(precision_storage(packed.precision), packed.weight.data(), packed.n, packed.k,
               packed.pattern, dense.data());
  return dense;
}

}  // namespace slidesparse
