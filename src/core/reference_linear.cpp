#include "slidesparse/reference_linear.hpp"

#include <algorithm>
#include <string>
#include <thread>

#include "slidesparse/error.hpp"
#include "slidesparse/lift.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {

namespace {
// Below this many multiply-adds one thread is faster than starting several.
constexpr std::int64_t kParallelWork = std::int64_t{1} << 22;

// int32 accumulation of K products of at most 127·127 cannot overflow below this K.
constexpr std::int64_t kMaxInt8Reduction = 2147483647 / (127 * 127);

std::int64_t element_count(std::int64_t rows, std::int64_t cols) { return rows * cols; }

void require_valid(const QuantizedMatrix& w, const char* what) {
  const std::size_t bytes = static_cast<std::size_t>(element_count(w.rows, w.cols)) *
                            dtype_size(precision_storage(w.precision));
  SLIDESPARSE_REQUIRE(w.rows >= 0 && w.cols >= 0 && w.data.size() == bytes &&
                          w.scales.size() == static_cast<std::size_t>(w.rows),
                      InvalidArgument,
                      std::string(what) + ": quantized matrix [" + std::to_string(w.rows) + ", " +
                          std::to_string(w.cols) + "] of " + precision_name(w.precision) + " has " +
                          std::to_string(w.data.size()) + " bytes and " +
                          std::to_string(w.scales.size()) + " scales (expected " +
                          std::to_string(bytes) + " and " + std::to_string(w.rows) + ")");
}

// Runs body(first_row, end_row) over [0, m), split across threads when the work is large.
// body must not throw: every check happens before the split.
template <typename Body>
void for_row_blocks(std::int64_t m, std::int64_t work, const Body& body) {
  const std::int64_t hardware = std::max(1u, std::thread::hardware_concurrency());
  const std::int64_t threads = work < kParallelWork ? 1 : std::min(hardware, m);
  if (threads <= 1) {
    body(std::int64_t{0}, m);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  const std::int64_t block = (m + threads - 1) / threads;
  try {
    for (std::int64_t first = 0; first < m; first += block)
      pool.emplace_back(body, first, std::min(m, first + block));
  } catch (...) {
    for (auto& t : pool) t.join();
    throw;
  }
  for (auto& t : pool) t.join();
}

// Floats of the non-integer operands; every product of two of them is exact in float
// (at most 11 + 11 significant bits), so only the sums round.
std::vector<float> decode(const std::uint8_t* data, std::int64_t count, DType t) {
  std::vector<float> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i)
    out[static_cast<std::size_t>(i)] = storage_to_float(data, i, t);
  return out;
}

// Y = dequantize(Xq · Wqᵀ) for Xq [m, w.cols] in w's precision, its row scales x_scales [m].
std::vector<float> quantized_product(const std::vector<std::uint8_t>& xq,
                                     const std::vector<float>& x_scales, std::int64_t m,
                                     const QuantizedMatrix& w, const float* bias) {
  const std::int64_t n = w.rows;
  const std::int64_t k = w.cols;
  std::vector<float> y(static_cast<std::size_t>(element_count(m, n)));
  const auto epilogue = [&](std::int64_t row, std::int64_t col, float acc) {
    y[static_cast<std::size_t>(row * n + col)] =
        dequantize_output(acc, x_scales[static_cast<std::size_t>(row)],
                          w.scales[static_cast<std::size_t>(col)], bias ? bias[col] : 0.0f);
  };
  if (w.precision == Precision::INT8) {
    SLIDESPARSE_REQUIRE(k <= kMaxInt8Reduction, InvalidArgument,
                        "reference linear: K = " + std::to_string(k) +
                            " could overflow the int32 accumulator of INT8 (at most " +
                            std::to_string(kMaxInt8Reduction) + ")");
    const auto* xi = reinterpret_cast<const std::int8_t*>(xq.data());
    const auto* wi = reinterpret_cast<const std::int8_t*>(w.data.data());
    for_row_blocks(m, element_count(m, n) * k, [&](std::int64_t first, std::int64_t end) {
      for (std::int64_t row = first; row < end; ++row)
        for (std::int64_t col = 0; col < n; ++col) {
          std::int32_t acc = 0;
          for (std::int64_t i = 0; i < k; ++i)
            acc += std::int32_t{xi[row * k + i]} * std::int32_t{wi[col * k + i]};
          epilogue(row, col, static_cast<float>(acc));
        }
    });
    return y;
  }
  const DType storage = precision_storage(w.precision);
  const std::vector<float> xf = decode(xq.data(), element_count(m, k), storage);
  const std::vector<float> wf = decode(w.data.data(), element_count(n, k), storage);
  for_row_blocks(m, element_count(m, n) * k, [&](std::int64_t first, std::int64_t end) {
    for (std::int64_t row = first; row < end; ++row)
      for (std::int64_t col = 0; col < n; ++col) {
        float acc = 0.0f;
        for (std::int64_t i = 0; i < k; ++i)
          acc +=
              xf[static_cast<std::size_t>(row * k + i)] * wf[static_cast<std::size_t>(col * k + i)];
        epilogue(row, col, acc);
      }
  });
  return y;
}
}  // namespace

