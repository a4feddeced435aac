// Memory-bound epilogue: each thread owns 8 consecutive columns (16-byte acc loads:
// two for 32-bit accumulators, one for 16-bit ones; one 16-byte y store), keeps their scale_w and
// bias in registers, and walks down the rows with a grid-stride loop, so gridDim.y stays under its
// 65535 limit for any m and every row offset is 64-bit.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/dequantize.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse {
namespace {

constexpr int kColumnsPerThread = 8;
constexpr int kThreads = 256;
constexpr unsigned kMaxGridY = 65535;

__device__ __forceinline__ float widen(std::int32_t a) { return __int2float_rn(a); }
__device__ __forceinline__ float widen(float a) { return a; }
// cuSPARSELt has no FP32 output for 16-bit inputs: its BF16/F16 results come here.
__device__ __forceinline__ float widen(__nv_bfloat16 a) { return __bfloat162float(a); }
__device__ __forceinline__ float widen(__half a) { return __half2float(a); }

struct Bf16Output {
  static __device__ __forceinline__ std::uint16_t narrow(float v) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
};
struct F16Output {
  static __device__ __forceinline__ std::uint16_t narrow(float v) {
    return __half_as_ushort(__float2half_rn(v));
  }
};

using DequantizeKernel = void (*)(const void*, std::int64_t, std::int64_t, int, const float*,
                                  const float*, const float*, void*, std::int64_t, bool);

// `vectorized`: acc and y rows are 16-byte aligned at every multiple of 8 columns.
template <class Acc, class Out>
__global__ void __launch_bounds__(kThreads)
    dequantize_kernel(const void* __restrict__ acc_data, std::int64_t ld_acc, std::int64_t m, int n,
                      const float* __restrict__ scale_x, const float* __restrict__ scale_w,
                      const float* __restrict__ bias, void* __restrict__ y_data, std::int64_t ld_y,
                      bool vectorized) {
  const int first_column = (static_cast<int>(blockIdx.x) * static_cast<int>(blockDim.x) +
                            static_cast<int>(threadIdx.x)) *
                           kColumnsPerThread;
  if (first_column >= n) return;
  const int columns = min(kColumnsPerThread, n - first_column);
  const bool full_vector = vectorized && columns == kColumnsPerThread;

  float column_scale[kColumnsPerThread];
  float column_bias[kColumnsPerThread];
#pragma unroll
  for (int j = 0; j < kColumnsPerThread; ++j) {
    const int c = first_column + j;
    column_scale[j] = scale_w != nullptr && j < columns ? scale_w[c] : 1.0f;
    column_bias[j] = bias != nullptr && j < columns ? bias[c] : 0.0f;
  }

  const Acc* acc = static_cast<const Acc*>(acc_data);
  std::uint16_t* y = static_cast<std::uint16_t*>(y_data);
  const std::int64_t row_step = static_cast<std::int64_t>(gridDim.y) * blockDim.y;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; row < m;
       row += row_step) {
    const float row_scale = scale_x != nullptr ? scale_x[row] : 1.0f;
    const Acc* acc_row = acc + row * ld_acc + first_column;
    std::uint16_t* y_row = y + row * ld_y + first_column;
    // y = fma(acc, scale_x · scale_w, bias), every step rounded as the reference rounds it.
    const auto epilogue = [&](Acc a, int j) {
      return Out::narrow(
          __fmaf_rn(widen(a), __fmul_rn(row_scale, column_scale[j]), column_bias[j]));
    };
    if (full_vector) {
      constexpr int kLoads = kColumnsPerThread * static_cast<int>(sizeof(Acc)) / 16;
      uint4 raw[kLoads];
#pragma unroll
      for (int w = 0; w < kLoads; ++w) raw[w] = __ldcs(reinterpret_cast<const uint4*>(acc_row) + w);
      Acc values[kColumnsPerThread];
      memcpy(values, raw, sizeof values);
      std::uint32_t packed[kColumnsPerThread / 2];
#pragma unroll
      for (int j = 0; j < kColumnsPerThread; j += 2)
        packed[j / 2] = static_cast<std::uint32_t>(epilogue(values[j], j)) |
                        static_cast<std::uint32_t>(epilogue(values[j + 1], j + 1)) << 16;
      *reinterpret_cast<uint4*>(y_row) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
    } else {
      for (int j = 0; j < columns; ++j) y_row[j] = epilogue(acc_row[j], j);
    }
  }
}

