// Private to src/runner: the one kernel template behind runner/fused_quantize.hpp. A row
// source (the residual stream, the gated activation) computes a block's BF16 row with the
// arithmetic of model_kernels.cu (row_math.cuh), optionally RMSNorm'ed; the row goes to
// shared memory and is quantized (and lifted) there by the device code of
// quantize_lift_per_token (quantize_lift_row.cuh).
//
// A source provides, for values that are exactly BF16 (rounded floats):
//   template <int V> void load(row, col, float (&f)[V])    the first read (may write: the sum)
//   template <int V> void reload(row, col, float (&f)[V])  the same values again
//   float at(row, col)                                     one value again
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "../cuda/quantize_lift_row.cuh"
#include "row_math.cuh"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/exact_divide.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/runner/fused_quantize.hpp"

namespace slidesparse::runner::detail {

using slidesparse::detail::Bf16Input;
using slidesparse::detail::block_row_scale;
using slidesparse::detail::kElementsPerLoad;
using slidesparse::detail::kMapCodes;
using slidesparse::detail::kMapCount;
using slidesparse::detail::kStagedTailElements;
using slidesparse::detail::write_row;
using slidesparse::detail::write_staged_row;

// Produces the block's row: its values (normed when `norm_weight` is given) go to `staged`
// (kStaged); returns this thread's share of their absmax and sets `inv_rms` when normed.
// The element-to-thread layout (V values per step, blockDim.x = kRowThreads) and the float
// operations are those of rms_norm_kernel / add_rms_norm_kernel, so the sum of squares, and
// with it every normed value, equals theirs exactly.
template <int V, bool kStaged, class Source>
__device__ __forceinline__ float produce_row(const Source& source, const bf16* norm_weight,
                                             float eps, std::int64_t row, std::int64_t width,
                                             bf16* staged, float* scratch, float& inv_rms) {
  const std::int64_t vectors = width / V;
  float absmax = 0.0f;
  if (norm_weight == nullptr) {
    for (std::int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
      float f[V];
      source.template load<V>(row, i * V, f);
      if constexpr (kStaged) store_floats<V>(staged + i * V, f);
#pragma unroll
      for (int k = 0; k < V; ++k) absmax = fmaxf(absmax, fabsf(f[k]));
    }
    return absmax;
  }
  float sum_squares = 0.0f;
  for (std::int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
    float f[V];
    source.template load<V>(row, i * V, f);
#pragma unroll
    for (int k = 0; k < V; ++k) sum_squares = add_square(sum_squares, f[k]);
    if constexpr (kStaged) store_floats<V>(staged + i * V, f);
  }
  inv_rms = inverse_rms(block_sum(sum_squares, scratch), width, eps);
  for (std::int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
    float f[V], w[V];
    if constexpr (kStaged)
      load_floats<V>(staged + i * V, f);  // this thread's own stores above
    else
      source.template reload<V>(row, i * V, f);
    load_floats<V>(norm_weight + i * V, w);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      f[k] = round_to_bf16(normalize(w[k], f[k], inv_rms));
      absmax = fmaxf(absmax, fabsf(f[k]));
    }
    if constexpr (kStaged) store_floats<V>(staged + i * V, f);
  }
  return absmax;
}

// Grid: one block per row, kRowThreads threads. `vectorized`: width % 8 == 0 and every row
// pointer 16-byte aligned (the V = 8 layout of the unfused kernels). kStaged: the row stays in
// dynamic shared memory (staged_row_bytes(width)); otherwise the quantization recomputes each
// value from global memory.
template <class Source, Precision P, int kMap, bool kStaged>
__global__ void __launch_bounds__(kRowThreads)
    produce_quantize_kernel(Source source, const bf16* norm_weight, float eps, int width,
                            bool vectorized, int k_out, void* q, float* scales) {
  extern __shared__ uint4 staged_chunks[];
  __shared__ float scratch[32];
  __shared__ float warp_absmax[32];
  const std::int64_t row = blockIdx.x;
  bf16* staged = reinterpret_cast<bf16*>(staged_chunks);

  float inv_rms = 1.0f;
  const float absmax =
      vectorized
          ? produce_row<8, kStaged>(source, norm_weight, eps, row, width, staged, scratch, inv_rms)
          : produce_row<1, kStaged>(source, norm_weight, eps, row, width, staged, scratch, inv_rms);
  if constexpr (kStaged) {
    const int staged_end =
        (width + kElementsPerLoad - 1) / kElementsPerLoad * kElementsPerLoad + kStagedTailElements;
    for (int col = width + static_cast<int>(threadIdx.x); col < staged_end;
         col += static_cast<int>(blockDim.x))
      staged[col] = __float2bfloat16_rn(0.0f);
  }

  const float scale = block_row_scale<P>(absmax, warp_absmax);  // publishes the row
  if (threadIdx.x == 0 && scales != nullptr) scales[row] = scale;
  const ExactDivisor divisor = make_exact_divisor(scale);
  if constexpr (kStaged) {
    write_staged_row<Bf16Input, P, kMap>(reinterpret_cast<const std::uint32_t*>(staged_chunks),
                                         width, k_out, divisor, q, row);
  } else {
    const auto value = [&](unsigned c) {
      const float x = source.at(row, c);
      if (norm_weight == nullptr) return x;
      return round_to_bf16(normalize(__bfloat162float(norm_weight[c]), x, inv_rms));
    };
    write_row<P, kMap>(value, width, k_out, divisor, q, row);
  }
}

