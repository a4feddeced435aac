// One kernel template quantizes a token row through a column map: the identity
// (plain per-token quantization) or a lifting pattern (DESIGN.md §4).
//
// One block per row. Pass 1 reads the row with 16-byte loads, keeps it in shared
// memory when it fits and reduces its absmax. Pass 2 writes the output row one
// window of 4 slid columns per thread: a window reads 4 consecutive source columns
// starting at an even column, so its gather is two 32-bit shared loads and
// consecutive threads touch consecutive words (no bank conflicts), while the warp's
// stores cover one contiguous 128- or 256-byte span.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "quantize_rows.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/exact_divide.hpp"
#include "slidesparse/cuda/quantize_lift.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {
namespace detail {
namespace {

// Column maps as compile-time codes; a finite pattern is coded by its length L.
constexpr int kIdentityMap = 0;
constexpr int kInfiniteMap = 1;
constexpr std::array<int, 9> kMapCodes = {kIdentityMap, 4, 6, 8, 10, 12, 14, 16, kInfiniteMap};

int map_index(const ColumnMap& map) {
  if (map.is_identity) return 0;
  if (map.pattern.is_infinite()) return 8;
  return (map.pattern.length() - Pattern::kMinLength) / 2 + 1;
}

// Slid window t (slid columns 4t..4t+3) reads source columns window_source(t) + 0..3,
// the same map as lift_source_column(4t + j) = g·L + 2w + j. Always even.
template <int kMap>
__device__ __forceinline__ unsigned window_source(unsigned t) {
  if constexpr (kMap == kIdentityMap) {
    return 4u * t;
  } else if constexpr (kMap == kInfiniteMap) {
    return 2u * t;
  } else {
    constexpr unsigned kWindowsPerGroup = kMap / 2 - 1;
    return t / kWindowsPerGroup * kMap + 2u * (t % kWindowsPerGroup);
  }
}

// Input element types, read as raw 16-bit words and widened exactly.
struct Bf16Input {
  static __device__ __forceinline__ float to_float(std::uint32_t bits) {
    return __uint_as_float(bits << 16);
  }
};
struct F16Input {
  static __device__ __forceinline__ float to_float(std::uint32_t bits) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
  }
};

// Output of one window of 4 values, per precision.
template <Precision P>
struct WindowQuantizer;

template <>
struct WindowQuantizer<Precision::INT8> {
  using Window = std::uint32_t;
  static constexpr bool kScaled = true;
  static constexpr float kMax = 127.0f;
  static __device__ __forceinline__ Window quantize(const float (&v)[4],
                                                    const ExactDivisor& scale) {
    Window out = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      // clamp(rint(x / scale)): rounding to int then clamping as integers is the same.
      const int code = min(max(__float2int_rn(exact_divide(v[j], scale)), -127), 127);
      out |= (static_cast<std::uint32_t>(code) & 0xFFu) << (8 * j);
    }
    return out;
  }
};

template <>
struct WindowQuantizer<Precision::FP8> {
  using Window = std::uint32_t;
  static constexpr bool kScaled = true;
  static constexpr float kMax = 448.0f;
  static __device__ __forceinline__ Window quantize(const float (&v)[4],
                                                    const ExactDivisor& scale) {
    const float2 low = make_float2(exact_divide(v[0], scale), exact_divide(v[1], scale));
    const float2 high = make_float2(exact_divide(v[2], scale), exact_divide(v[3], scale));
    // .x lands in the low byte: element order is kept.
    return static_cast<Window>(__nv_cvt_float2_to_fp8x2(low, __NV_SATFINITE, __NV_E4M3)) |
           static_cast<Window>(__nv_cvt_float2_to_fp8x2(high, __NV_SATFINITE, __NV_E4M3)) << 16;
  }
};

template <>
struct WindowQuantizer<Precision::BF16> {
  using Window = uint2;
  static constexpr bool kScaled = false;
  static __device__ __forceinline__ std::uint32_t pair(float a, float b) {
    return static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(a))) |
           static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(b))) << 16;
  }
  static __device__ __forceinline__ Window quantize(const float (&v)[4], const ExactDivisor&) {
    return make_uint2(pair(v[0], v[1]), pair(v[2], v[3]));
  }
};

