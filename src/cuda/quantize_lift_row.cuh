// Private to src: the device side of quantizing (and lifting) one token row, shared by
// quantize_lift.cu (rows read from memory) and the model runner's fused producers
// (src/runner/fused_quantize*.cu, rows computed in the block), so both write the same bits.
//
// A block owns one row. Its threads reduce the row's absmax (block_row_scale), then write
// the output row one window of 4 slid columns per thread: a window reads 4 consecutive
// source columns starting at an even column, so from a row staged in shared memory its
// gather is two 32-bit shared loads and consecutive threads touch consecutive words (no
// bank conflicts), while the warp's stores cover one contiguous 128- or 256-byte span.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "slidesparse/cuda/exact_divide.hpp"
#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse::detail {

// Column maps as compile-time codes; a finite pattern is coded by its length L.
constexpr int kIdentityMap = 0;
constexpr int kInfiniteMap = 1;
constexpr int kMapCount = 9;
constexpr int kMapCodes[kMapCount] = {kIdentityMap, 4, 6, 8, 10, 12, 14, 16, kInfiniteMap};

// The position of a column map in kMapCodes.
inline int column_map_index(bool identity, const Pattern& pattern) {
  if (identity) return 0;
  if (pattern.is_infinite()) return kMapCount - 1;
  return (pattern.length() - Pattern::kMinLength) / 2 + 1;
}

// Output row layout: the staged row holds round_up(k, 8) elements plus this many zeros, so
// a window starting below k (it reads at most 3 further elements) never leaves the buffer.
constexpr int kElementsPerLoad = 8;  // 16 bytes of BF16/F16
constexpr int kStagedTailElements = 8;
// Rows up to this size are kept in shared memory; every target architecture (sm_80 ...
// sm_120) lets a block opt in to at least 99 KB.
constexpr std::int64_t kMaxStagedBytes = 96 * 1024;
constexpr std::int64_t kDefaultDynamicSmemBytes = 48 * 1024;
// Within a row, column indices are 32-bit (cheap division by the window count).
constexpr std::int64_t kMaxColumns = std::int64_t{1} << 30;

// Bytes of shared memory a staged row of k 16-bit elements takes.
inline std::int64_t staged_row_bytes(std::int64_t k) {
  return ((k + kElementsPerLoad - 1) / kElementsPerLoad * kElementsPerLoad + kStagedTailElements) *
         static_cast<std::int64_t>(sizeof(std::uint16_t));
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

// The row's scale from each thread's partial absmax (ignored for BF16/FP16, whose scale is 1),
// on every thread. blockDim.x is a multiple of 32 and at most 32·32; `warp_absmax` holds one
// float per warp. Ends with a barrier, after which the block's earlier shared (and global)
// writes are visible to all its threads; a caller that reuses `warp_absmax` for another row
// needs a barrier before.
template <Precision P>
__device__ __forceinline__ float block_row_scale(float absmax, float* warp_absmax) {
  using Quantizer = WindowQuantizer<P>;
  const int threads = static_cast<int>(blockDim.x);
  const int thread = static_cast<int>(threadIdx.x);
  if constexpr (Quantizer::kScaled) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
      absmax = fmaxf(absmax, __shfl_xor_sync(0xFFFFFFFFu, absmax, offset));
    if (thread % 32 == 0) warp_absmax[thread / 32] = absmax;
  }
  __syncthreads();  // the staged row and the per-warp maxima are complete
  float scale = 1.0f;
  if constexpr (Quantizer::kScaled) {
    absmax = 0.0f;
    for (int w = 0; w < threads / 32; ++w) absmax = fmaxf(absmax, warp_absmax[w]);
    scale = fmaxf(__fdiv_rn(absmax, Quantizer::kMax), kMinQuantScale);
  }
  return scale;
}

// Writes row `row` of q [*, k_out] from the row staged in shared memory as 16-bit words of
// type In: round_up(k, 8) elements followed by kStagedTailElements zeros. Windows past
// k_slide map to sources >= K_pad >= k and come out as zeros, like the padding inside K_pad.
template <class In, Precision P, int kMap>
__device__ __forceinline__ void write_staged_row(const std::uint32_t* staged_words, int k,
                                                 int k_out, const ExactDivisor& divisor, void* q,
                                                 std::int64_t row) {
  using Quantizer = WindowQuantizer<P>;
  using Window = typename Quantizer::Window;
  const int threads = static_cast<int>(blockDim.x);
  const int thread = static_cast<int>(threadIdx.x);
  const unsigned windows = static_cast<unsigned>(k_out) / 4u;
  const unsigned k_unsigned = static_cast<unsigned>(k);
  // Sources at or past k are clamped into the zero tail: loads need no predicate.
  const unsigned zero_tail =
      (k_unsigned + kElementsPerLoad - 1) / kElementsPerLoad * kElementsPerLoad;
  Window* out = reinterpret_cast<Window*>(q) + row * (k_out / 4) + thread;
  for (unsigned t = thread; t < windows; t += threads, out += threads) {
    const unsigned word = min(window_source<kMap>(t), zero_tail) / 2;
    std::uint32_t low, high;
    if constexpr (kMap == kIdentityMap || kMap == 4) {
      const uint2 pair = *reinterpret_cast<const uint2*>(staged_words + word);  // source % 4 == 0
      low = pair.x;
      high = pair.y;
    } else {
      low = staged_words[word];
      high = staged_words[word + 1];
    }
    const float v[4] = {In::to_float(low & 0xFFFFu), In::to_float(low >> 16),
                        In::to_float(high & 0xFFFFu), In::to_float(high >> 16)};
    *out = Quantizer::quantize(v, divisor);
  }
}

// The same output from a row that did not fit in shared memory: value(c) gives source
// column c < k as a float (re-read from global memory, through L1/L2); columns past k are 0.
template <Precision P, int kMap, class Value>
__device__ __forceinline__ void write_row(const Value& value, int k, int k_out,
                                          const ExactDivisor& divisor, void* q, std::int64_t row) {
  using Quantizer = WindowQuantizer<P>;
  using Window = typename Quantizer::Window;
  const int threads = static_cast<int>(blockDim.x);
  const int thread = static_cast<int>(threadIdx.x);
  const unsigned windows = static_cast<unsigned>(k_out) / 4u;
  const unsigned k_unsigned = static_cast<unsigned>(k);
  Window* out = reinterpret_cast<Window*>(q) + row * (k_out / 4) + thread;
  for (unsigned t = thread; t < windows; t += threads, out += threads) {
    const unsigned source = window_source<kMap>(t);
    float v[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = source + j < k_unsigned ? value(source + j) : 0.0f;
    *out = Quantizer::quantize(v, divisor);
  }
}

}  // namespace slidesparse::detail
