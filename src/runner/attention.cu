// Causal attention of the model runner (model_kernels.hpp).
// Prefill, FlashAttention-2 style: a block of 4 warps takes 64 query rows of one sequence
// and one query head; each warp owns 16 of those rows. Key/value tiles of 64 rows stream
// through shared memory up to the causal limit; S = Q·Kᵀ and O += P·V run on the tensor
// cores (WMMA 16x16x16, BF16 in, float accumulators) and the online softmax in float32.
// The accumulator O lives in shared memory so each warp can rescale its own rows.
// Decode: one block per (sequence, query head); groups of head_dim/8 lanes take one key each
// (16-byte loads, a shuffle-reduced dot product), each group keeps its own online softmax,
// and the groups' partial results are merged in shared memory at the end.
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>
#include <string>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/runner/model_kernels.hpp"

namespace slidesparse::runner {
namespace {

namespace wmma = nvcuda::wmma;

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kTile = 64;  // query rows per block, keys per tile
constexpr int kPrefillWarps = kTile / 16;
constexpr int kPrefillThreads = kPrefillWarps * 32;
constexpr int kDecodeThreads = 256;

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// The shared-memory layout of a prefill block. Row strides are padded against bank
// conflicts and keep every 16x16 fragment 32-byte aligned, as WMMA requires.
template <int D>
struct PrefillLayout {
  static constexpr int kLdQkv = D + 8;    // BF16 Q, K, V tiles [64][kLdQkv]
  static constexpr int kLdS = kTile + 4;  // float scores [64][kLdS]
  static constexpr int kLdP = kTile + 8;  // BF16 probabilities [64][kLdP]
  static constexpr int kLdO = D + 4;      // float output accumulator [64][kLdO]
  static constexpr int kQkvBytes = kTile * kLdQkv * 2;
  static constexpr int kQ = 0;
  static constexpr int kK = kQ + kQkvBytes;
  static constexpr int kV = kK + kQkvBytes;
  static constexpr int kS = kV + kQkvBytes;
  static constexpr int kP = kS + kTile * kLdS * 4;
  static constexpr int kO = kP + kTile * kLdP * 2;
  static constexpr int kBytes = kO + kTile * kLdO * 4;
  static_assert(kQkvBytes % 32 == 0 && kK % 32 == 0 && kS % 32 == 0 && kP % 32 == 0 && kO % 32 == 0,
                "WMMA needs 32-byte aligned fragments");
};

// Rows [row0, row0 + 64) of a head slice (rows `stride` elements apart) into shared memory;
// rows at or past `length` are zeros, so the masked products stay finite.
template <int D>
__device__ void load_tile(bf16* tile, const bf16* head_base, std::int64_t stride, std::int64_t row0,
                          std::int64_t length) {
  constexpr int kVectorsPerRow = D / 8;
  for (int i = static_cast<int>(threadIdx.x); i < kTile * kVectorsPerRow; i += kPrefillThreads) {
    const int r = i / kVectorsPerRow;
    const int c = (i % kVectorsPerRow) * 8;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (row0 + r < length)
      value = *reinterpret_cast<const uint4*>(head_base + (row0 + r) * stride + c);
    *reinterpret_cast<uint4*>(tile + r * PrefillLayout<D>::kLdQkv + c) = value;
  }
}

// grid (sequences, query tiles of max_seqlen, heads); the heaviest tiles (last) start first.
template <int D>
__global__ void __launch_bounds__(kPrefillThreads)
    attention_prefill_kernel(bf16* out, const bf16* qkv, const int* cu_seqlens, std::int64_t heads,
                             std::int64_t kv_heads) {
  using L = PrefillLayout<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_tile = reinterpret_cast<bf16*>(smem + L::kQ);
  bf16* k_tile = reinterpret_cast<bf16*>(smem + L::kK);
  bf16* v_tile = reinterpret_cast<bf16*>(smem + L::kV);
  float* scores = reinterpret_cast<float*>(smem + L::kS);
  bf16* probs = reinterpret_cast<bf16*>(smem + L::kP);
  float* acc = reinterpret_cast<float*>(smem + L::kO);

  const std::int64_t sequence = blockIdx.x;
  const std::int64_t q0 = static_cast<std::int64_t>(gridDim.y - 1 - blockIdx.y) * kTile;
  const std::int64_t head = blockIdx.z;
  const std::int64_t begin = cu_seqlens[sequence];
  const std::int64_t length = cu_seqlens[sequence + 1] - begin;
  if (q0 >= length) return;  // the whole block leaves together, before any barrier

  const std::int64_t stride = (heads + 2 * kv_heads) * D;
  const std::int64_t kv_head = head / (heads / kv_heads);
  const bf16* q_base = qkv + begin * stride + head * D;
  const bf16* k_base = qkv + begin * stride + (heads + kv_head) * D;
  const bf16* v_base = qkv + begin * stride + (heads + kv_heads + kv_head) * D;

  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  float* scores_w = scores + warp * 16 * L::kLdS;
  bf16* probs_w = probs + warp * 16 * L::kLdP;
  float* acc_w = acc + warp * 16 * L::kLdO;

  load_tile<D>(q_tile, q_base, stride, q0, length);
  for (int i = static_cast<int>(threadIdx.x); i < kTile * L::kLdO; i += kPrefillThreads)
    acc[i] = 0.0f;
  __syncthreads();

  wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> q_frag[D / 16];
#pragma unroll
  for (int k = 0; k < D / 16; ++k)
    wmma::load_matrix_sync(q_frag[k], q_tile + warp * 16 * L::kLdQkv + k * 16, L::kLdQkv);

  // Lane r < 16 holds the running max and sum of the warp's row r.
  float row_max = -INFINITY;
  float row_sum = 0.0f;
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  const std::int64_t last_query = min(q0 + kTile, length) - 1;
  const std::int64_t key_tiles = last_query / kTile + 1;

  for (std::int64_t kt = 0; kt < key_tiles; ++kt) {
    const std::int64_t k0 = kt * kTile;
    __syncthreads();  // every warp is done with the previous K and V
    load_tile<D>(k_tile, k_base, stride, k0, length);
    load_tile<D>(v_tile, v_base, stride, k0, length);
    __syncthreads();

    // S = Q Kᵀ for this warp's 16 rows: Kᵀ is K read column-major.
#pragma unroll
    for (int n = 0; n < kTile / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> s_frag;
      wmma::fill_fragment(s_frag, 0.0f);
#pragma unroll
      for (int k = 0; k < D / 16; ++k) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> k_frag;
        wmma::load_matrix_sync(k_frag, k_tile + n * 16 * L::kLdQkv + k * 16, L::kLdQkv);
        wmma::mma_sync(s_frag, q_frag[k], k_frag, s_frag);
      }
      wmma::store_matrix_sync(scores_w + n * 16, s_frag, L::kLdS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax, one row at a time across the warp (two keys per lane).
    for (int r = 0; r < 16; ++r) {
      const std::int64_t query = q0 + warp * 16 + r;
      float s[2];
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int column = lane + 32 * c;
        const std::int64_t key = k0 + column;
        s[c] = key <= query && key < length ? scores_w[r * L::kLdS + column] * scale : -INFINITY;
      }
      const float old_max = __shfl_sync(kFullMask, row_max, r);
      const float new_max = fmaxf(old_max, warp_max(fmaxf(s[0], s[1])));
      const float base = new_max == -INFINITY ? 0.0f : new_max;  // an all-masked row stays 0
      const float p0 = expf(s[0] - base);
      const float p1 = expf(s[1] - base);
      const float tile_sum = warp_sum(p0 + p1);
      const float rescale = expf(old_max - base);
      if (lane == r) {
        row_max = new_max;
        row_sum = row_sum * rescale + tile_sum;
      }
      probs_w[r * L::kLdP + lane] = __float2bfloat16_rn(p0);
      probs_w[r * L::kLdP + lane + 32] = __float2bfloat16_rn(p1);
      for (int d = lane; d < D; d += 32) acc_w[r * L::kLdO + d] *= rescale;
    }
    __syncwarp();

    // O += P V
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> p_frag[kTile / 16];
#pragma unroll
    for (int k = 0; k < kTile / 16; ++k)
      wmma::load_matrix_sync(p_frag[k], probs_w + k * 16, L::kLdP);
#pragma unroll
    for (int n = 0; n < D / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> o_frag;
      wmma::load_matrix_sync(o_frag, acc_w + n * 16, L::kLdO, wmma::mem_row_major);
#pragma unroll
      for (int k = 0; k < kTile / 16; ++k) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> v_frag;
        wmma::load_matrix_sync(v_frag, v_tile + k * 16 * L::kLdQkv + n * 16, L::kLdQkv);
        wmma::mma_sync(o_frag, p_frag[k], v_frag, o_frag);
      }
      wmma::store_matrix_sync(acc_w + n * 16, o_frag, L::kLdO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  const std::int64_t out_stride = heads * D;
  for (int r = 0; r < 16; ++r) {
    const float sum = __shfl_sync(kFullMask, row_sum, r);
    const std::int64_t query = q0 + warp * 16 + r;
    if (query >= length) continue;  // the same for the whole warp
    const float inv_sum = sum > 0.0f ? 1.0f / sum : 0.0f;
    bf16* o = out + (begin + query) * out_stride + head * D;
    for (int d = 2 * lane; d < D; d += 64) {
      *reinterpret_cast<__nv_bfloat162*>(o + d) = __floats2bfloat162_rn(
          acc_w[r * L::kLdO + d] * inv_sum, acc_w[r * L::kLdO + d + 1] * inv_sum);
    }
  }
}

template <int D>
void launch_prefill(bf16* out, const bf16* qkv, const int* cu_seqlens, std::int64_t sequences,
                    std::int64_t max_seqlen, std::int64_t heads, std::int64_t kv_heads,
                    cudaStream_t stream) {
  constexpr int kBytes = PrefillLayout<D>::kBytes;
  // Above the 48 KiB default: opt in once per kernel (a device attribute, legal in capture).
  static const bool opted_in = [] {
    SLIDESPARSE_CHECK_CUDA(cudaFuncSetAttribute(
        attention_prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes));
    return true;
  }();
  (void)opted_in;
  const std::int64_t query_tiles = (max_seqlen + kTile - 1) / kTile;
  SLIDESPARSE_REQUIRE(query_tiles <= 65535 && heads <= 65535 && sequences <= 0x7fffffff,
                      InvalidArgument,
                      "attention_prefill: max_seqlen " + std::to_string(max_seqlen) + ", heads " +
                          std::to_string(heads) + " or sequences " + std::to_string(sequences) +
                          " exceed the launch grid");
  const dim3 grid(static_cast<unsigned>(sequences), static_cast<unsigned>(query_tiles),
                  static_cast<unsigned>(heads));
  attention_prefill_kernel<D>
      <<<grid, kPrefillThreads, kBytes, stream>>>(out, qkv, cu_seqlens, heads, kv_heads);
  SLIDESPARSE_CHECK_LAUNCH();
}

// ---- decode ----------------------------------------------------------------------------

// grid (sequences, heads). Keys are walked in batches so every lane of a warp runs the
// same number of iterations (the shuffles need the whole warp).
template <int D>
__global__ void __launch_bounds__(kDecodeThreads)
    attention_decode_kernel(bf16* out, const bf16* qkv, const int* lengths, std::int64_t heads,
                            KvCacheView cache) {
  constexpr int kLanes = D / 8;  // lanes per key: 8 elements (16 bytes) each
  constexpr int kGroupsPerWarp = 32 / kLanes;
  constexpr int kGroups = kDecodeThreads / kLanes;
  constexpr int kBatch = 4;  // keys in flight per group
  __shared__ float part_max[kGroups];
  __shared__ float part_sum[kGroups];
  __shared__ float part_out[kGroups][D];

  const std::int64_t sequence = blockIdx.x;
  const std::int64_t head = blockIdx.y;
  const std::int64_t kv_heads = cache.kv_heads;
  const std::int64_t kv_head = head / (heads / kv_heads);
  const std::int64_t length =
      min(max(static_cast<std::int64_t>(lengths[sequence]), std::int64_t{0}), cache.max_length);

  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int group_in_warp = lane / kLanes;
  const int group = warp * kGroupsPerWarp + group_in_warp;
  const int part = lane % kLanes;  // which 8 elements of the head

  float q[8];
  {
    const bf16* q_ptr = qkv + sequence * (heads + 2 * kv_heads) * D + head * D + part * 8;
    const uint4 raw = *reinterpret_cast<const uint4*>(q_ptr);
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 t = __bfloat1622float2(pairs[k]);
      q[2 * k] = t.x;
      q[2 * k + 1] = t.y;
    }
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  const std::int64_t key_stride = kv_heads * D;
  const std::int64_t head_offset =
      sequence * cache.max_length * key_stride + kv_head * D + part * 8;
  const bf16* k_base = cache.k + head_offset;
  const bf16* v_base = cache.v + head_offset;

  float run_max = -INFINITY;
  float run_sum = 0.0f;
  float acc[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) acc[i] = 0.0f;

  const std::int64_t warp_first = static_cast<std::int64_t>(warp) * kGroupsPerWarp;
  for (std::int64_t base = warp_first; base < length; base += kGroups * kBatch) {
    float s[kBatch];
    uint4 v_raw[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const std::int64_t key = base + b * kGroups + group_in_warp;
      const bool valid = key < length;
      uint4 k_raw = make_uint4(0, 0, 0, 0);
      v_raw[b] = make_uint4(0, 0, 0, 0);
      if (valid) {
        k_raw = *reinterpret_cast<const uint4*>(k_base + key * key_stride);
        v_raw[b] = *reinterpret_cast<const uint4*>(v_base + key * key_stride);
      }
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&k_raw);
      float dot = 0.0f;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float2 t = __bfloat1622float2(pairs[k]);
        dot += q[2 * k] * t.x + q[2 * k + 1] * t.y;
      }
#pragma unroll
      for (int offset = kLanes / 2; offset > 0; offset >>= 1)
        dot += __shfl_xor_sync(kFullMask, dot, offset);
      s[b] = valid ? dot * scale : -INFINITY;
    }
    float batch_max = s[0];
#pragma unroll
    for (int b = 1; b < kBatch; ++b) batch_max = fmaxf(batch_max, s[b]);
    const float new_max = fmaxf(run_max, batch_max);
    const float shift = new_max == -INFINITY ? 0.0f : new_max;
    const float rescale = expf(run_max - shift);
    run_sum *= rescale;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] *= rescale;
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const float p = expf(s[b] - shift);
      run_sum += p;
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&v_raw[b]);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float2 t = __bfloat1622float2(pairs[k]);
        acc[2 * k] += p * t.x;
        acc[2 * k + 1] += p * t.y;
      }
    }
    run_max = new_max;
  }

  if (part == 0) {
    part_max[group] = run_max;
    part_sum[group] = run_sum;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) part_out[group][part * 8 + i] = acc[i];
  __syncthreads();

  float total_max = -INFINITY;
  for (int g = 0; g < kGroups; ++g) total_max = fmaxf(total_max, part_max[g]);
  bf16* o = out + sequence * heads * D + head * D;
  for (int d = static_cast<int>(threadIdx.x); d < D; d += kDecodeThreads) {
    if (total_max == -INFINITY) {  // no keys (length 0)
      o[d] = __float2bfloat16_rn(0.0f);
      continue;
    }
    float sum = 0.0f, value = 0.0f;
    for (int g = 0; g < kGroups; ++g) {
      const float weight = expf(part_max[g] - total_max);
      sum += part_sum[g] * weight;
      value += part_out[g][d] * weight;
    }
    o[d] = __float2bfloat16_rn(value / sum);
  }
}