template <class Source>
using ProduceQuantizeKernel = void (*)(Source, const bf16*, float, int, bool, int, void*, float*);

template <class Source, Precision P, int kMap>
constexpr std::array<ProduceQuantizeKernel<Source>, 2> staging_variants() {
  return {&produce_quantize_kernel<Source, P, kMap, false>,
          &produce_quantize_kernel<Source, P, kMap, true>};
}

template <class Source, Precision P, std::size_t... I>
constexpr std::array<std::array<ProduceQuantizeKernel<Source>, 2>, kMapCount> map_variants(
    std::index_sequence<I...>) {
  return {staging_variants<Source, P, kMapCodes[I]>()...};
}

// [precision][column map][staged], indexed like quantize_lift.cu's table.
template <class Source>
constexpr auto produce_quantize_kernels() {
  constexpr auto maps = std::make_index_sequence<kMapCount>{};
  static_assert(static_cast<int>(Precision::INT8) == 0 && static_cast<int>(Precision::FP8) == 1 &&
                static_cast<int>(Precision::BF16) == 2 && static_cast<int>(Precision::FP16) == 3);
  return std::array{
      map_variants<Source, Precision::INT8>(maps), map_variants<Source, Precision::FP8>(maps),
      map_variants<Source, Precision::BF16>(maps), map_variants<Source, Precision::FP16>(maps)};
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Checks the arguments as quantize_lift_per_token does (errors name `caller`) and launches.
// `vectorized` says whether the source's rows allow 16-byte accesses (see the kernel).
template <class Source>
void launch_produce_quantize(const char* caller, const Source& source, std::int64_t rows,
                             std::int64_t width, bool vectorized, const bf16* norm_weight,
                             float eps, const QuantizeTarget& target, cudaStream_t stream) {
  using slidesparse::detail::column_map_index;
  using slidesparse::detail::kDefaultDynamicSmemBytes;
  using slidesparse::detail::kMaxColumns;
  using slidesparse::detail::kMaxStagedBytes;
  using slidesparse::detail::staged_row_bytes;
  const auto require = [caller](bool ok, const std::string& message) {
    if (!ok) throw InvalidArgument(std::string(caller) + ": " + message);
  };
  require(rows >= 0, "rows " + std::to_string(rows) + " is negative");
  require(width > 0, "width " + std::to_string(width) + " must be positive");
  require(rows <= 0x7FFFFFFF,
          "rows=" + std::to_string(rows) + " exceeds one grid dimension (2^31-1 rows)");
  const std::int64_t k_slide = target.lift ? target.pattern.k_slide(width) : width;
  require(target.k_out >= k_slide && target.k_out % 16 == 0,
          "k_out=" + std::to_string(target.k_out) +
              " must be a multiple of 16 and >= " + std::to_string(k_slide) +
              (target.lift ? " (k_slide of " + target.pattern.zeros_name() + ")"
                           : std::string(" (the width)")));
  require(target.k_out < kMaxColumns,
          "k_out=" + std::to_string(target.k_out) + " exceeds 2^30 columns");
  if (rows == 0) return;
  require(target.q != nullptr, "null q");
  require(aligned16(target.q), "q must be 16-byte aligned");
  require(target.scales != nullptr || !precision_is_quantized(target.precision),
          std::string("scales are required for ") + precision_name(target.precision));
  vectorized = vectorized && width % 8 == 0 && (norm_weight == nullptr || aligned16(norm_weight));

  static const auto kKernels = produce_quantize_kernels<Source>();
  const std::int64_t staged_bytes = staged_row_bytes(width);
  const bool staged = staged_bytes <= kMaxStagedBytes;
  const ProduceQuantizeKernel<Source> kernel =
      kKernels[static_cast<int>(target.precision)][column_map_index(!target.lift, target.pattern)]
              [staged ? 1 : 0];
  const std::size_t smem_bytes = staged ? static_cast<std::size_t>(staged_bytes) : 0;
  if (smem_bytes > static_cast<std::size_t>(kDefaultDynamicSmemBytes))
    SLIDESPARSE_CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                static_cast<int>(smem_bytes)));
  kernel<<<static_cast<unsigned>(rows), kRowThreads, smem_bytes, stream>>>(
      source, norm_weight, eps, static_cast<int>(width), vectorized, static_cast<int>(target.k_out),
      target.q, target.scales);
  SLIDESPARSE_CHECK_LAUNCH();
}

}  // namespace slidesparse::runner::detail
