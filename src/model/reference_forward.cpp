#include "slidesparse/model/reference_forward.hpp"

#include "slidesparse/error.hpp"
#include "slidesparse/model/reference_blocks.hpp"

namespace slidesparse {

namespace {
std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }
}  // namespace

ReferenceModel::ReferenceModel(ModelConfig config, HostModelWeights weights, LinearFn linears)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      linears_(std::move(linears)),
      inv_freq_(rope_inv_freq(config_)),
      cache_(empty_cache(0)) {
  SLIDESPARSE_REQUIRE(weights_.layers() == config_.layers, InvalidArgument,
                      "reference model: weights have " + std::to_string(weights_.layers()) +
                          " layers, the config " + std::to_string(config_.layers));
}

std::int64_t ReferenceModel::sequence_length(std::int64_t s) const {
  SLIDESPARSE_REQUIRE(
      s >= 0 && s < batch_size(), InvalidArgument,
      "sequence " + std::to_string(s) + " out of range [0, " + std::to_string(batch_size()) + ")");
  return cache_.lengths[at(s)];
}

// ---- input checks -------------------------------------------------------------------

void ReferenceModel::check_token(int token, const std::string& where) const {
  SLIDESPARSE_REQUIRE(token >= 0 && token < config_.vocab, InvalidArgument,
                      where + ": token id " + std::to_string(token) + " out of range [0, " +
                          std::to_string(config_.vocab) + ")");
}

void ReferenceModel::check_prompts(const std::vector<std::vector<int>>& prompts) const {
  SLIDESPARSE_REQUIRE(!prompts.empty(), InvalidArgument, "prefill: no prompts");
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    const std::string name = "prompt " + std::to_string(p);
    const std::int64_t length = static_cast<std::int64_t>(prompts[p].size());
    SLIDESPARSE_REQUIRE(length > 0, InvalidArgument, name + " is empty");
    SLIDESPARSE_REQUIRE(length <= config_.max_position, InvalidArgument,
                        name + " has " + std::to_string(length) +
                            " tokens, more than max_position_embeddings " +
                            std::to_string(config_.max_position));
    for (std::size_t i = 0; i < prompts[p].size(); ++i)
      check_token(prompts[p][i], name + ", position " + std::to_string(i));
  }
}

// ---- batch API ----------------------------------------------------------------------

std::vector<float> ReferenceModel::prefill(const std::vector<std::vector<int>>& prompts) {
  check_prompts(prompts);
  cache_ = empty_cache(static_cast<std::int64_t>(prompts.size()));
  const std::vector<TokenRow> rows = rows_for(cache_, prompts);
  const std::vector<float> hidden = forward(cache_, rows);
  std::vector<std::int64_t> last_rows;
  std::int64_t end = 0;
  for (const auto& prompt : prompts) {
    end += static_cast<std::int64_t>(prompt.size());
    last_rows.push_back(end - 1);
  }
  return logits(hidden, last_rows);
}

std::vector<float> ReferenceModel::decode_step(const std::vector<int>& next_tokens) {
  SLIDESPARSE_REQUIRE(batch_size() > 0, InvalidArgument, "decode_step before prefill");
  SLIDESPARSE_REQUIRE(static_cast<std::int64_t>(next_tokens.size()) == batch_size(),
                      InvalidArgument,
                      "decode_step: " + std::to_string(next_tokens.size()) +
                          " tokens for a batch of " + std::to_string(batch_size()));
  std::vector<std::vector<int>> chunks;
  for (std::size_t s = 0; s < next_tokens.size(); ++s) {
    const std::string name = "sequence " + std::to_string(s);
    check_token(next_tokens[s], name);
    SLIDESPARSE_REQUIRE(cache_.lengths[s] < config_.max_position, InvalidArgument,
                        name + " already holds max_position_embeddings " +
                            std::to_string(config_.max_position) + " tokens");
    chunks.push_back({next_tokens[s]});
  }
  const std::vector<TokenRow> rows = rows_for(cache_, chunks);
  const std::vector<float> hidden = forward(cache_, rows);
  std::vector<std::int64_t> all_rows;
  for (std::int64_t r = 0; r < batch_size(); ++r) all_rows.push_back(r);
  return logits(hidden, all_rows);
}

