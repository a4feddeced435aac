// Private to src/runner: the float arithmetic of the runner's row kernels, shared by
// model_kernels.cu and the fused producers (fused_quantize_kernel.cuh) so that a fused
// kernel computes every BF16 value with the same operations in the same order, and equals
// the unfused sequence bit for bit. Roundings are explicit intrinsics: no multiply-add
// contraction that could differ between two kernels.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "slidesparse/model/config.hpp"

namespace slidesparse::runner::detail {

using bf16 = __nv_bfloat16;

// Threads per block of the row reductions (RMSNorm): the sums' order depends on it.
constexpr int kRowThreads = 256;
constexpr unsigned kFullMask = 0xffffffffu;

// V consecutive BF16 values to float and back; V == 8 is one 16-byte access.
template <int V>
__device__ __forceinline__ void load_floats(const bf16* p, float (&f)[V]) {
  if constexpr (V == 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 t = __bfloat1622float2(pairs[k]);
      f[2 * k] = t.x;
      f[2 * k + 1] = t.y;
    }
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) f[k] = __bfloat162float(p[k]);
  }
}

template <int V>
__device__ __forceinline__ void store_floats(bf16* p, const float (&f)[V]) {
  if constexpr (V == 8) {
    uint4 raw;
    __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) pairs[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
    *reinterpret_cast<uint4*>(p) = raw;
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) p[k] = __float2bfloat16_rn(f[k]);
  }
}

__device__ __forceinline__ float round_to_bf16(float x) {
  return __bfloat162float(__float2bfloat16_rn(x));
}

// The sum of `value` over the block (blockDim.x a multiple of 32), the same on every thread.
// `scratch` holds 32 floats; the leading barrier lets a grid-stride loop reuse it. The
// trailing barrier also publishes the block's earlier shared and global writes.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    value += __shfl_xor_sync(kFullMask, value, offset);
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  float total = 0.0f;
  const int warps = static_cast<int>(blockDim.x) / 32;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

// ---- RMSNorm (HF: the sum in float32, the weight product after normalizing) ---------------

// One term of a row's sum of squares.
__device__ __forceinline__ float add_square(float sum, float x) { return __fmaf_rn(x, x, sum); }

// 1 / sqrt(mean(x²) + eps) from the row's sum of squares.
__device__ __forceinline__ float inverse_rms(float sum_squares, std::int64_t width, float eps) {
  return __fdiv_rn(1.0f,
                   __fsqrt_rn(__fadd_rn(__fdiv_rn(sum_squares, static_cast<float>(width)), eps)));
}

// The normalized value before its rounding to BF16.
__device__ __forceinline__ float normalize(float weight, float x, float inv_rms) {
  return __fmul_rn(weight, __fmul_rn(x, inv_rms));
}

// The residual connection: transformers adds in BF16.
__device__ __forceinline__ float add_in_bf16(float residual, float y) {
  return round_to_bf16(__fadd_rn(residual, y));
}

// ---- the gated activation -------------------------------------------------------------

template <Activation A>
__device__ __forceinline__ float activate(float g) {
  if constexpr (A == Activation::Silu) {
    return __fdiv_rn(g, __fadd_rn(1.0f, expf(-g)));
  } else {
    const float r = fmaxf(g, 0.0f);
    return __fmul_rn(r, r);
  }
}

// act(gate) · up before its rounding to BF16.
template <Activation A>
__device__ __forceinline__ float gated(float gate, float up) {
  return __fmul_rn(activate<A>(gate), up);
}

}  // namespace slidesparse::runner::detail
