// The row-wise and elementwise kernels of the model runner (model_kernels.hpp): one block
// per row for the reductions (RMSNorm, argmax) with warp-shuffle sums, a grid-stride loop
// over rows so any row count fits the grid, 16-byte loads where the rows allow them.
#include <cuda_bf16.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "row_math.cuh"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/runner/model_kernels.hpp"

namespace slidesparse::runner {
namespace {

using detail::add_in_bf16;
using detail::add_square;
using detail::block_sum;
using detail::gated;
using detail::inverse_rms;
using detail::kFullMask;
using detail::kRowThreads;
using detail::load_floats;
using detail::normalize;
using detail::store_floats;

constexpr int kArgmaxThreads = 1024;
constexpr int kElementThreads = 256;
// Blocks beyond this walk further rows (or elements) in a grid-stride loop.
constexpr std::int64_t kMaxBlocks = std::int64_t{1} << 20;

unsigned blocks_for(std::int64_t work) {
  return static_cast<unsigned>(std::max<std::int64_t>(1, std::min(work, kMaxBlocks)));
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// True when rows of `width` BF16 elements starting at every pointer can be read 8 at a time.
bool vectorizable(std::int64_t width, std::initializer_list<const void*> pointers) {
  if (width % 8 != 0) return false;
  for (const void* p : pointers)
    if (p != nullptr && !aligned16(p)) return false;
  return true;
}

void require_non_negative(const char* caller, const char* name, std::int64_t value) {
  SLIDESPARSE_REQUIRE(
      value >= 0, InvalidArgument,
      std::string(caller) + ": " + name + " " + std::to_string(value) + " is negative");
}

// ---- row copies: embedding and gather_rows ---------------------------------------------

// dst[i] = src[index[i]]; with `limit` >= 0 an index outside [0, limit) yields a zero row.
template <int V>
__global__ void __launch_bounds__(kRowThreads)
    copy_rows_kernel(bf16* dst, const bf16* src, const int* index, std::int64_t count,
                     std::int64_t width, std::int64_t limit) {
  const std::int64_t vectors = width / V;
  for (std::int64_t row = blockIdx.x; row < count; row += gridDim.x) {
    const std::int64_t from = index[row];
    const bool zero = limit >= 0 && (from < 0 || from >= limit);
    bf16* out = dst + row * width;
    const bf16* in = src + from * width;
    for (std::int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
      float f[V];
      if (zero) {
#pragma unroll
        for (int k = 0; k < V; ++k) f[k] = 0.0f;
      } else {
        load_floats<V>(in + i * V, f);
      }
      store_floats<V>(out + i * V, f);
    }
  }
}

void copy_rows(const char* caller, bf16* dst, const bf16* src, const int* index, std::int64_t count,
               std::int64_t width, std::int64_t limit, cudaStream_t stream) {
  require_non_negative(caller, "row count", count);
  require_non_negative(caller, "width", width);
  if (count == 0 || width == 0) return;
  const unsigned grid = blocks_for(count);
  if (vectorizable(width, {dst, src}))
    copy_rows_kernel<8><<<grid, kRowThreads, 0, stream>>>(dst, src, index, count, width, limit);
  else
    copy_rows_kernel<1><<<grid, kRowThreads, 0, stream>>>(dst, src, index, count, width, limit);
  SLIDESPARSE_CHECK_LAUNCH();
}

// ---- RMSNorm ---------------------------------------------------------------------------

// Each thread reads and writes the same elements in both passes, so out may alias x.
template <int V>
__global__ void __launch_bounds__(kRowThreads)
    rms_norm_kernel(bf16* out, const bf16* x, const bf16* weight, std::int64_t rows,
                    std::int64_t width, float eps) {
  __shared__ float scratch[32];
  const std::int64_t vectors = width / V;
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const bf16* in = x + row * width;
    bf16* result = out + row * width;
    float sum_squares = 0.0f;
    for (std::int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
      float f[V];
      load_floats<V>(in + i * V, f);
#pragma unroll
      for (int k = 0; k < V; ++k) sum_squares = add_square(sum_squares, f[k]);
    }
    const float inv_rms = inverse_rms(block_sum(sum_squares, scratch), width, eps);
    for (std::int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
      float f[V], w[V];
      load_floats<V>(in + i * V, f);
      load_floats<V>(weight + i * V, w);
#pragma unroll
      for (int k = 0; k < V; ++k) f[k] = normalize(w[k], f[k], inv_rms);
      store_floats<V>(result + i * V, f);
    }
  }
}

// residual += y rounded to BF16, then the norm of the rounded sum.
template <int V>
__global__ void __launch_bounds__(kRowThreads)
    add_rms_norm_kernel(bf16* residual, const bf16* y, bf16* out, const bf16* weight,
                        std::int64_t rows, std::int64_t width, float eps) {
  __shared__ float scratch[32];
  const std::int64_t vectors = width / V;
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    bf16* res = residual + row * width;
    const bf16* add = y + row * width;
    bf16* result = out + row * width;
    float sum_squares = 0.0f;
    for (std::int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
      float r[V], a[V];
      load_floats<V>(res + i * V, r);
      load_floats<V>(add + i * V, a);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        r[k] = add_in_bf16(r[k], a[k]);
        sum_squares = add_square(sum_squares, r[k]);
      }
      store_floats<V>(res + i * V, r);
    }
    const float inv_rms = inverse_rms(block_sum(sum_squares, scratch), width, eps);
    for (std::int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
      float f[V], w[V];
      load_floats<V>(res + i * V, f);  // this thread's own stores above
      load_floats<V>(weight + i * V, w);
#pragma unroll
      for (int k = 0; k < V; ++k) f[k] = normalize(w[k], f[k], inv_rms);
      store_floats<V>(result + i * V, f);
    }
  }
}

