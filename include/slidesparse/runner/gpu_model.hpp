// The GPU model runner: a whole decoder-only model (Llama, Qwen2, BitNet) on one GPU, its
// linear layers SlideSparse (or the dense cuBLASLt baseline on the same quantized weights),
// everything else BF16 kernels (runner/model_kernels.hpp). It follows the CPU reference
// forward (model/reference_forward.hpp) operation by operation: prefill puts every prompt
// token of a batch in one forward, decode one token per sequence, replayed from a CUDA graph
// captured once per batch size.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "slidesparse/dtype.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/model/config.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/tuning_db.hpp"

namespace slidesparse::runner {

enum class GpuBackend {
  Dense,   // cuBLASLt on the quantized (pruned, if a pattern is given) weights
  Sparse,  // SlideSparse: cuSPARSELt on the slid weights
};
const char* gpu_backend_name(GpuBackend backend);  // "dense", "sparse"
// "dense" or "sparse"; anything else throws InvalidArgument.
GpuBackend parse_gpu_backend(const std::string& name);

// The prefill attention (decode always runs the runner's own kernel, captured in its graphs).
enum class PrefillAttention {
  Cudnn,  // cuDNN's fused SDPA (runner/attention_cudnn.hpp), when this build has cuDNN
  Own,    // the runner's FlashAttention-style kernel (attention_prefill)
};
const char* prefill_attention_name(PrefillAttention attention);  // "cudnn", "own"
// "cudnn" or "own"; anything else throws InvalidArgument.
PrefillAttention parse_prefill_attention(const std::string& name);
// Cudnn when this build has cuDNN, else Own.
PrefillAttention default_prefill_attention();

struct GpuModelOptions {
  Precision precision = Precision::INT8;
  GpuBackend backend = GpuBackend::Sparse;
  // The sparsity pattern: required by the sparse backend (2_4 native, any other slid); for the
  // dense backend Pattern::infinite() means the unpruned weights, another pattern prunes first.
  Pattern pattern = Pattern::from_length(8);
  std::int64_t max_tokens = 4096;    // rows of one forward (prefill tokens of a batch)
  std::int64_t max_sequences = 16;   // sequences of one batch (KV cache slots)
  std::int64_t max_context = 2048;   // tokens per sequence, prompt and generated
  const TuningDb* tuning = nullptr;  // algorithm choices; must outlive the model
  int load_threads = 0;              // threads packing weights at load; 0 = all cores
  bool quiet = false;                // no load messages on stderr
  // Compute the norms and the gated activation inside the quantize(+lift) of the linear layer
  // they feed (runner/fused_quantize.hpp): the same bits, without the BF16 round trip through
  // memory. false runs the unfused kernels (for tests and comparisons).
  bool fuse_quantize = true;
  // Without a tuning database, search each linear shape's algorithms once per new M (on the
  // first layer; the others of that shape reuse the winner) instead of taking the libraries'
  // defaults, which for cuSPARSELt can be far from its best. Costs seconds per new M.
  bool search_untuned = false;
  // The sparse backend also keeps each linear's dense (quantized, pruned) weights and runs
  // dense for the M buckets where dense measured faster: from the tuning database, or, with
  // search_untuned and no database, from searching both paths once per shape and new M. Never
  // slower than dense at the price of the dense weights' memory (dense_fallback_bytes()).
  bool dense_fallback = false;
  // The sparse backend's 2:4 GEMM: cuSPARSELt, or our CUTLASS kernel with the dequantization in
  // its epilogue (INT8/FP8 on a cc 9.0 GPU; LinearOptions::sparse_backend).
  GemmBackendKind sparse_gemm = GemmBackendKind::CusparseLt;
  // Instead of sparse_gemm (then ignored): every linear builds each 2:4 GEMM that can run here
  // (cuSPARSELt, and CUTLASS on a cc 9.0 GPU for INT8/FP8; LinearOptions::sparse_backend_auto)
  // and runs the fastest per M bucket: from the tuning database, or, with search_untuned and no
  // database, from searching each once per shape and new M; cuSPARSELt otherwise. The same
  // command gets faster when a faster GEMM lands, at the price of a second compressed copy of
  // the sparse weights (sparse_auto_bytes()). Where CUTLASS cannot run, cuSPARSELt alone, said
  // once on stderr (sparse_gemm_note()).
  bool sparse_gemm_auto = false;
  // The dense backend's GEMM (LinearOptions::dense_backend): unset picks between the two
  // cuBLASLt ones from the tuning database; CublasLtFused (FP8, cc 9.0) folds the
  // dequantization into cuBLASLt's epilogue; CutlassDense is our CUTLASS dense GEMM.
  std::optional<GemmBackendKind> dense_gemm;
  // Cudnn needs a build with cuDNN (else InvalidArgument at construction). A shape or GPU that
  // cuDNN refuses falls back to Own, said once per shape on stderr (prefill_attention() tells).
  PrefillAttention attention = default_prefill_attention();
};

// Time spent per forward (prefill) or step (decode), when timing is on.
struct GpuTimings {
  // The linear layers: quantize(+lift), GEMM, dequantize; LM head. With fuse_quantize the
  // norm or activation fused into a layer's quantize counts here, not in other_ms.
  double gemm_ms = 0;
  double attention_ms = 0;  // RoPE with the KV-cache store and attention
  double other_ms = 0;      // embedding, norms, activation, residuals, sampling, copies
  double total_ms() const { return gemm_ms + attention_ms + other_ms; }
};

class GpuModel {
 public:
  // `model` is a preset name (random weights, said on stderr), a Hugging Face checkpoint folder
  // (quantized, and pruned and slid for a pattern, at load), or a checkpoint made by `slidesparse
  // convert` (its precision and pattern must equal the options', else InvalidArgument).
  // Loads layer by layer. Throws DeviceError naming the capacity asked when the device memory
  // does not hold the weights, the KV cache and the activations.
  GpuModel(const std::string& model, const GpuModelOptions& options);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  // Starts a new batch (forgetting every earlier sequence) and returns each prompt's greedy next
  // token. Throws InvalidArgument naming the prompt index and the value for no prompts, more
  // prompts than max_sequences, an empty prompt, one longer than max_context (or
  // max_position_embeddings), a token id outside [0, vocab), or more tokens than max_tokens.
  std::vector<int> prefill(const std::vector<std::vector<int>>& prompts);
  // Appends next_tokens[s] to sequence s and returns each sequence's greedy next token.
  // Throws InvalidArgument before any prefill, for a count other than the batch size, a bad id,
  // or a sequence already max_context long.
  std::vector<int> decode_step(const std::vector<int>& next_tokens);
  // prefill, then greedy decoding: the max_new tokens generated after each prompt.
  std::vector<std::vector<int>> generate_greedy(const std::vector<std::vector<int>>& prompts,
                                                int max_new);