std::vector<std::vector<int>> ReferenceModel::generate_greedy(
    const std::vector<std::vector<int>>& prompts, int max_new, std::vector<float>* prefill_logits) {
  SLIDESPARSE_REQUIRE(max_new >= 0, InvalidArgument,
                      "generate_greedy: max_new " + std::to_string(max_new) + " is negative");
  std::vector<std::vector<int>> generated(prompts.size());
  std::vector<float> step_logits = prefill(prompts);
  if (prefill_logits) *prefill_logits = step_logits;
  for (int step = 0; step < max_new; ++step) {
    std::vector<int> next;
    for (std::size_t s = 0; s < prompts.size(); ++s) {
      next.push_back(reference::argmax(step_logits.data() + at(config_.vocab) * s, config_.vocab));
      generated[s].push_back(next.back());
    }
    // The last token is returned, not fed back.
    if (step + 1 < max_new) step_logits = decode_step(next);
  }
  return generated;
}

std::vector<float> ReferenceModel::sequence_logits(const std::vector<int>& tokens) const {
  check_prompts({tokens});
  KvCache cache = empty_cache(1);
  const std::vector<TokenRow> rows = rows_for(cache, {tokens});
  const std::vector<float> hidden = forward(cache, rows);
  std::vector<std::int64_t> all_rows;
  for (std::size_t r = 0; r < tokens.size(); ++r) all_rows.push_back(static_cast<std::int64_t>(r));
  return logits(hidden, all_rows);
}

// ---- the forward --------------------------------------------------------------------

ReferenceModel::KvCache ReferenceModel::empty_cache(std::int64_t sequences) const {
  KvCache cache;
  cache.lengths.assign(at(sequences), 0);
  cache.keys.assign(at(config_.layers), std::vector<std::vector<float>>(at(sequences)));
  cache.values = cache.keys;
  return cache;
}

std::vector<ReferenceModel::TokenRow> ReferenceModel::rows_for(
    const KvCache& cache, const std::vector<std::vector<int>>& chunks) {
  std::vector<TokenRow> rows;
  for (std::size_t s = 0; s < chunks.size(); ++s)
    for (std::size_t i = 0; i < chunks[s].size(); ++i)
      rows.push_back({static_cast<std::int64_t>(s), cache.lengths[s] + static_cast<std::int64_t>(i),
                      chunks[s][i]});
  return rows;
}

std::vector<float> ReferenceModel::forward(KvCache& cache,
                                           const std::vector<TokenRow>& rows) const {
  const std::int64_t m = static_cast<std::int64_t>(rows.size());
  const std::int64_t hidden = config_.hidden;
  std::vector<int> tokens;
  for (const TokenRow& row : rows) tokens.push_back(row.token);

  std::vector<float> x(at(m * hidden));  // the residual stream
  reference::embedding(x.data(), weights_.embed_tokens().data(), tokens.data(), m, hidden);
  for (std::int64_t layer = 0; layer < config_.layers; ++layer) {
    attention_block(layer, cache, rows, x);
    mlp_block(layer, m, x);
  }
  for (const TokenRow& row : rows) ++cache.lengths[at(row.sequence)];

  reference::rms_norm(x.data(), x.data(), weights_.final_norm().data(), m, hidden,
                      static_cast<float>(config_.rms_norm_eps));
  return x;
}

