#include "slidesparse/model/reference_blocks.hpp"

#include <algorithm>
#include <cmath>

namespace slidesparse::reference {

void embedding(float* out, const float* table, const int* tokens, std::int64_t m,
               std::int64_t hidden) {
  for (std::int64_t row = 0; row < m; ++row) {
    const float* source = table + static_cast<std::int64_t>(tokens[row]) * hidden;
    std::copy(source, source + hidden, out + row * hidden);
  }
}

void rms_norm(float* out, const float* x, const float* weight, std::int64_t rows,
              std::int64_t width, float eps) {
  for (std::int64_t row = 0; row < rows; ++row) {
    const float* in = x + row * width;
    float sum_squares = 0.0f;
    for (std::int64_t i = 0; i < width; ++i) sum_squares += in[i] * in[i];
    const float inv_rms = 1.0f / std::sqrt(sum_squares / static_cast<float>(width) + eps);
    float* result = out + row * width;
    for (std::int64_t i = 0; i < width; ++i) result[i] = weight[i] * (in[i] * inv_rms);
  }
}

void linear(float* y, const float* x, const float* w, const float* bias, std::int64_t m,
            std::int64_t n, std::int64_t k) {
  for (std::int64_t row = 0; row < m; ++row) {
    const float* x_row = x + row * k;
    for (std::int64_t col = 0; col < n; ++col) {
      const float* w_row = w + col * k;
      float acc = 0.0f;
      for (std::int64_t i = 0; i < k; ++i) acc += x_row[i] * w_row[i];
      y[row * n + col] = bias ? acc + bias[col] : acc;
    }
  }
}

void rope(float* head, std::int64_t head_dim, std::int64_t position,
          const std::vector<float>& inv_freq) {
  const std::int64_t half = head_dim / 2;
  const float pos = static_cast<float>(position);
  for (std::int64_t i = 0; i < half; ++i) {
    // transformers forms the angle in float32: inv_freq (float) times position (float).
    const float angle = pos * inv_freq[static_cast<std::size_t>(i)];
    const float c = std::cos(angle);
    const float s = std::sin(angle);
    const float first = head[i];
    const float second = head[i + half];
    head[i] = first * c - second * s;
    head[i + half] = second * c + first * s;
  }
}

void attention(float* out, const float* q, const float* keys, const float* values,
               std::int64_t visible, std::int64_t heads, std::int64_t kv_heads,
               std::int64_t head_dim) {
  const std::int64_t kv_width = kv_heads * head_dim;
  const std::int64_t group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> scores(static_cast<std::size_t>(visible));
  for (std::int64_t h = 0; h < heads; ++h) {
    const float* q_head = q + h * head_dim;
    const std::int64_t kv_offset = (h / group) * head_dim;

    float max_score = -INFINITY;
    for (std::int64_t t = 0; t < visible; ++t) {
      const float* k_head = keys + t * kv_width + kv_offset;
      float dot = 0.0f;
      for (std::int64_t i = 0; i < head_dim; ++i) dot += q_head[i] * k_head[i];
      scores[static_cast<std::size_t>(t)] = dot * scale;
      max_score = std::max(max_score, dot * scale);
    }
    float sum = 0.0f;
    for (float& s : scores) {
      s = std::exp(s - max_score);
      sum += s;
    }

    float* out_head = out + h * head_dim;
    std::fill(out_head, out_head + head_dim, 0.0f);
    for (std::int64_t t = 0; t < visible; ++t) {
      const float p = scores[static_cast<std::size_t>(t)] / sum;
      const float* v_head = values + t * kv_width + kv_offset;
      for (std::int64_t i = 0; i < head_dim; ++i) out_head[i] += p * v_head[i];
    }
  }
}

void gated_activation(float* gate, const float* up, std::int64_t count, Activation act) {
  for (std::int64_t i = 0; i < count; ++i) {
    const float g = gate[i];
    const float activated =
        act == Activation::Silu ? g / (1.0f + std::exp(-g)) : std::max(g, 0.0f) * std::max(g, 0.0f);
    gate[i] = activated * up[i];
  }
}

void residual_add(float* x, const float* y, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) x[i] += y[i];
}

int argmax(const float* logits, std::int64_t count) {
  return static_cast<int>(std::max_element(logits, logits + count) - logits);
}

}  // namespace slidesparse::reference
