#include "slidesparse/lift.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {

namespace {
using Byte = unsigned char;

// Lifting copies values: only the element width matters. Walks the slid row window by
// window; window w of group g reads columns g·C + 2w .. g·C + 2w + 3, where a finite
// pattern has groups of C = L columns and L/2-1 windows, 2_inf groups of 2 and 1 window
// (the map of lift_source_column, without a division per element).
template <std::size_t kWidth>
void lift_windows(const Byte* in, std::int64_t k, std::int64_t groups, int group_cols, int windows,
                  Byte* out) {
  std::int64_t s = 0;
  for (std::int64_t group = 0; group < groups; ++group) {
    for (int w = 0; w < windows; ++w) {
      const std::int64_t first = group * group_cols + 2 * std::int64_t{w};
      for (int j = 0; j < 4; ++j, ++s) {
        Byte* dst = out + s * std::int64_t{kWidth};
        if (first + j < k)
          std::memcpy(dst, in + (first + j) * std::int64_t{kWidth}, kWidth);
        else
          std::memset(dst, 0, kWidth);
      }
    }
  }
}
}  // namespace

void lift_row(DType t, const void* in, std::int64_t k, const Pattern& p, void* out,
              std::int64_t k_out) {
  SLIDESPARSE_REQUIRE(k >= 0, InvalidArgument, "lift_row: negative K " + std::to_string(k));
  const std::int64_t k_slide = p.k_slide(k);
  SLIDESPARSE_REQUIRE(k_out >= k_slide, InvalidArgument,
                      "lift_row: output width " + std::to_string(k_out) +
                          " is below K_slide = " + std::to_string(k_slide) +
                          " for K = " + std::to_string(k) + " and pattern " + p.display_name());
  const std::int64_t groups = p.is_infinite() ? p.k_padded(k) / 2 : p.k_padded(k) / p.length();
  const int group_cols = p.is_infinite() ? 2 : p.length();
  const int windows = p.is_infinite() ? 1 : p.windows_per_group();
  const auto* src = static_cast<const Byte*>(in);
  auto* dst = static_cast<Byte*>(out);
  switch (dtype_size(t)) {
    case 1:
      lift_windows<1>(src, k, groups, group_cols, windows, dst);
      break;
    case 2:
      lift_windows<2>(src, k, groups, group_cols, windows, dst);
      break;
    case 4:
      lift_windows<4>(src, k, groups, group_cols, windows, dst);
      break;
    default:
      throw InvalidArgument(std::string("lift_row: dtype ") + dtype_name(t) +
                            " cannot be lifted (expected an element of 1, 2 or 4 bytes)");
  }
  const std::int64_t width = static_cast<std::int64_t>(dtype_size(t));
  std::memset(dst + k_slide * width, 0, static_cast<std::size_t>((k_out - k_slide) * width));
}

float quantize_lift_row(const float* x, std::int64_t k, const Pattern& p, Precision prec,
                        void* q_out, std::int64_t k_out) {
  SLIDESPARSE_REQUIRE(k >= 0, InvalidArgument,
                      "quantize_lift_row: negative K " + std::to_string(k));
  const DType storage = precision_storage(prec);
  std::vector<Byte> quantized(static_cast<std::size_t>(k) * dtype_size(storage));
  float scale = 0.0f;
  quantize_rows(x, 1, k, prec, quantized.data(), &scale);
  lift_row(storage, quantized.data(), k, p, q_out, k_out);
  return scale;
}

}  // namespace slidesparse