// The one dispatch table: [acc I32, F32, BF16, F16][y BF16, F16].
const std::array<std::array<DequantizeKernel, 2>, 4> kDequantizeKernels = {{
    {&dequantize_kernel<std::int32_t, Bf16Output>, &dequantize_kernel<std::int32_t, F16Output>},
    {&dequantize_kernel<float, Bf16Output>, &dequantize_kernel<float, F16Output>},
    {&dequantize_kernel<__nv_bfloat16, Bf16Output>, &dequantize_kernel<__nv_bfloat16, F16Output>},
    {&dequantize_kernel<__half, Bf16Output>, &dequantize_kernel<__half, F16Output>},
}};

int acc_index(DType acc_type) {
  switch (acc_type) {
    case DType::I32:
      return 0;
    case DType::F32:
      return 1;
    case DType::BF16:
      return 2;
    default:
      return 3;  // F16
  }
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void dequantize_output(const void* acc, DType acc_type, std::int64_t m, std::int64_t n,
                       std::int64_t ld_acc, const float* scale_x, const float* scale_w,
                       const float* bias, DType y_type, void* y, std::int64_t ld_y,
                       cudaStream_t stream) {
  const auto require = [](bool ok, const std::string& message) {
    if (!ok) throw InvalidArgument("dequantize_output: " + message);
  };
  require(acc_type == DType::I32 || acc_type == DType::F32 || acc_type == DType::BF16 ||
              acc_type == DType::F16,
          std::string("acc must be I32, F32, BF16 or F16, got ") + dtype_name(acc_type));
  require(y_type == DType::BF16 || y_type == DType::F16,
          std::string("y must be BF16 or F16, got ") + dtype_name(y_type));
  require(m >= 0 && n >= 0, "negative shape m=" + std::to_string(m) + " n=" + std::to_string(n));
  require(n < 0x7FFFFFFF - kColumnsPerThread, "n=" + std::to_string(n) + " exceeds 2^31 columns");
  require(ld_acc >= n && ld_y >= n, "ld_acc=" + std::to_string(ld_acc) +
                                        " and ld_y=" + std::to_string(ld_y) +
                                        " must be >= n=" + std::to_string(n));
  if (m == 0 || n == 0) return;
  require(acc != nullptr && y != nullptr, "null acc or y");

  const std::int64_t acc_per_16_bytes = 16 / static_cast<std::int64_t>(dtype_size(acc_type));
  const bool vectorized =
      aligned16(acc) && ld_acc % acc_per_16_bytes == 0 && aligned16(y) && ld_y % 8 == 0;
  const std::int64_t thread_columns = (n + kColumnsPerThread - 1) / kColumnsPerThread;
  // Narrow outputs still fill the block: the spare threads take further rows.
  const int block_x =
      static_cast<int>(std::min<std::int64_t>(kThreads, (thread_columns + 31) / 32 * 32));
  const int block_y = kThreads / block_x;
  const dim3 block(static_cast<unsigned>(block_x), static_cast<unsigned>(block_y));
  const dim3 grid(
      static_cast<unsigned>((thread_columns + block_x - 1) / block_x),
      static_cast<unsigned>(std::min<std::int64_t>(kMaxGridY, (m + block_y - 1) / block_y)));
  const DequantizeKernel kernel =
      kDequantizeKernels[acc_index(acc_type)][y_type == DType::BF16 ? 0 : 1];
  kernel<<<grid, block, 0, stream>>>(acc, ld_acc, m, static_cast<int>(n), scale_x, scale_w, bias, y,
                                     ld_y, vectorized);
  SLIDESPARSE_CHECK_LAUNCH();
}

}  // namespace slidesparse
