#include "slidesparse/slide.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {
using Byte = unsigned char;

// How a row is cut into groups. A finite pattern has groups of L columns with L/2-1
// windows each. 2_inf is the same with groups of 2 columns and 1 window: window g
// covers columns 2g .. 2g+3 and holds x(2g), x(2g+1) at offsets 0, 1.
struct Geometry {
  std::int64_t groups;
  int group_cols;
  int windows;
  int slid_width() const { return 4 * windows; }
};

Geometry geometry_of(const Pattern& p, std::int64_t k) {
  if (p.is_infinite()) return {p.k_padded(k) / 2, 2, 1};
  return {p.k_padded(k) / p.length(), p.length(), p.windows_per_group()};
}

// The greedy step (DESIGN.md §3): position `pos` of a group is covered by windows
// pos/2-1 and pos/2; take the earliest that exists and has room. -1: no room.
int greedy_window(int pos, const int* fill, int windows) {
  const int left = pos / 2 - 1;
  if (left >= 0 && fill[left] < 2) return left;
  const int right = pos / 2;
  if (right < windows && fill[right] < 2) return right;
  return -1;
}

constexpr int kMaxWindows = Pattern::kMaxLength / 2 - 1;

template <typename T>
T load(const Byte* base, std::int64_t index) {
  T v;
  std::memcpy(&v, base + index * std::int64_t{sizeof(T)}, sizeof v);
  return v;
}

template <typename T>
void store(T v, Byte* base, std::int64_t index) {
  std::memcpy(base + index * std::int64_t{sizeof(T)}, &v, sizeof v);
}

void require_shape(std::int64_t rows, std::int64_t cols, const char* what) {
  SLIDESPARSE_REQUIRE(rows >= 0 && cols >= 0, InvalidArgument,
                      std::string(what) + ": negative shape [" + std::to_string(rows) + ", " +
                          std::to_string(cols) + "]");
}

// Raw elements of width sizeof(T); a value is zero when its bits under kMagnitude are.
template <typename T, T kMagnitude>
struct Kernels {
  static bool is_zero(T v) { return (v & kMagnitude) == 0; }

  [[noreturn]] static void too_many_nonzeros(const Byte* row, std::int64_t r, std::int64_t group,
                                             std::int64_t start, int size, const Pattern& p) {
    int nonzeros = 0;
    for (int pos = 0; pos < size; ++pos) nonzeros += !is_zero(load<T>(row, start + pos));
    throw InvalidArgument("slide: row " + std::to_string(r) + ", group " + std::to_string(group) +
                          " (columns " + std::to_string(start) + ".." +
                          std::to_string(start + size - 1) + ") holds " + std::to_string(nonzeros) +
                          " non-zeros; pattern " + p.display_name() + " allows at most " +
                          std::to_string(p.length() - 2) + " (prune the weights first)");
  }

  static void slide(const Byte* in, std::int64_t rows, std::int64_t k, const Pattern& p,
                    Byte* out) {
    const Geometry g = geometry_of(p, k);
    const std::int64_t k_slide = g.groups * g.slid_width();
    for (std::int64_t r = 0; r < rows; ++r) {
      const Byte* src = in + r * k * std::int64_t{sizeof(T)};
      Byte* dst = out + r * k_slide * std::int64_t{sizeof(T)};
      std::memset(dst, 0, static_cast<std::size_t>(k_slide) * sizeof(T));
      for (std::int64_t group = 0; group < g.groups; ++group) {
        const std::int64_t start = group * g.group_cols;
        const int size = static_cast<int>(std::min<std::int64_t>(g.group_cols, k - start));
        Byte* window_base = dst + group * g.slid_width() * std::int64_t{sizeof(T)};
        int fill[kMaxWindows] = {};
        for (int pos = 0; pos < size; ++pos) {
          const T v = load<T>(src, start + pos);
          if (is_zero(v)) continue;
          const int w = greedy_window(pos, fill, g.windows);
          if (w < 0) too_many_nonzeros(src, r, group, start, size, p);
          ++fill[w];
          store(v, window_base, pos + 2 * w);  // window w, offset pos - 2w
        }
      }
    }
  }

