// The checkpoint converter: a Hugging Face checkpoint (Llama, Qwen2, BitNet; BF16, F16 or
// F32 weights) in, a SlideSparse checkpoint (docs/format.md) out. Every selected linear
// layer is pruned, quantized and slid by pack_linear; everything else is copied unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "slidesparse/checkpoint.hpp"
#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse {

// Shards stay below this, like Hugging Face's save_pretrained (a bigger tensor gets a shard
// of its own).
constexpr std::uint64_t kConvertShardBytes = 4'000'000'000;

struct ConvertOptions {
  Pattern pattern = Pattern::from_length(8);
  Precision precision = Precision::INT8;
  PruneMode prune = PruneMode::Magnitude;
  std::vector<LinearKind> layers = all_linear_kinds();
  bool force = false;  // replace an existing output directory
  int threads = 2;     // packing threads
  std::uint64_t max_shard_bytes = kConvertShardBytes;
};

struct ConvertStats {
  std::int64_t linear_tensors = 0;  // weights packed
  std::int64_t copied_tensors = 0;  // tensors copied unchanged (biases included)
  std::uint64_t input_bytes = 0;    // tensor data read
  std::uint64_t output_bytes = 0;   // tensor data written
  std::int64_t output_shards = 0;
  double seconds = 0;
};

// Called with the bytes of input tensor data converted so far, always from one thread (the
// writer's, not the caller's).
using ConvertProgress = std::function<void(std::uint64_t done, std::uint64_t total)>;

// Converts in_dir into out_dir. The output is built in a staging directory beside out_dir
// and renamed into place at the end: a failed or interrupted run leaves no out_dir, and an
// existing out_dir is replaced only with options.force. Linear layers are packed on
// options.threads threads while another thread writes the previous results, and memory stays
// bounded by a few times the largest linear weight: tensors are streamed from the input's
// memory maps.
// Throws InvalidArgument for bad options or an existing output, FormatError naming the
// file and tensor for bad input (unknown architecture, non-finite weights, a linear weight
// that is not 2-D BF16/F16/F32, a pattern violated under PruneMode::None, an input that is
// already a SlideSparse checkpoint), IoError when reading or writing fails.
ConvertStats convert_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                const ConvertOptions& options,
                                const ConvertProgress& progress = {});

}  // namespace slidesparse