template <>
struct WindowQuantizer<Precision::FP16> {
  using Window = uint2;
  static constexpr bool kScaled = false;
  static __device__ __forceinline__ std::uint32_t pair(float a, float b) {
    return static_cast<std::uint32_t>(__half_as_ushort(__float2half_rn(a))) |
           static_cast<std::uint32_t>(__half_as_ushort(__float2half_rn(b))) << 16;
  }
  static __device__ __forceinline__ Window quantize(const float (&v)[4], const ExactDivisor&) {
    return make_uint2(pair(v[0], v[1]), pair(v[2], v[3]));
  }
};

constexpr int kMaxThreads = 512;
constexpr int kLoadUnroll = 4;       // 16-byte loads in flight per thread in pass 1
constexpr int kElementsPerLoad = 8;  // 16 bytes of BF16/F16
// Zeros staged past round_up(k, 8): a window starting below k reads at most 3 further
// elements, so its two 32-bit loads never leave the buffer.
constexpr int kStagedTailElements = 8;
// Rows up to this size are kept in shared memory between the passes; every target
// architecture (sm_80 ... sm_120) lets a block opt in to at least 99 KB.
constexpr std::int64_t kMaxStagedBytes = 96 * 1024;
constexpr std::int64_t kDefaultDynamicSmemBytes = 48 * 1024;
// Within a row, column indices are 32-bit (cheap division by the window count).
constexpr std::int64_t kMaxColumns = std::int64_t{1} << 30;

template <class In>
__device__ __forceinline__ float chunk_absmax(const uint4& chunk, float absmax) {
  const std::uint32_t words[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    absmax = fmaxf(absmax, fabsf(In::to_float(words[i] & 0xFFFFu)));
    absmax = fmaxf(absmax, fabsf(In::to_float(words[i] >> 16)));
  }
  return absmax;
}

using QuantizeRowsKernel = void (*)(const std::uint16_t*, std::int64_t, int, int, bool, void*,
                                    float*);