QuantizedMatrix quantize_matrix(const float* w, std::int64_t rows, std::int64_t cols, Precision p) {
  SLIDESPARSE_REQUIRE(rows >= 0 && cols >= 0, InvalidArgument,
                      "quantize_matrix: negative shape [" + std::to_string(rows) + ", " +
                          std::to_string(cols) + "]");
  QuantizedMatrix q;
  q.precision = p;
  q.rows = rows;
  q.cols = cols;
  q.data.resize(static_cast<std::size_t>(element_count(rows, cols)) *
                dtype_size(precision_storage(p)));
  q.scales.resize(static_cast<std::size_t>(rows));
  quantize_rows(w, rows, cols, p, q.data.data(), q.scales.data());
  return q;
}

QuantizedMatrix slide_matrix(const QuantizedMatrix& w, const Pattern& p) {
  require_valid(w, "slide_matrix");
  QuantizedMatrix slid;
  slid.precision = w.precision;
  slid.rows = w.rows;
  slid.cols = p.k_slide(w.cols);
  slid.data.resize(static_cast<std::size_t>(element_count(slid.rows, slid.cols)) *
                   dtype_size(precision_storage(w.precision)));
  slid.scales = w.scales;
  slide_rows(precision_storage(w.precision), w.data.data(), w.rows, w.cols, p, slid.data.data());
  return slid;
}

std::vector<float> reference_linear_dense(const float* x, std::int64_t m, const QuantizedMatrix& w,
                                          const float* bias) {
  require_valid(w, "reference_linear_dense");
  SLIDESPARSE_REQUIRE(m >= 0, InvalidArgument,
                      "reference_linear_dense: negative M " + std::to_string(m));
  std::vector<std::uint8_t> xq(static_cast<std::size_t>(element_count(m, w.cols)) *
                               dtype_size(precision_storage(w.precision)));
  std::vector<float> x_scales(static_cast<std::size_t>(m));
  quantize_rows(x, m, w.cols, w.precision, xq.data(), x_scales.data());
  return quantized_product(xq, x_scales, m, w, bias);
}

std::vector<float> reference_linear_sparse(const float* x, std::int64_t m, std::int64_t k,
                                           const QuantizedMatrix& w_slid, const Pattern& p,
                                           const float* bias) {
  require_valid(w_slid, "reference_linear_sparse");
  SLIDESPARSE_REQUIRE(m >= 0 && k >= 0, InvalidArgument,
                      "reference_linear_sparse: negative shape M = " + std::to_string(m) +
                          ", K = " + std::to_string(k));
  const std::int64_t k_slide = p.k_slide(k);
  SLIDESPARSE_REQUIRE(w_slid.cols == k_slide, InvalidArgument,
                      "reference_linear_sparse: slid weights have " + std::to_string(w_slid.cols) +
                          " columns, pattern " + p.display_name() +
                          " lifts K = " + std::to_string(k) + " to " + std::to_string(k_slide));
  const std::size_t width = dtype_size(precision_storage(w_slid.precision));
  std::vector<std::uint8_t> xq(static_cast<std::size_t>(element_count(m, k_slide)) * width);
  std::vector<float> x_scales(static_cast<std::size_t>(m));
  for (std::int64_t row = 0; row < m; ++row)
    x_scales[static_cast<std::size_t>(row)] =
        quantize_lift_row(x + row * k, k, p, w_slid.precision,
                          xq.data() + static_cast<std::size_t>(row * k_slide) * width, k_slide);
  return quantized_product(xq, x_scales, m, w_slid, bias);
}

}  // namespace slidesparse