  // The float32 logits [batch, vocab] of the last prefill or decode_step (a blocking copy).
  std::vector<float> last_logits() const;

  // Timing mode: CUDA events between the parts of every forward; decode steps then run
  // without their graph (events inside a graph would time nothing). Off by default.
  void set_timing(bool on);
  // The times of the last forward (zero unless timing was on).
  GpuTimings last_timings() const;
  const ModelConfig& config() const;
  const GpuModelOptions& options() const;
  // The attention the last prefill ran (Own where cuDNN refused its shape); options' before one.
  PrefillAttention prefill_attention() const;
  std::int64_t batch_size() const;
  // Tokens cached for sequence s of the batch.
  std::int64_t sequence_length(std::int64_t s) const;
  // The model's name: the preset's, or the checkpoint folder's last component.
  const std::string& name() const;
  // Device bytes held: weights, KV cache, activations.
  std::uint64_t device_bytes() const;
  // Of those, the dense copies of the weights kept by dense_fallback (0 without it).
  std::uint64_t dense_fallback_bytes() const;
  // Of those, the linear layers' shared buffers between their stages (quantized inputs, scales,
  // accumulators): the largest layer's, once.
  std::uint64_t linear_scratch_bytes() const;
  // Of those, the sparse weights' copies beyond the first kept by sparse_gemm_auto (0 without
  // it, or where only cuSPARSELt could be built).
  std::uint64_t sparse_auto_bytes() const;
  // With sparse_gemm_auto, why the linears run cuSPARSELt alone ("" where CUTLASS was built).
  const std::string& sparse_gemm_note() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace slidesparse::runner