// Grid: one block per row (blockIdx.x = row). `x_aligned`: x and ld_x allow 16-byte loads.
// kStaged: the row stays in dynamic shared memory (round_up(k, 8) + 8 elements);
// otherwise pass 2 re-reads it from global memory (L1/L2).
template <class In, Precision P, int kMap, bool kStaged>
__global__ void __launch_bounds__(kMaxThreads)
    quantize_rows_kernel(const std::uint16_t* __restrict__ x, std::int64_t ld_x, int k, int k_out,
                         bool x_aligned, void* __restrict__ q, float* __restrict__ scales) {
  using Quantizer = WindowQuantizer<P>;
  using Window = typename Quantizer::Window;
  extern __shared__ uint4 staged_chunks[];
  __shared__ float warp_absmax[kMaxThreads / 32];

  const std::int64_t row = blockIdx.x;
  const std::uint16_t* x_row = x + row * ld_x;
  std::uint16_t* staged_row = reinterpret_cast<std::uint16_t*>(staged_chunks);
  const int threads = static_cast<int>(blockDim.x);
  const int thread = static_cast<int>(threadIdx.x);

  // Pass 1: stage the row and reduce its absmax.
  float absmax = 0.0f;
  const int chunks = x_aligned ? k / kElementsPerLoad : 0;
  const uint4* x_chunks = reinterpret_cast<const uint4*>(x_row);
  for (int base = thread; base < chunks; base += kLoadUnroll * threads) {
    uint4 loaded[kLoadUnroll];
#pragma unroll
    for (int u = 0; u < kLoadUnroll; ++u) {
      const int c = base + u * threads;
      loaded[u] = c < chunks ? x_chunks[c] : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kLoadUnroll; ++u) {
      const int c = base + u * threads;
      if (c < chunks) {
        if constexpr (kStaged) staged_chunks[c] = loaded[u];
        if constexpr (Quantizer::kScaled) absmax = chunk_absmax<In>(loaded[u], absmax);
      }
    }
  }
  for (int col = chunks * kElementsPerLoad + thread; col < k; col += threads) {
    const std::uint16_t bits = x_row[col];
    if constexpr (kStaged) staged_row[col] = bits;
    if constexpr (Quantizer::kScaled) absmax = fmaxf(absmax, fabsf(In::to_float(bits)));
  }
  if constexpr (kStaged) {
    const int staged_end =
        (k + kElementsPerLoad - 1) / kElementsPerLoad * kElementsPerLoad + kStagedTailElements;
    for (int col = k + thread; col < staged_end; col += threads) staged_row[col] = 0;
  }

  float scale = 1.0f;
  if constexpr (Quantizer::kScaled) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
      absmax = fmaxf(absmax, __shfl_xor_sync(0xFFFFFFFFu, absmax, offset));
    if (thread % 32 == 0) warp_absmax[thread / 32] = absmax;
  }
  __syncthreads();  // staged row and per-warp maxima are complete
  if constexpr (Quantizer::kScaled) {
    absmax = 0.0f;
    for (int w = 0; w < threads / 32; ++w) absmax = fmaxf(absmax, warp_absmax[w]);
    scale = fmaxf(__fdiv_rn(absmax, Quantizer::kMax), kMinQuantScale);
  }
  if (thread == 0 && scales != nullptr) scales[row] = scale;
  const ExactDivisor divisor = make_exact_divisor(scale);

  // Pass 2: one window of 4 slid columns per thread and step. Windows past k_slide
  // map to sources >= K_pad >= k and come out as zeros, like the padding inside K_pad.
  const unsigned windows = static_cast<unsigned>(k_out) / 4u;
  const unsigned k_unsigned = static_cast<unsigned>(k);
  // Staged sources at or past k are clamped into the zero tail: loads need no predicate.
  const unsigned zero_tail =
      (k_unsigned + kElementsPerLoad - 1) / kElementsPerLoad * kElementsPerLoad;
  const std::uint32_t* staged_words = reinterpret_cast<const std::uint32_t*>(staged_chunks);
  Window* out = reinterpret_cast<Window*>(q) + row * (k_out / 4) + thread;
  for (unsigned t = thread; t < windows; t += threads, out += threads) {
    const unsigned source = window_source<kMap>(t);
    float v[4];
    if constexpr (kStaged) {
      const unsigned word = min(source, zero_tail) / 2;
      std::uint32_t low, high;
      if constexpr (kMap == kIdentityMap || kMap == 4) {
        const uint2 pair = *reinterpret_cast<const uint2*>(staged_words + word);  // source % 4 == 0
        low = pair.x;
        high = pair.y;
      } else {
        low = staged_words[word];
        high = staged_words[word + 1];
      }
      v[0] = In::to_float(low & 0xFFFFu);
      v[1] = In::to_float(low >> 16);
      v[2] = In::to_float(high & 0xFFFFu);
      v[3] = In::to_float(high >> 16);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        v[j] = source + j < k_unsigned ? In::to_float(__ldg(x_row + source + j)) : 0.0f;
    }
    *out = Quantizer::quantize(v, divisor);
  }
}

template <class In, Precision P, int kMap>
constexpr std::array<QuantizeRowsKernel, 2> staging_variants() {
  return {&quantize_rows_kernel<In, P, kMap, false>, &quantize_rows_kernel<In, P, kMap, true>};
}

template <class In, Precision P, std::size_t... I>
constexpr std::array<std::array<QuantizeRowsKernel, 2>, kMapCodes.size()> map_variants(
    std::index_sequence<I...>) {
  return {staging_variants<In, P, kMapCodes[I]>()...};
}

template <class In>
constexpr auto precision_variants() {
  constexpr auto maps = std::make_index_sequence<kMapCodes.size()>{};
  static_assert(static_cast<int>(Precision::INT8) == 0 && static_cast<int>(Precision::FP8) == 1 &&
                static_cast<int>(Precision::BF16) == 2 && static_cast<int>(Precision::FP16) == 3);
  return std::array{map_variants<In, Precision::INT8>(maps), map_variants<In, Precision::FP8>(maps),
                    map_variants<In, Precision::BF16>(maps),
                    map_variants<In, Precision::FP16>(maps)};
}