template <int D>
void launch_decode(bf16* out, const bf16* qkv, const int* lengths, std::int64_t sequences,
                   std::int64_t heads, const KvCacheView& cache, cudaStream_t stream) {
  SLIDESPARSE_REQUIRE(heads <= 65535 && sequences <= 0x7fffffff, InvalidArgument,
                      "attention_decode: heads " + std::to_string(heads) + " or sequences " +
                          std::to_string(sequences) + " exceed the launch grid");
  const dim3 grid(static_cast<unsigned>(sequences), static_cast<unsigned>(heads));
  attention_decode_kernel<D><<<grid, kDecodeThreads, 0, stream>>>(out, qkv, lengths, heads, cache);
  SLIDESPARSE_CHECK_LAUNCH();
}

void check_heads(const char* caller, std::int64_t heads, std::int64_t kv_heads,
                 std::int64_t head_dim) {
  SLIDESPARSE_REQUIRE(heads > 0 && kv_heads > 0 && heads % kv_heads == 0, InvalidArgument,
                      std::string(caller) + ": heads " + std::to_string(heads) +
                          " must be a positive multiple of kv_heads " + std::to_string(kv_heads));
  SLIDESPARSE_REQUIRE(head_dim == 64 || head_dim == 128, InvalidArgument,
                      std::string(caller) + ": head_dim " + std::to_string(head_dim) +
                          " is not supported (64 or 128)");
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void attention_prefill(bf16* out, const bf16* qkv, const int* cu_seqlens, std::int64_t sequences,
                       std::int64_t rows, std::int64_t max_seqlen, std::int64_t heads,
                       std::int64_t kv_heads, std::int64_t head_dim, cudaStream_t stream) {
  check_heads("attention_prefill", heads, kv_heads, head_dim);
  SLIDESPARSE_REQUIRE(sequences >= 0 && rows >= 0 && max_seqlen >= 0, InvalidArgument,
                      "attention_prefill: sequences " + std::to_string(sequences) + ", rows " +
                          std::to_string(rows) + " and max_seqlen " + std::to_string(max_seqlen) +
                          " must not be negative");
  SLIDESPARSE_REQUIRE(aligned16(qkv) && aligned16(out), InvalidArgument,
                      "attention_prefill: qkv and out must be 16-byte aligned");
  if (sequences == 0 || rows == 0 || max_seqlen == 0) return;
  if (head_dim == 64)
    launch_prefill<64>(out, qkv, cu_seqlens, sequences, max_seqlen, heads, kv_heads, stream);
  else
    launch_prefill<128>(out, qkv, cu_seqlens, sequences, max_seqlen, heads, kv_heads, stream);
}

void attention_decode(bf16* out, const bf16* qkv, const int* lengths, std::int64_t sequences,
                      std::int64_t heads, const KvCacheView& cache, cudaStream_t stream) {
  check_heads("attention_decode", heads, cache.kv_heads, cache.head_dim);
  SLIDESPARSE_REQUIRE(sequences >= 0 && sequences <= cache.max_sequences, InvalidArgument,
                      "attention_decode: sequences " + std::to_string(sequences) +
                          " outside the cache's [0, " + std::to_string(cache.max_sequences) + "]");
  SLIDESPARSE_REQUIRE(aligned16(qkv) && aligned16(cache.k) && aligned16(cache.v), InvalidArgument,
                      "attention_decode: qkv and the KV cache must be 16-byte aligned");
  if (sequences == 0) return;
  if (cache.head_dim == 64)
    launch_decode<64>(out, qkv, lengths, sequences, heads, cache, stream);
  else
    launch_decode<128>(out, qkv, lengths, sequences, heads, cache, stream);
}

}  // namespace slidesparse::runner