// ---- elementwise -----------------------------------------------------------------------

template <int V>
__global__ void __launch_bounds__(kElementThreads)
    residual_add_kernel(bf16* residual, const bf16* y, std::int64_t count) {
  const std::int64_t vectors = count / V;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < vectors; i += step) {
    float r[V], a[V];
    load_floats<V>(residual + i * V, r);
    load_floats<V>(y + i * V, a);
#pragma unroll
    for (int k = 0; k < V; ++k) r[k] += a[k];
    store_floats<V>(residual + i * V, r);
  }
}

template <int V, Activation A>
__global__ void __launch_bounds__(kElementThreads)
    gated_activation_kernel(bf16* out, const bf16* gate_up, std::int64_t rows,
                            std::int64_t intermediate) {
  const std::int64_t per_row = intermediate / V;
  const std::int64_t vectors = rows * per_row;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < vectors; i += step) {
    const std::int64_t row = i / per_row;
    const std::int64_t column = (i - row * per_row) * V;
    const bf16* gate = gate_up + row * 2 * intermediate + column;
    float g[V], u[V];
    load_floats<V>(gate, g);
    load_floats<V>(gate + intermediate, u);
#pragma unroll
    for (int k = 0; k < V; ++k) g[k] = gated<A>(g[k], u[k]);
    store_floats<V>(out + row * intermediate + column, g);
  }
}

template <Activation A>
void launch_gated_activation(bf16* out, const bf16* gate_up, std::int64_t rows,
                             std::int64_t intermediate, cudaStream_t stream) {
  const bool vector = vectorizable(intermediate, {out, gate_up});
  const std::int64_t vectors = rows * intermediate / (vector ? 8 : 1);
  const unsigned grid = blocks_for((vectors + kElementThreads - 1) / kElementThreads);
  if (vector)
    gated_activation_kernel<8, A>
        <<<grid, kElementThreads, 0, stream>>>(out, gate_up, rows, intermediate);
  else
    gated_activation_kernel<1, A>
        <<<grid, kElementThreads, 0, stream>>>(out, gate_up, rows, intermediate);
  SLIDESPARSE_CHECK_LAUNCH();
}

// ---- RoPE and the KV-cache store -------------------------------------------------------

