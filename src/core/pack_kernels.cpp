#include "slidesparse/pack_kernels.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse::pack_kernels {

namespace {
// |x| as ordered integers: for finite floats, comparing these compares the magnitudes.
std::uint32_t magnitude_bits(float x) { return bits_of(x) & 0x7FFFFFFFu; }

// Adding then subtracting 1.5·2^23 rounds a float of magnitude below 2^22 to an integer,
// half to even, in the default rounding mode: nearbyint without the libm call.
constexpr float kRoundMagic = 12582912.0f;

// The one place where a finite pattern's L becomes a compile-time constant: the kernels
// unroll their loops over a group. Calls fn(std::integral_constant<int, L>).
template <typename Fn>
void with_group_length(const Pattern& p, Fn&& fn) {
  switch (p.length()) {
    case 4:
      return fn(std::integral_constant<int, 4>{});
    case 6:
      return fn(std::integral_constant<int, 6>{});
    case 8:
      return fn(std::integral_constant<int, 8>{});
    case 10:
      return fn(std::integral_constant<int, 10>{});
    case 12:
      return fn(std::integral_constant<int, 12>{});
    case 14:
      return fn(std::integral_constant<int, 14>{});
    case 16:
      return fn(std::integral_constant<int, 16>{});
    default:
      throw InvalidArgument("pack kernels: no kernel for pattern " + p.display_name());
  }
}

// The reference drops, one at a time, the smallest magnitude, the higher column first among
// equal ones. As one number: magnitude in the high bits, 255 - column in the low byte; the
// smallest key is the next to drop. Two independent min-scans beat a dependent chain of
// compare-and-swap steps.
std::uint64_t drop_key(float x, int column) {
  return (static_cast<std::uint64_t>(magnitude_bits(x)) << 8) |
         static_cast<std::uint64_t>(255 - column);
}

// Branch-free: which key is smaller is a coin toss, and a mispredicted branch per weight
// would cost more than the whole scan.
std::uint64_t min_key(std::uint64_t a, std::uint64_t b) {
  return b ^ ((a ^ b) & (std::uint64_t{0} - static_cast<std::uint64_t>(a < b)));
}
// `key`, or the largest key when it is `taken`.
std::uint64_t unless_taken(std::uint64_t key, std::uint64_t taken) {
  return key | (std::uint64_t{0} - static_cast<std::uint64_t>(key == taken));
}

// Zeroes the `drop` (1 or 2) smallest magnitudes of group[0 .. size), size <= kMaxSize.
template <int kMaxSize>
void drop_smallest(float* group, int size, int drop) {
  std::uint64_t key[kMaxSize];
  for (int i = 0; i < size; ++i) key[i] = drop_key(group[i], i);
  std::uint64_t first = key[0];
  for (int i = 1; i < size; ++i) first = min_key(first, key[i]);
  std::uint64_t second = std::numeric_limits<std::uint64_t>::max();
  for (int i = 0; i < size; ++i) second = min_key(second, unless_taken(key[i], first));
  group[255 - static_cast<int>(first & 0xFF)] = 0.0f;
  if (drop == 2) group[255 - static_cast<int>(second & 0xFF)] = 0.0f;
}

template <int L>
void prune_row(float* row, std::int64_t k) {
  const std::int64_t full = k / L * L;
  // A whole group: the size is a constant, the scans unroll.
  for (std::int64_t start = 0; start < full; start += L) {
    float* group = row + start;
    std::uint64_t key[L];
    for (int i = 0; i < L; ++i) key[i] = drop_key(group[i], i);
    std::uint64_t first = key[0];
    for (int i = 1; i < L; ++i) first = min_key(first, key[i]);
    std::uint64_t second = std::numeric_limits<std::uint64_t>::max();
    for (int i = 0; i < L; ++i) second = min_key(second, unless_taken(key[i], first));
    group[255 - static_cast<int>(first & 0xFF)] = 0.0f;
    group[255 - static_cast<int>(second & 0xFF)] = 0.0f;
  }
  const int tail = static_cast<int>(k - full);
  if (tail > L - 2) drop_smallest<L>(row + full, tail, tail - (L - 2));
}

template <int L>
void prune_rows(float* w, std::int64_t rows, std::int64_t k) {
  for (std::int64_t r = 0; r < rows; ++r) prune_row<L>(w + r * k, k);
}

float row_absmax(const float* x, std::int64_t cols) {
  std::uint32_t absmax = 0;
  for (std::int64_t c = 0; c < cols; ++c) absmax = std::max(absmax, magnitude_bits(x[c]));
  return float_of(absmax);
}

// -1 (all ones) when `condition`, else 0: selects without branches.
std::int32_t mask_if(bool condition) { return -static_cast<std::int32_t>(condition); }
std::int32_t select(std::int32_t mask, std::int32_t if_set, std::int32_t if_clear) {
  return (if_set & mask) | (if_clear & ~mask);
}

// float_to_e4m3 in signed 32-bit integer arithmetic and selects by mask, which SSE2 has, so
// that the quantization loop vectorizes.
std::uint8_t e4m3_bits(float x) {
  const std::uint32_t bits = bits_of(x);
  const auto u = static_cast<std::int32_t>(bits & 0x7FFFFFFFu);  // |x| >= 0 as int32
  const auto sign = static_cast<std::int32_t>((bits >> 24) & 0x80u);
  constexpr std::int32_t kSmallestNormal = 0x3C800000;  // 2^-6
  const std::int32_t subnormal_lane = mask_if(u < kSmallestNormal);
  // Normal range: round the mantissa to 3 bits, half to even; a carry moves the exponent.
  // The top bits are then (float exponent << 3 | mantissa): rebias 127 → 7, saturate.
  const std::int32_t rounded = ((u + 0x7FFFF + ((u >> 20) & 1)) >> 20) - (120 << 3);
  const std::int32_t normal = select(mask_if(rounded > 0x7E), 0x7E, rounded);
  // Below 2^-6 the unit is 2^-9: the code is |x| · 2^9 rounded (8 means 2^-6, code 8 too).
  // Normal lanes convert 2^-6 instead of |x|, so the conversion stays in range.
  const float small =
      float_of(static_cast<std::uint32_t>(select(subnormal_lane, u, kSmallestNormal)));
  const auto subnormal = static_cast<std::int32_t>((small * 512.0f + kRoundMagic) - kRoundMagic);
  return static_cast<std::uint8_t>(sign | select(subnormal_lane, subnormal, normal));
}

void quantize_int8(const float* x, std::int64_t cols, float scale, std::int8_t* q) {
  for (std::int64_t c = 0; c < cols; ++c) {
    // |x / scale| <= 127 (plus rounding) by the choice of scale, far below 2^22.
    const float r = (x[c] / scale + kRoundMagic) - kRoundMagic;
    q[c] = static_cast<std::int8_t>(static_cast<int>(std::min(kInt8Max, std::max(-kInt8Max, r))));
  }
}

void quantize_fp8(const float* x, std::int64_t cols, float scale, std::uint8_t* q) {
  for (std::int64_t c = 0; c < cols; ++c) q[c] = e4m3_bits(x[c] / scale);
}

// Where the greedy window assignment (slide.hpp's assign_windows) puts each position of a
// group, for every non-zero mask of the group: slot = 4·window + offset in the window. A zero
// position gets a slot that no non-zero takes (at most L-2 of the 2(L-2) are taken), where
// writing +0 changes nothing: the scatter then needs no branch. Built once per L: 2^L
// entries (1 MB for L = 16).
template <int L>
class SlideTable {
 public:
  static constexpr int kWidth = 4 * (L / 2 - 1);
  static constexpr std::uint8_t kTooMany = 0xFF;

