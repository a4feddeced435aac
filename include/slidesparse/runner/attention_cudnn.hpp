// Causal prefill attention through cuDNN's fused scaled-dot-product attention (the SDPA node of
// cuDNN's C++ graph frontend): the same result as runner::attention_prefill (model_kernels.hpp)
// from a library kept fast on each GPU generation. Q, K and V are read in place from the fused
// q|k|v rows and the packed sequences are described to cuDNN by ragged offsets, so nothing is
// copied. Graphs are built once per shape (prepare) and only executed on the hot path (run).
// Without cuDNN in the build (SLIDESPARSE_HAVE_CUDNN unset) the class cannot be constructed and
// the runner keeps its own kernel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/runner/model_kernels.hpp"

namespace slidesparse::runner {

// Whether this build has cuDNN's attention.
bool cudnn_attention_built();
// One line for `slidesparse info`: the cuDNN and frontend versions, or why it is not built.
std::string cudnn_attention_description();

// The shape a graph is built for. max_seqlen is a bucket (sdpa_shape rounds it up to a power of
// two) so batches of similar lengths share a graph; the true lengths come from PackedSequences.
struct SdpaShape {
  std::int64_t sequences = 0, max_seqlen = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool operator<(const SdpaShape& other) const;
  std::string describe() const;  // "4 sequences up to 512 tokens, 28/4 heads of 128"
};
SdpaShape sdpa_shape(std::int64_t sequences, std::int64_t max_seqlen, std::int64_t heads,
                     std::int64_t kv_heads, std::int64_t head_dim);

// The device-side description of a packed batch (rows of sequence s are
// [cu_seqlens[s], cu_seqlens[s+1]), every sequence from position 0), as cuDNN reads it:
//   lengths      [sequences]      int32: cu_seqlens[s+1] - cu_seqlens[s] (query and key lengths)
//   qkv_offsets  [sequences + 1]  int64: cu_seqlens · (heads + 2·kv_heads)·head_dim, the first
//                                 element of each sequence in qkv (Q, K and V alike: they share
//                                 the row stride, their pointers differ)
//   out_offsets  [sequences + 1]  int64: cu_seqlens · heads·head_dim, the same in out
// The caller fills them from the host-side cu_seqlens (packed_sequence_offsets below) when it
// uploads cu_seqlens, into buffers it owns.
struct PackedSequences {
  const int* lengths = nullptr;
  const std::int64_t* qkv_offsets = nullptr;
  const std::int64_t* out_offsets = nullptr;
};
// cu_seqlens[i] · row_elements for every i (64-bit: products of rows and widths pass 2^31).
std::vector<std::int64_t> packed_sequence_offsets(const std::vector<int>& cu_seqlens,
                                                  std::int64_t row_elements);

class CudnnPrefillAttention {
 public:
  // Rows past the last token that qkv and out must hold: cuDNN's tiles may read (and masked, still
  // multiply) rows past the end of the last sequence, so run() zeroes these rows of qkv first.
  static constexpr std::int64_t kTailRows = 256;

  // Creates the cuDNN handle. DeviceError when this build has no cuDNN or cuDNN cannot start.
  CudnnPrefillAttention();
  ~CudnnPrefillAttention();
  CudnnPrefillAttention(const CudnnPrefillAttention&) = delete;
  CudnnPrefillAttention& operator=(const CudnnPrefillAttention&) = delete;

  // Builds the graph for `shape` once (validate, execution plans, check_support, build_plans) and
  // grows the workspace to it. Returns "" when it can run, else cuDNN's reason (remembered: a
  // refused shape is not built again). Never throws for a shape or GPU cuDNN does not support.
  std::string prepare(const SdpaShape& shape);
  bool ready(const SdpaShape& shape) const;

  // out [rows (+ kTailRows), heads·head_dim] = attention over qkv [rows (+ kTailRows),
  // (heads + 2·kv_heads)·head_dim], both BF16 and 16-byte aligned, with the semantics of
  // attention_prefill. Executes the prepared graph on `stream`: no graph build, no allocation, no
  // host synchronization. Zeroes qkv rows [rows, rows + kTailRows). InvalidArgument when `shape`
  // is not ready; DeviceError when cuDNN fails to execute.
  void run(bf16* out, bf16* qkv, std::int64_t rows, const PackedSequences& sequences,
           const SdpaShape& shape, cudaStream_t stream);

  std::size_t graphs_built() const;     // shapes that built (not refused ones)
  std::size_t workspace_bytes() const;  // the largest any built graph needs

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slidesparse::runner