// One block per row: the row's cos/sin table in shared memory (head_dim/2 pairs), then every
// q and k head rotated in place, k and v copied into the cache.
__global__ void __launch_bounds__(kRowThreads)
    rope_store_kv_kernel(bf16* qkv, std::int64_t rows, const int* sequence, const int* position,
                         const float* inv_freq, std::int64_t heads, KvCacheView cache) {
  extern __shared__ float trig[];  // cos [half], then sin [half]
  const std::int64_t head_dim = cache.head_dim;
  const std::int64_t half = head_dim / 2;
  const std::int64_t kv_heads = cache.kv_heads;
  const std::int64_t width = (heads + 2 * kv_heads) * head_dim;
  const std::int64_t kv_width = kv_heads * head_dim;
  float* cos_table = trig;
  float* sin_table = trig + half;
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int pos = position[row];
    const int seq = sequence[row];
    // A row outside the cache is still rotated but not stored (the host validates them).
    const bool store = seq >= 0 && seq < cache.max_sequences && pos >= 0 && pos < cache.max_length;
    __syncthreads();  // the previous row's table is no longer read
    for (std::int64_t i = threadIdx.x; i < half; i += blockDim.x) {
      const float angle = static_cast<float>(pos) * inv_freq[i];
      cos_table[i] = cosf(angle);
      sin_table[i] = sinf(angle);
    }
    __syncthreads();
    bf16* r = qkv + row * width;
    const std::int64_t slot = (static_cast<std::int64_t>(seq) * cache.max_length + pos) * kv_width;
    const std::int64_t pairs = (heads + kv_heads) * half;
    for (std::int64_t p = threadIdx.x; p < pairs; p += blockDim.x) {
      const std::int64_t head = p / half;
      const std::int64_t i = p - head * half;
      bf16* x = r + head * head_dim;
      const float first = __bfloat162float(x[i]);
      const float second = __bfloat162float(x[i + half]);
      const float c = cos_table[i];
      const float s = sin_table[i];
      // Explicit roundings: no fused multiply-add, as the CPU reference computes it.
      const bf16 a = __float2bfloat16_rn(__fsub_rn(__fmul_rn(first, c), __fmul_rn(second, s)));
      const bf16 b = __float2bfloat16_rn(__fadd_rn(__fmul_rn(second, c), __fmul_rn(first, s)));
      x[i] = a;
      x[i + half] = b;
      if (head >= heads && store) {
        bf16* k = cache.k + slot + (head - heads) * head_dim;
        k[i] = a;
        k[i + half] = b;
      }
    }
    if (store) {
      const bf16* v = r + (heads + kv_heads) * head_dim;
      for (std::int64_t e = threadIdx.x; e < kv_width; e += blockDim.x) cache.v[slot + e] = v[e];
    }
  }
}

// ---- argmax ----------------------------------------------------------------------------

struct Best {
  float value;
  std::int64_t index;
};

// The larger value wins; among equal values the lower index (torch.argmax).
__device__ __forceinline__ Best better(Best a, Best b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_kernel(int* out, const float* logits, std::int64_t rows, std::int64_t vocab) {
  __shared__ float warp_value[32];
  __shared__ std::int64_t warp_index[32];
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* x = logits + row * vocab;
    // The sentinel index loses every tie against a real element, even -inf.
    Best best{-INFINITY, LLONG_MAX};
    for (std::int64_t i = threadIdx.x; i < vocab; i += blockDim.x) best = better(best, {x[i], i});
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const Best other{__shfl_xor_sync(kFullMask, best.value, offset),
                       __shfl_xor_sync(kFullMask, best.index, offset)};
      best = better(best, other);
    }
    __syncthreads();  // the previous row's winners are read
    if (lane == 0) {
      warp_value[warp] = best.value;
      warp_index[warp] = best.index;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      Best total{warp_value[0], warp_index[0]};
      const int warps = static_cast<int>(blockDim.x) / 32;
      for (int w = 1; w < warps; ++w) total = better(total, {warp_value[w], warp_index[w]});
      // Only NaNs in the row: index 0, as std::max_element answers.
      out[row] = total.index == LLONG_MAX ? 0 : static_cast<int>(total.index);
    }
  }
}

}  // namespace

void embedding(bf16* out, const bf16* table, const int* tokens, std::int64_t m, std::int64_t hidden,
               std::int64_t vocab, cudaStream_t stream) {
  require_non_negative("embedding", "vocab", vocab);
  copy_rows("embedding", out, table, tokens, m, hidden, vocab, stream);
}

void gather_rows(bf16* dst, const bf16* src, const int* index, std::int64_t count,
                 std::int64_t width, cudaStream_t stream) {
  copy_rows("gather_rows", dst, src, index, count, width, -1, stream);
}

void rms_norm(bf16* out, const bf16* x, const bf16* weight, std::int64_t rows, std::int64_t width,
              float eps, cudaStream_t stream) {
  require_non_negative("rms_norm", "rows", rows);
  SLIDESPARSE_REQUIRE(width > 0, InvalidArgument,
                      "rms_norm: width " + std::to_string(width) + " must be positive");
  if (rows == 0) return;
  const unsigned grid = blocks_for(rows);
  if (vectorizable(width, {out, x, weight}))
    rms_norm_kernel<8><<<grid, kRowThreads, 0, stream>>>(out, x, weight, rows, width, eps);
  else
    rms_norm_kernel<1><<<grid, kRowThreads, 0, stream>>>(out, x, weight, rows, width, eps);
  SLIDESPARSE_CHECK_LAUNCH();
}