  static const SlideTable& get() {
    static const SlideTable table;
    return table;
  }
  const std::array<std::uint8_t, L>& slots(std::uint32_t mask) const { return slots_[mask]; }

 private:
  SlideTable() : slots_(std::size_t{1} << L) {
    std::vector<bool> nonzero(L);
    for (std::uint32_t mask = 0; mask < slots_.size(); ++mask) {
      auto& slots = slots_[mask];
      int count = 0;
      for (int pos = 0; pos < L; ++pos) {
        nonzero[pos] = ((mask >> pos) & 1u) != 0;
        count += nonzero[pos] ? 1 : 0;
      }
      if (count > L - 2) {
        slots.fill(kTooMany);
        continue;
      }
      const std::vector<int> window = assign_windows(nonzero, L);
      std::array<bool, kWidth> taken{};
      for (int pos = 0; pos < L; ++pos) {
        if (window[pos] < 0) continue;
        slots[pos] = static_cast<std::uint8_t>(4 * window[pos] + pos - 2 * window[pos]);
        taken[slots[pos]] = true;
      }
      const auto free_slot =
          static_cast<std::uint8_t>(std::find(taken.begin(), taken.end(), false) - taken.begin());
      for (int pos = 0; pos < L; ++pos)
        if (window[pos] < 0) slots[pos] = free_slot;
    }
  }

