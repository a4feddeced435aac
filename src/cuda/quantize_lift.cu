// One kernel template quantizes a token row through a column map: the identity
// (plain per-token quantization) or a lifting pattern (DESIGN.md §4).
//
// One block per row. Pass 1 reads the row with 16-byte loads, keeps it in shared
// memory when it fits and reduces its absmax. Pass 2 writes the output row one
// window of 4 slid columns per thread (quantize_lift_row.cuh, shared with the model
// runner's fused producers).
#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "quantize_lift_row.cuh"
#include "quantize_rows.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/exact_divide.hpp"
#include "slidesparse/cuda/quantize_lift.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {
namespace detail {
namespace {

constexpr int kMaxThreads = 512;
constexpr int kLoadUnroll = 4;  // 16-byte loads in flight per thread in pass 1

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

  const float scale = block_row_scale<P>(absmax, warp_absmax);
  if (thread == 0 && scales != nullptr) scales[row] = scale;
  const ExactDivisor divisor = make_exact_divisor(scale);

  // Pass 2: the output row, one window of 4 slid columns per thread and step.
  if constexpr (kStaged) {
    write_staged_row<In, P, kMap>(reinterpret_cast<const std::uint32_t*>(staged_chunks), k, k_out,
                                  divisor, q, row);
  } else {
    write_row<P, kMap>([x_row](unsigned c) { return In::to_float(__ldg(x_row + c)); }, k, k_out,
                       divisor, q, row);
  }
}

template <class In, Precision P, int kMap>
constexpr std::array<QuantizeRowsKernel, 2> staging_variants() {
  return {&quantize_rows_kernel<In, P, kMap, false>, &quantize_rows_kernel<In, P, kMap, true>};
}

template <class In, Precision P, std::size_t... I>
constexpr std::array<std::array<QuantizeRowsKernel, 2>, kMapCount> map_variants(
    std::index_sequence<I...>) {
  return {staging_variants<In, P, kMapCodes[I]>()...};
}

template <class In>
constexpr auto precision_variants() {
  constexpr auto maps = std::make_index_sequence<kMapCount>{};
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
  const std::int64_t staged_bytes = staged_row_bytes(k);
  const bool staged = staged_bytes <= kMaxStagedBytes;
  const QuantizeRowsKernel kernel =
      kQuantizeRowsKernels[x_type == DType::BF16 ? 0 : 1][static_cast<int>(p)]
                          [column_map_index(map.is_identity, map.pattern)][staged ? 1 : 0];
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
