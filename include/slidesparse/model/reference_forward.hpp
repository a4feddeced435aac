// The CPU reference forward of a whole decoder-only model (Llama, Qwen2, BitNet):
// float32, one token row per position, every block a plain loop (reference_blocks.hpp).
// It is the known-good result the GPU model runner is compared against, and it runs a
// batch the way the runner does: prefill puts every prompt token of the batch in one
// forward (M = total tokens), decode one token per sequence (M = batch size), each
// sequence attending only to its own KV cache.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/model/config.hpp"
#include "slidesparse/model/reference_linears.hpp"
#include "slidesparse/model/weights.hpp"

namespace slidesparse {

class ReferenceModel {
 public:
  // An empty `linears` computes the seven linear layers in float32 from `weights`.
  ReferenceModel(ModelConfig config, HostModelWeights weights, LinearFn linears = {});

  // Starts a new batch: forgets every cached sequence, runs all prompts (each its own
  // causal sequence from position 0) and returns the logits at each prompt's last
  // position, [prompts.size(), vocab]. Throws InvalidArgument naming the prompt and the
  // value for no prompts, an empty prompt, one longer than max_position_embeddings or a
  // token id outside [0, vocab).
  std::vector<float> prefill(const std::vector<std::vector<int>>& prompts);

  // Appends next_tokens[s] to sequence s of the batch, attending to its KV cache, and
  // returns the new logits [batch, vocab]. Throws InvalidArgument before any prefill, for
  // a count other than the batch size, a bad token id, or a sequence that would pass
  // max_position_embeddings.
  std::vector<float> decode_step(const std::vector<int>& next_tokens);

  // prefill, then greedy decoding (argmax; the lowest id on ties): the max_new tokens
  // generated after each prompt. prefill_logits, if given, receives prefill()'s logits.
  std::vector<std::vector<int>> generate_greedy(const std::vector<std::vector<int>>& prompts,
                                                int max_new,
                                                std::vector<float>* prefill_logits = nullptr);

  // The logits at every position of one sequence, [tokens.size(), vocab], from a fresh
  // KV cache of its own (the batch's cache is untouched). Same checks as prefill.
  std::vector<float> sequence_logits(const std::vector<int>& tokens) const;

  const ModelConfig& config() const { return config_; }
  std::int64_t batch_size() const { return static_cast<std::int64_t>(cache_.lengths.size()); }
  // Tokens cached for sequence `s` of the batch.
  std::int64_t sequence_length(std::int64_t s) const;

 private:
  // Keys and values after RoPE, per layer and sequence: [length, kv_width] each.
  struct KvCache {
    std::vector<std::int64_t> lengths;                  // [sequence]
    std::vector<std::vector<std::vector<float>>> keys;  // [layer][sequence]
    std::vector<std::vector<std::vector<float>>> values;
  };
  // One token of the forward: row r of every activation matrix.
  struct TokenRow {
    std::int64_t sequence;
    std::int64_t position;
    int token;
  };

  KvCache empty_cache(std::int64_t sequences) const;
  void check_token(int token, const std::string& where) const;
  void check_prompts(const std::vector<std::vector<int>>& prompts) const;
  // Rows of `chunks[s]` appended to sequence s, in sequence order.
  static std::vector<TokenRow> rows_for(const KvCache& cache,
                                        const std::vector<std::vector<int>>& chunks);
  // Runs every layer over `rows` (appending their keys and values to `cache`) and
  // returns the final-normed hidden states [rows, hidden].
  std::vector<float> forward(KvCache& cache, const std::vector<TokenRow>& rows) const;
  void attention_block(std::int64_t layer, KvCache& cache, const std::vector<TokenRow>& rows,
                       std::vector<float>& x) const;
  void mlp_block(std::int64_t layer, std::int64_t m, std::vector<float>& x) const;
  std::vector<float> run_linear(std::int64_t layer, LinearKind kind, const float* x,
                                std::int64_t m) const;
  // lm_head of the listed rows of hidden [rows, hidden]: [row_indices.size(), vocab].
  std::vector<float> logits(const std::vector<float>& hidden,
                            const std::vector<std::int64_t>& row_indices) const;

  ModelConfig config_;
  HostModelWeights weights_;
  LinearFn linears_;
  std::vector<float> inv_freq_;
  KvCache cache_;
};

}  // namespace slidesparse
