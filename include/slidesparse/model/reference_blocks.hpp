// The blocks of a decoder layer as plain float32 CPU loops (llm.c style), one function
// per block: the reference each GPU kernel of the model runner is tested against.
// Every matrix is row-major; rows are tokens. Sums run in increasing index order in float.
#pragma once

#include <cstdint>
#include <vector>

#include "slidesparse/model/config.hpp"

namespace slidesparse::reference {

// out[m, hidden] = table[tokens[i], :] for table [vocab, hidden]. Token ids are
// checked by the caller.
void embedding(float* out, const float* table, const int* tokens, std::int64_t m,
               std::int64_t hidden);

// Per row: out = weight · x / sqrt(mean(x²) + eps), as Hugging Face's RMSNorm computes
// it in float32. out may alias x.
void rms_norm(float* out, const float* x, const float* weight, std::int64_t rows,
              std::int64_t width, float eps);

// y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias[n] when bias is not null).
void linear(float* y, const float* x, const float* w, const float* bias, std::int64_t m,
            std::int64_t n, std::int64_t k);

// Rotary position embedding of one head vector in place, in the "rotate_half"
// convention of transformers: element i pairs with element i + head_dim/2 and the pair
// turns by the angle position · inv_freq[i] (inv_freq has head_dim/2 entries):
//   x'[i]          = x[i] cos - x[i + h] sin
//   x'[i + h]      = x[i + h] cos + x[i] sin        (h = head_dim / 2)
void rope(float* head, std::int64_t head_dim, std::int64_t position,
          const std::vector<float>& inv_freq);

// Causal grouped-query attention of one query token against the first `visible`
// cached positions (itself included). q [heads · head_dim]; keys and values
// [visible, kv_heads · head_dim]; query head j reads key/value head j / (heads / kv_heads).
// out [heads · head_dim] = softmax(q · kᵀ / sqrt(head_dim)) · v per head.
void attention(float* out, const float* q, const float* keys, const float* values,
               std::int64_t visible, std::int64_t heads, std::int64_t kv_heads,
               std::int64_t head_dim);

// gate[i] = act(gate[i]) · up[i]: the gated MLP's product before down_proj.
void gated_activation(float* gate, const float* up, std::int64_t count, Activation act);

// x[i] += y[i]: the residual connection.
void residual_add(float* x, const float* y, std::int64_t count);

// The index of the largest logit (the lowest index among equal ones, like torch.argmax).
int argmax(const float* logits, std::int64_t count);

}  // namespace slidesparse::reference
