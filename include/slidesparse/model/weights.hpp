// The tensors a model's checkpoint must hold, their check against a Checkpoint,
// and a float32 copy of them in host memory for the CPU reference forward.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/checkpoint.hpp"
#include "slidesparse/model/config.hpp"

namespace slidesparse {

struct ExpectedTensor {
  std::string name;
  std::vector<std::int64_t> shape;
};

// Every tensor of the architecture, in the order Hugging Face writes them:
//   model.embed_tokens.weight [vocab, hidden]
//   per layer i, prefix model.layers.<i>.:
//     input_layernorm.weight [hidden]
//     self_attn.{q,k,v,o}_proj.weight [q_width, hidden] [kv_width, hidden] x2 [hidden, q_width]
//     self_attn.{q,k,v}_proj.bias (qkv_bias), self_attn.o_proj.bias (o_bias)
//     self_attn.attn_sub_norm.weight [hidden]         (BitNet)
//     post_attention_layernorm.weight [hidden]
//     mlp.{gate,up}_proj.weight [intermediate, hidden], mlp.down_proj.weight [hidden, intermediate]
//     mlp.ffn_sub_norm.weight [intermediate]          (BitNet)
//   model.norm.weight [hidden]
//   lm_head.weight [vocab, hidden]                    (unless tie_embeddings)
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

// Name of layer `layer`'s bias of `kind`: "model.layers.<i>.self_attn.q_proj.bias".
std::string linear_bias_name(std::int64_t layer, LinearKind kind);

// Throws FormatError naming the checkpoint directory and the first expected tensor
// (in expected_tensors order) that is absent or has another shape (both shapes).
// Tensors the model does not use are allowed.
void check_weights(const Checkpoint& checkpoint, const ModelConfig& config);

// One tensor as float32, element by element from the mapped file. BF16, F16 and F32
// only; other dtypes throw FormatError naming the checkpoint and the tensor.
std::vector<float> read_float_tensor(const Checkpoint& checkpoint, const std::string& name);

// Y[M,N] = X[M,K] · W[N,K]ᵀ (+ bias[N]).
struct HostLinear {
  std::int64_t n = 0, k = 0;
  std::vector<float> weight;  // [n, k] row-major
  std::vector<float> bias;    // [n], or empty
};

struct HostLayerWeights {
  std::vector<float> input_norm;           // [hidden]
  std::vector<float> post_attention_norm;  // [hidden]
  std::vector<float> attn_sub_norm;        // [hidden], BitNet only (else empty)
  std::vector<float> ffn_sub_norm;         // [intermediate], BitNet only (else empty)
  std::array<HostLinear, 7> linears;       // indexed by LinearKind

  const HostLinear& linear(LinearKind kind) const {
    return linears[static_cast<std::size_t>(kind)];
  }
  HostLinear& linear(LinearKind kind) { return linears[static_cast<std::size_t>(kind)]; }
};

// All weights of a model as float32: for tiny models and CPU references only
// (a 1B model takes 5 GB here).
class HostModelWeights {
 public:
  // check_weights, then each tensor converted to float from the mapped checkpoint.
  static HostModelWeights load(const Checkpoint& checkpoint, const ModelConfig& config);

  const std::vector<float>& embed_tokens() const { return embed_tokens_; }  // [vocab, hidden]
  const std::vector<float>& final_norm() const { return final_norm_; }      // [hidden]
  // [vocab, hidden]; embed_tokens() when the embeddings are tied.
  const std::vector<float>& lm_head() const { return tied_ ? embed_tokens_ : lm_head_; }
  std::int64_t layers() const { return static_cast<std::int64_t>(layers_.size()); }
  // Throws InvalidArgument for an index outside [0, layers()).
  const HostLayerWeights& layer(std::int64_t index) const;

 private:
  HostModelWeights() = default;

  std::vector<float> embed_tokens_;
  std::vector<float> final_norm_;
  std::vector<float> lm_head_;  // empty when tied
  bool tied_ = false;
  std::vector<HostLayerWeights> layers_;
};

}  // namespace slidesparse
