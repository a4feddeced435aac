// The CUDA kernels of the GPU model runner around its linear layers: embedding, RMSNorm,
// RoPE with the KV-cache store, the gated activation, attention (prefill and decode) and
// greedy sampling. Activations are BF16, row-major, one row per token; every kernel
// computes in float32 and equals the float32 CPU blocks of model/reference_blocks.hpp
// within BF16 rounding. Offsets are 64-bit. `stream` may be nullptr (the legacy stream).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "slidesparse/model/config.hpp"

namespace slidesparse::runner {

using bf16 = __nv_bfloat16;

// out[m, hidden] = table[tokens[i], :], table [vocab, hidden]. Token ids are validated by the
// caller (the host); an id outside [0, vocab) writes a zero row rather than reading outside.
void embedding(bf16* out, const bf16* table, const int* tokens, std::int64_t m,
               std::int64_t hidden, std::int64_t vocab, cudaStream_t stream);

// out = weight · x / sqrt(mean(x²) + eps) per row (HF RMSNorm: the sum in float32, the
// normalized value rounded to BF16 after the weight product). out may alias x.
void rms_norm(bf16* out, const bf16* x, const bf16* weight, std::int64_t rows,
              std::int64_t width, float eps, cudaStream_t stream);

// The residual connection fused with the next norm: residual += y (rounded to BF16, as
// transformers adds in BF16), then out = rms_norm(residual).
void add_rms_norm(bf16* residual, const bf16* y, bf16* out, const bf16* weight, std::int64_t rows,
                  std::int64_t width, float eps, cudaStream_t stream);

// residual += y (BF16), for the last layer's output before the final norm if unfused.
void residual_add(bf16* residual, const bf16* y, std::int64_t count, cudaStream_t stream);

// The KV cache of one layer: K and V [max_sequences, max_length, kv_heads, head_dim] BF16.
struct KvCacheView {
  bf16* k = nullptr;
  bf16* v = nullptr;
  std::int64_t max_sequences = 0, max_length = 0, kv_heads = 0, head_dim = 0;
};

// qkv [rows, (heads + 2·kv_heads)·head_dim] as the fused q|k|v linear writes it (q heads, then
// k heads, then v heads). Row r belongs to sequence sequence[r] at position position[r].
// Applies RoPE (rotate_half convention, angle position·inv_freq[i], inv_freq [head_dim/2]
// float32 on the device) to q and k in place, then stores k and v at
// cache[sequence[r]][position[r]].
void rope_store_kv(bf16* qkv, std::int64_t rows, const int* sequence, const int* position,
                   const float* inv_freq, std::int64_t heads, const KvCacheView& cache,
                   cudaStream_t stream);

// Causal prefill attention over variable-length sequences that all start at position 0:
// sequence s holds rows [cu_seqlens[s], cu_seqlens[s+1]) of qkv (after rope_store_kv), keys and
// values read from those rows. out [rows, heads·head_dim]; query head j reads kv head
// j / (heads / kv_heads); scale 1/sqrt(head_dim). max_seqlen bounds every sequence's length.
// FlashAttention-style: tensor cores, online softmax, no [rows × rows] matrix in memory.
// head_dim 64 or 128 and qkv, out 16-byte aligned, else InvalidArgument.
void attention_prefill(bf16* out, const bf16* qkv, const int* cu_seqlens, std::int64_t sequences,
                       std::int64_t rows, std::int64_t max_seqlen, std::int64_t heads,
                       std::int64_t kv_heads, std::int64_t head_dim, cudaStream_t stream);

// Decode attention: row s of qkv is the newest token of sequence s (already stored by
// rope_store_kv); it attends to cache[s][0 .. lengths[s]) (its own position included).
// lengths live on the device so a captured CUDA graph replays with new lengths.
// max_length bounds every lengths[s] (sizes the split over keys); a length of 0 gives zeros.
// One block per (sequence, head) splits the keys across its lanes: no workspace, so the
// call can be captured in a CUDA graph. head_dim 64 or 128, qkv and the cache 16-byte
// aligned, else InvalidArgument.
void attention_decode(bf16* out, const bf16* qkv, const int* lengths, std::int64_t sequences,
                      std::int64_t heads, const KvCacheView& cache, cudaStream_t stream);

// gate_up [rows, 2·intermediate] (gate columns first, then up, as the fused gate|up linear
// writes it) → out [rows, intermediate] = act(gate) · up, act computed in float32.
void gated_activation(bf16* out, const bf16* gate_up, std::int64_t rows,
                      std::int64_t intermediate, Activation act, cudaStream_t stream);

// out[r] = the index of the largest logits[r, :] (the lowest index among equal ones, like
// torch.argmax). logits float32 [rows, vocab].
void argmax_rows(int* out, const float* logits, std::int64_t rows, std::int64_t vocab,
                 cudaStream_t stream);

// Copies rows index[i] of src [*, width] into dst [count, width] (e.g. each prompt's last
// hidden state before the LM head).
void gather_rows(bf16* dst, const bf16* src, const int* index, std::int64_t count,
                 std::int64_t width, cudaStream_t stream);

}  // namespace slidesparse::runner