  std::vector<std::array<std::uint8_t, L>> slots_;
};

[[noreturn]] void too_many_nonzeros(std::int64_t row, std::int64_t group, const Pattern& p) {
  throw InvalidArgument("slide: row " + std::to_string(row) + ", group " + std::to_string(group) +
                        " holds more than " + std::to_string(p.length() - 2) +
                        " non-zeros; pattern " + p.display_name() + " (prune the weights first)");
}

// Slides one group of `size` values (the rest of the L positions are padding) into dst, which
// holds zeros. `size` is the constant L for whole groups, so the loops unroll. The values
// go straight to dst: assembling the window elsewhere and copying it stalls on
// store-to-load forwarding.
template <typename T, T kMagnitude, int L>
void slide_group(const SlideTable<L>& table, const T* values, int size, T* dst, std::int64_t row,
                 std::int64_t group, const Pattern& p) {
  using Table = SlideTable<L>;
  std::uint32_t mask = 0;
  for (int i = 0; i < size; ++i)
    mask |= static_cast<std::uint32_t>((values[i] & kMagnitude) != 0) << i;
  const auto& slots = table.slots(mask);
  if (slots[0] == Table::kTooMany) too_many_nonzeros(row, group, p);
  for (int i = 0; i < size; ++i) {
    const T value = values[i];
    dst[slots[i]] = (value & kMagnitude) ? value : T{0};  // a -0 is written as +0
  }
}

// T: raw element; kMagnitude: its bits that make it non-zero (the sign never does).
template <typename T, T kMagnitude, int L>
void slide_group_rows(const T* in, std::int64_t rows, std::int64_t k, const Pattern& p, T* out) {
  using Table = SlideTable<L>;
  const Table& table = Table::get();
  const std::int64_t full = k / L;
  const std::int64_t groups = p.k_padded(k) / L;
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* src = in + r * k;
    T* dst = out + r * groups * Table::kWidth;
    std::memset(dst, 0, sizeof(T) * static_cast<std::size_t>(groups * Table::kWidth));
    for (std::int64_t g = 0; g < full; ++g)
      slide_group<T, kMagnitude, L>(table, src + g * L, L, dst + g * Table::kWidth, r, g, p);
    if (groups > full)
      slide_group<T, kMagnitude, L>(table, src + full * L, static_cast<int>(k - full * L),
                                    dst + full * Table::kWidth, r, full, p);
  }
}

// 2_inf: window w = [x(2w), x(2w+1), 0, 0]; a zero is written as all-zero bits.
template <typename T, T kMagnitude>
void slide_infinite_rows(const T* in, std::int64_t rows, std::int64_t k, T* out) {
  const std::int64_t pairs = (k + 1) / 2;
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* src = in + r * k;
    T* dst = out + r * pairs * 4;
    for (std::int64_t w = 0; w < pairs; ++w) {
      const T first = src[2 * w];
      const T second = 2 * w + 1 < k ? src[2 * w + 1] : T{0};
      dst[4 * w] = (first & kMagnitude) ? first : T{0};
      dst[4 * w + 1] = (second & kMagnitude) ? second : T{0};
      dst[4 * w + 2] = dst[4 * w + 3] = 0;
    }
  }
}

template <typename T, T kMagnitude>
void slide_typed(const void* in, std::int64_t rows, std::int64_t k, const Pattern& p, void* out) {
  const auto* src = static_cast<const T*>(in);
  auto* dst = static_cast<T*>(out);
  if (p.is_infinite()) return slide_infinite_rows<T, kMagnitude>(src, rows, k, dst);
  with_group_length(p, [&](auto length) {
    slide_group_rows<T, kMagnitude, decltype(length)::value>(src, rows, k, p, dst);
  });
}

void round_bf16(const float* x, std::int64_t cols, std::uint16_t* q) {
  for (std::int64_t c = 0; c < cols; ++c) {
    const std::uint32_t u = bits_of(x[c]);  // finite: no NaN case
    q[c] = static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
}
}  // namespace

void prune_magnitude(float* w, std::int64_t rows, std::int64_t k, const Pattern& p) {
  if (p.is_infinite()) return;
  with_group_length(p, [&](auto length) { prune_rows<decltype(length)::value>(w, rows, k); });
}

std::uint8_t float_to_e4m3(float x) { return e4m3_bits(x); }

void quantize_rows(const float* x, std::int64_t rows, std::int64_t cols, Precision p, void* q,
                   float* scales) {
  const std::size_t element = dtype_size(precision_storage(p));
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    auto* out = static_cast<std::uint8_t*>(q) + static_cast<std::size_t>(r * cols) * element;
    const float scale = quant_scale(row_absmax(row, cols), p);
    scales[r] = scale;
    switch (p) {
      case Precision::INT8:
        quantize_int8(row, cols, scale, reinterpret_cast<std::int8_t*>(out));
        break;
      case Precision::FP8:
        quantize_fp8(row, cols, scale, out);
        break;
      case Precision::BF16:
        round_bf16(row, cols, reinterpret_cast<std::uint16_t*>(out));
        break;
      case Precision::FP16:
        for (std::int64_t c = 0; c < cols; ++c) {
          const std::uint16_t half = float_to_fp16(row[c]);
          std::memcpy(out + 2 * c, &half, 2);
        }
        break;
    }
  }
}

void slide_rows(DType t, const void* in, std::int64_t rows, std::int64_t k, const Pattern& p,
                void* out) {
  switch (t) {
    case DType::I8:
      return slide_typed<std::uint8_t, 0xFF>(in, rows, k, p, out);
    case DType::F8_E4M3:
      return slide_typed<std::uint8_t, 0x7F>(in, rows, k, p, out);
    case DType::BF16:
    case DType::F16:
      return slide_typed<std::uint16_t, 0x7FFF>(in, rows, k, p, out);
    default:
      throw InvalidArgument(std::string("slide: no packer kernel for dtype ") + dtype_name(t));
  }
}

}  // namespace slidesparse::pack_kernels