  static void unslide(const Byte* in, std::int64_t rows, std::int64_t k, const Pattern& p,
                      Byte* out) {
    const Geometry g = geometry_of(p, k);
    const std::int64_t k_slide = g.groups * g.slid_width();
    for (std::int64_t r = 0; r < rows; ++r) {
      const Byte* src = in + r * k_slide * std::int64_t{sizeof(T)};
      Byte* dst = out + r * k * std::int64_t{sizeof(T)};
      std::memset(dst, 0, static_cast<std::size_t>(k) * sizeof(T));
      std::int64_t s = 0;
      for (std::int64_t group = 0; group < g.groups; ++group) {
        for (int w = 0; w < g.windows; ++w) {
          const std::int64_t first =
              group * g.group_cols + 2 * std::int64_t{w};  // covers first..+3
          for (int j = 0; j < 4; ++j, ++s) {
            const T v = load<T>(src, s);
            if (is_zero(v)) continue;
            const std::int64_t col = first + j;
            if (col >= k || !is_zero(load<T>(dst, col)))
              throw InvalidArgument("unslide: row " + std::to_string(r) + ", slid column " +
                                    std::to_string(s) + " holds a non-zero for column " +
                                    std::to_string(col) +
                                    (col >= k ? " beyond K = " + std::to_string(k)
                                              : std::string(" that another slot already holds")) +
                                    "; not a matrix slid with pattern " + p.display_name());
            store(v, dst, col);
          }
        }
      }
    }
  }

  static std::optional<WindowViolation> find_2to4_violation(const Byte* data, std::int64_t rows,
                                                            std::int64_t cols) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const Byte* row = data + r * cols * std::int64_t{sizeof(T)};
      for (std::int64_t w = 0; w < cols / 4; ++w) {
        int nonzeros = 0;
        for (int j = 0; j < 4; ++j) nonzeros += !is_zero(load<T>(row, 4 * w + j));
        if (nonzeros > 2) return WindowViolation{r, w, nonzeros};
      }
    }
    return std::nullopt;
  }
};

// The one place where a dtype picks its element width and its notion of zero.
template <typename Fn>
decltype(auto) dispatch(DType t, const char* what, Fn&& fn) {
  switch (t) {
    case DType::I8:
    case DType::U8:
      return fn(Kernels<std::uint8_t, 0xFF>{});
    case DType::F8_E4M3:
      return fn(Kernels<std::uint8_t, 0x7F>{});
    case DType::BF16:
    case DType::F16:
      return fn(Kernels<std::uint16_t, 0x7FFF>{});
    case DType::F32:
      return fn(Kernels<std::uint32_t, 0x7FFFFFFFu>{});
    default:
      throw InvalidArgument(std::string(what) + ": dtype " + dtype_name(t) +
                            " cannot be slid (expected I8, U8, F8_E4M3, BF16, F16 or F32)");
  }
}
}  // namespace

std::vector<int> assign_windows(const std::vector<bool>& nonzero, int length) {
  SLIDESPARSE_REQUIRE(
      length >= Pattern::kMinLength && length <= Pattern::kMaxLength && length % 2 == 0,
      InvalidArgument,
      "assign_windows: group length " + std::to_string(length) + " is not one of 4, 6, ..., 16");
  SLIDESPARSE_REQUIRE(nonzero.size() == static_cast<std::size_t>(length), InvalidArgument,
                      "assign_windows: " + std::to_string(nonzero.size()) +
                          " positions for a group of " + std::to_string(length));
  const int windows = length / 2 - 1;
  int fill[kMaxWindows] = {};
  std::vector<int> window_of(static_cast<std::size_t>(length), -1);
  for (int pos = 0; pos < length; ++pos) {
    if (!nonzero[static_cast<std::size_t>(pos)]) continue;
    const int w = greedy_window(pos, fill, windows);
    if (w < 0) {
      const auto nonzeros = std::count(nonzero.begin(), nonzero.end(), true);
      throw InvalidArgument("assign_windows: no window has room for position " +
                            std::to_string(pos) + "; the group holds " + std::to_string(nonzeros) +
                            " non-zeros, at most " + std::to_string(length - 2) + " fit");
    }
    ++fill[w];
    window_of[static_cast<std::size_t>(pos)] = w;
  }
  return window_of;
}

void slide_rows(DType t, const void* in, std::int64_t rows, std::int64_t k, const Pattern& p,
                void* out) {
  require_shape(rows, k, "slide_rows");
  dispatch(t, "slide_rows", [&](auto kernels) {
    kernels.slide(static_cast<const Byte*>(in), rows, k, p, static_cast<Byte*>(out));
  });
}

void unslide_rows(DType t, const void* in, std::int64_t rows, std::int64_t k, const Pattern& p,
                  void* out) {
  require_shape(rows, k, "unslide_rows");
  dispatch(t, "unslide_rows", [&](auto kernels) {
    kernels.unslide(static_cast<const Byte*>(in), rows, k, p, static_cast<Byte*>(out));
  });
}

std::optional<WindowViolation> find_2to4_violation(DType t, const void* data, std::int64_t rows,
                                                   std::int64_t cols) {
  require_shape(rows, cols, "find_2to4_violation");
  SLIDESPARSE_REQUIRE(cols % 4 == 0, InvalidArgument,
                      "find_2to4_violation: " + std::to_string(cols) +
                          " columns is not a whole number of windows of 4");
  return dispatch(t, "find_2to4_violation", [&](auto kernels) {
    return kernels.find_2to4_violation(static_cast<const Byte*>(data), rows, cols);
  });
}

}  // namespace slidesparse