void ReferenceModel::attention_block(std::int64_t layer, KvCache& cache,
                                     const std::vector<TokenRow>& rows,
                                     std::vector<float>& x) const {
  const HostLayerWeights& w = weights_.layer(layer);
  const ModelConfig& c = config_;
  const std::int64_t m = static_cast<std::int64_t>(rows.size());
  const float eps = static_cast<float>(c.rms_norm_eps);

  std::vector<float> h(x.size());
  reference::rms_norm(h.data(), x.data(), w.input_norm.data(), m, c.hidden, eps);
  std::vector<float> q = run_linear(layer, LinearKind::Q, h.data(), m);
  std::vector<float> k = run_linear(layer, LinearKind::K, h.data(), m);
  const std::vector<float> v = run_linear(layer, LinearKind::V, h.data(), m);

  // RoPE on queries and keys, then the keys and values join their sequence's cache.
  // Rows of a sequence come in position order, so row r's own key is in the cache
  // before its attention, and so are those of the earlier rows of its chunk.
  for (std::int64_t r = 0; r < m; ++r) {
    const TokenRow& row = rows[at(r)];
    for (std::int64_t head = 0; head < c.heads; ++head)
      reference::rope(q.data() + r * c.q_width() + head * c.head_dim, c.head_dim, row.position,
                      inv_freq_);
    for (std::int64_t head = 0; head < c.kv_heads; ++head)
      reference::rope(k.data() + r * c.kv_width() + head * c.head_dim, c.head_dim, row.position,
                      inv_freq_);
    auto& keys = cache.keys[at(layer)][at(row.sequence)];
    auto& values = cache.values[at(layer)][at(row.sequence)];
    keys.insert(keys.end(), k.begin() + r * c.kv_width(), k.begin() + (r + 1) * c.kv_width());
    values.insert(values.end(), v.begin() + r * c.kv_width(), v.begin() + (r + 1) * c.kv_width());
  }

  std::vector<float> attended(at(m * c.q_width()));
  for (std::int64_t r = 0; r < m; ++r) {
    const TokenRow& row = rows[at(r)];
    reference::attention(attended.data() + r * c.q_width(), q.data() + r * c.q_width(),
                         cache.keys[at(layer)][at(row.sequence)].data(),
                         cache.values[at(layer)][at(row.sequence)].data(), row.position + 1,
                         c.heads, c.kv_heads, c.head_dim);
  }
  if (c.architecture == Architecture::BitNet)  // BitNet normalizes the heads before o_proj
    reference::rms_norm(attended.data(), attended.data(), w.attn_sub_norm.data(), m, c.q_width(),
                        eps);
  const std::vector<float> o = run_linear(layer, LinearKind::O, attended.data(), m);
  reference::residual_add(x.data(), o.data(), m * c.hidden);
}

void ReferenceModel::mlp_block(std::int64_t layer, std::int64_t m, std::vector<float>& x) const {
  const HostLayerWeights& w = weights_.layer(layer);
  const ModelConfig& c = config_;
  const float eps = static_cast<float>(c.rms_norm_eps);

  std::vector<float> h(x.size());
  reference::rms_norm(h.data(), x.data(), w.post_attention_norm.data(), m, c.hidden, eps);
  std::vector<float> gate = run_linear(layer, LinearKind::Gate, h.data(), m);
  const std::vector<float> up = run_linear(layer, LinearKind::Up, h.data(), m);
  reference::gated_activation(gate.data(), up.data(), m * c.intermediate, c.activation);
  if (c.architecture == Architecture::BitNet)  // and the MLP product before down_proj
    reference::rms_norm(gate.data(), gate.data(), w.ffn_sub_norm.data(), m, c.intermediate, eps);
  const std::vector<float> down = run_linear(layer, LinearKind::Down, gate.data(), m);
  reference::residual_add(x.data(), down.data(), m * c.hidden);
}

std::vector<float> ReferenceModel::run_linear(std::int64_t layer, LinearKind kind, const float* x,
                                              std::int64_t m) const {
  const HostLinear& linear = weights_.layer(layer).linear(kind);
  if (linears_) {
    std::vector<float> y = linears_(layer, kind, x, m);
    SLIDESPARSE_REQUIRE(static_cast<std::int64_t>(y.size()) == m * linear.n, InvalidArgument,
                        linear_weight_name(layer, kind) + ": the linear hook returned " +
                            std::to_string(y.size()) + " values, expected " +
                            std::to_string(m * linear.n));
    return y;
  }
  std::vector<float> y(at(m * linear.n));
  reference::linear(y.data(), x, linear.weight.data(),
                    linear.bias.empty() ? nullptr : linear.bias.data(), m, linear.n, linear.k);
  return y;
}

std::vector<float> ReferenceModel::logits(const std::vector<float>& hidden,
                                          const std::vector<std::int64_t>& row_indices) const {
  const std::int64_t count = static_cast<std::int64_t>(row_indices.size());
  std::vector<float> selected;
  selected.reserve(at(count * config_.hidden));
  for (const std::int64_t r : row_indices)
    selected.insert(selected.end(), hidden.begin() + r * config_.hidden,
                    hidden.begin() + (r + 1) * config_.hidden);
  std::vector<float> out(at(count * config_.vocab));
  reference::linear(out.data(), selected.data(), weights_.lm_head().data(), nullptr, count,
                    config_.vocab, config_.hidden);
  return out;
}

}  // namespace slidesparse
