// Where the GPU model's weights come from: a Hugging Face checkpoint (packed at load), a
// checkpoint made by `slidesparse convert` (packed already), or a preset with random weights.
// All three answer by Hugging Face tensor name, so the loader has one code path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/checkpoint.hpp"
#include "slidesparse/model/config.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/runner/gpu_model.hpp"

namespace slidesparse::runner {

class WeightSource {
 public:
  virtual ~WeightSource();
  virtual const ModelConfig& config() const = 0;
  // The model's name for reports: the preset's, or the folder's last component.
  virtual std::string name() const = 0;
  // One line for stderr: what is loaded and how.
  virtual std::string describe() const = 0;
  // A non-linear tensor (embedding, norm, lm_head) as BF16 bits; FormatError naming the tensor
  // when its shape is not `shape`.
  virtual std::vector<std::uint16_t> bf16_tensor(const std::string& name,
                                                 const std::vector<std::int64_t>& shape) = 0;
  // The linears `kinds` of `layer` packed and their rows concatenated in that order (q|k|v,
  // gate|up): exact, since pruning, sliding and scales are all per row.
  virtual PackedLinear fused_linear(std::int64_t layer, const std::vector<LinearKind>& kinds,
                                    const GpuModelOptions& options, int threads) = 0;
};

// Opens `model`: an existing folder is a checkpoint (converted or not), anything else a preset
// name. A converted checkpoint whose precision or pattern differs from `options` throws
// InvalidArgument naming both.
std::unique_ptr<WeightSource> open_weight_source(const std::string& model,
                                                 const GpuModelOptions& options);

// Rows of `parts` stacked: one linear whose output is the parts' outputs side by side. Every
// part needs the same k, precision and pattern (InvalidArgument otherwise); a part without a
// bias gets zeros when another has one.
PackedLinear concatenate_rows(const std::vector<PackedLinear>& parts);

}  // namespace slidesparse::runner