// The one dispatch table: [input BF16, F16][precision][column map][staged].
const std::array kQuantizeRowsKernels = {precision_variants<Bf16Input>(),
                                         precision_variants<F16Input>()};

// Enough threads that pass 1 issues about 4 loads each; at most kMaxThreads.
int threads_for(std::int64_t k) {
  int threads = 64;
  while (threads < kMaxThreads && threads * 32 < k) threads *= 2;
  return threads;
}

}  // namespace

void quantize_rows(const char* caller, const void* x, DType x_type, std::int64_t m, std::int64_t k,
                   std::int64_t ld_x, const ColumnMap& map, Precision p, void* q,
                   std::int64_t k_out, float* scales, cudaStream_t stream) {
  const auto require = [caller](bool ok, const std::string& message) {
    if (!ok) throw InvalidArgument(std::string(caller) + ": " + message);
  };
  require(x_type == DType::BF16 || x_type == DType::F16,
          std::string("input must be BF16 or F16, got ") + dtype_name(x_type));
  require(m >= 0 && k >= 0, "negative shape m=" + std::to_string(m) + " k=" + std::to_string(k));
  require(m <= 0x7FFFFFFF, "m=" + std::to_string(m) + " exceeds one grid dimension (2^31-1 rows)");
  require(ld_x >= k, "ld_x=" + std::to_string(ld_x) + " < k=" + std::to_string(k));
  const std::int64_t k_slide = map.is_identity ? k : map.pattern.k_slide(k);
  require(k_out >= k_slide && k_out % 16 == 0,
          "k_out=" + std::to_string(k_out) +
              " must be a multiple of 16 and >= " + std::to_string(k_slide) +
              (map.is_identity ? std::string(" (k)")
                               : " (k_slide of " + map.pattern.zeros_name() + ")"));
  require(k_out < kMaxColumns, "k_out=" + std::to_string(k_out) + " exceeds 2^30 columns");
  if (m == 0) return;
  require(x != nullptr && q != nullptr, "null x or q");
  require(reinterpret_cast<std::uintptr_t>(q) % 16 == 0, "q must be 16-byte aligned");
  require(scales != nullptr || !precision_is_quantized(p),
          std::string("scales are required for ") + precision_name(p));

  const bool x_aligned =
      reinterpret_cast<std::uintptr_t>(x) % 16 == 0 && ld_x % kElementsPerLoad == 0;
  const std::int64_t staged_bytes =
      ((k + kElementsPerLoad - 1) / kElementsPerLoad * kElementsPerLoad + kStagedTailElements) *
      static_cast<std::int64_t>(sizeof(std::uint16_t));
  const bool staged = staged_bytes <= kMaxStagedBytes;
  const QuantizeRowsKernel kernel =
      kQuantizeRowsKernels[x_type == DType::BF16 ? 0 : 1][static_cast<int>(p)][map_index(map)]
                          [staged ? 1 : 0];
  const std::size_t smem_bytes = staged ? static_cast<std::size_t>(staged_bytes) : 0;
  if (smem_bytes > static_cast<std::size_t>(kDefaultDynamicSmemBytes))
    SLIDESPARSE_CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                static_cast<int>(smem_bytes)));
  kernel<<<static_cast<unsigned>(m), threads_for(k), smem_bytes, stream>>>(
      static_cast<const std::uint16_t*>(x), ld_x, static_cast<int>(k), static_cast<int>(k_out),
      x_aligned, q, scales);
  SLIDESPARSE_CHECK_LAUNCH();
}

}  // namespace detail

void quantize_lift_per_token(const void* x, DType x_type, std::int64_t m, std::int64_t k,
                             std::int64_t ld_x, const Pattern& pattern, Precision p, void* q,
                             std::int64_t k_out, float* scales, cudaStream_t stream) {
  detail::quantize_rows("quantize_lift_per_token", x, x_type, m, k, ld_x,
                        detail::ColumnMap::lift(pattern), p, q, k_out, scales, stream);
}

}  // namespace slidesparse