void add_rms_norm(bf16* residual, const bf16* y, bf16* out, const bf16* weight, std::int64_t rows,
                  std::int64_t width, float eps, cudaStream_t stream) {
  require_non_negative("add_rms_norm", "rows", rows);
  SLIDESPARSE_REQUIRE(width > 0, InvalidArgument,
                      "add_rms_norm: width " + std::to_string(width) + " must be positive");
  if (rows == 0) return;
  const unsigned grid = blocks_for(rows);
  if (vectorizable(width, {residual, y, out, weight}))
    add_rms_norm_kernel<8>
        <<<grid, kRowThreads, 0, stream>>>(residual, y, out, weight, rows, width, eps);
  else
    add_rms_norm_kernel<1>
        <<<grid, kRowThreads, 0, stream>>>(residual, y, out, weight, rows, width, eps);
  SLIDESPARSE_CHECK_LAUNCH();
}

void residual_add(bf16* residual, const bf16* y, std::int64_t count, cudaStream_t stream) {
  require_non_negative("residual_add", "count", count);
  if (count == 0) return;
  const bool vector = vectorizable(count, {residual, y});
  const std::int64_t vectors = vector ? count / 8 : count;
  const unsigned grid = blocks_for((vectors + kElementThreads - 1) / kElementThreads);
  if (vector)
    residual_add_kernel<8><<<grid, kElementThreads, 0, stream>>>(residual, y, count);
  else
    residual_add_kernel<1><<<grid, kElementThreads, 0, stream>>>(residual, y, count);
  SLIDESPARSE_CHECK_LAUNCH();
}

void rope_store_kv(bf16* qkv, std::int64_t rows, const int* sequence, const int* position,
                   const float* inv_freq, std::int64_t heads, const KvCacheView& cache,
                   cudaStream_t stream) {
  require_non_negative("rope_store_kv", "rows", rows);
  SLIDESPARSE_REQUIRE(
      heads > 0 && cache.kv_heads > 0 && heads % cache.kv_heads == 0, InvalidArgument,
      "rope_store_kv: heads " + std::to_string(heads) +
          " must be a positive multiple of kv_heads " + std::to_string(cache.kv_heads));
  SLIDESPARSE_REQUIRE(
      cache.head_dim > 0 && cache.head_dim % 2 == 0, InvalidArgument,
      "rope_store_kv: head_dim " + std::to_string(cache.head_dim) + " must be positive and even");
  if (rows == 0) return;
  const std::size_t table_bytes = static_cast<std::size_t>(cache.head_dim) * sizeof(float);
  rope_store_kv_kernel<<<blocks_for(rows), kRowThreads, table_bytes, stream>>>(
      qkv, rows, sequence, position, inv_freq, heads, cache);
  SLIDESPARSE_CHECK_LAUNCH();
}

void gated_activation(bf16* out, const bf16* gate_up, std::int64_t rows, std::int64_t intermediate,
                      Activation act, cudaStream_t stream) {
  require_non_negative("gated_activation", "rows", rows);
  require_non_negative("gated_activation", "intermediate", intermediate);
  if (rows == 0 || intermediate == 0) return;
  switch (act) {
    case Activation::Silu:
      launch_gated_activation<Activation::Silu>(out, gate_up, rows, intermediate, stream);
      return;
    case Activation::Relu2:
      launch_gated_activation<Activation::Relu2>(out, gate_up, rows, intermediate, stream);
      return;
  }
  throw InvalidArgument("gated_activation: unknown activation " +
                        std::to_string(static_cast<int>(act)));
}

void argmax_rows(int* out, const float* logits, std::int64_t rows, std::int64_t vocab,
                 cudaStream_t stream) {
  require_non_negative("argmax_rows", "rows", rows);
  SLIDESPARSE_REQUIRE(vocab > 0 && vocab <= INT_MAX, InvalidArgument,
                      "argmax_rows: vocab " + std::to_string(vocab) + " must be in [1, INT_MAX]");
  if (rows == 0) return;
  argmax_kernel<<<blocks_for(rows), kArgmaxThreads, 0, stream>>>(out, logits, rows, vocab);
  SLIDESPARSE_CHECK_LAUNCH();
}

}  // namespace slidesparse::runner
