// `slidesparse run MODEL --gpu ...`: the GPU model runner behind the `run` command.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "../commands.hpp"
#include "gpu_common.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/runner/gpu_model.hpp"

namespace slidesparse::cli {

void run_on_gpu(const GpuRunRequest& request) {
  std::string why;
  if (!cuda_device_available(&why)) throw DeviceError("no CUDA device: " + why);
  runner::GpuModelOptions options;
  options.precision = parse_precision(request.dtype);
  const std::string backend =
      request.backend.empty() ? (request.pattern.empty() ? "dense" : "sparse") : request.backend;
  options.backend = runner::parse_gpu_backend(backend);
  if (request.pattern.empty()) {
    if (options.backend == runner::GpuBackend::Sparse)
      throw InvalidArgument("--backend sparse needs --pattern (e.g. 2_8)");
    options.pattern = Pattern::infinite();
  } else {
    options.pattern = Pattern::parse(request.pattern);
  }
  if (request.prompts.empty()) throw InvalidArgument("--prompt-ids: no prompt");
  std::int64_t tokens = 0, longest = 0;
  for (const auto& p : request.prompts) {
    tokens += static_cast<std::int64_t>(p.size());
    longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(p.size()));
  }
  // Sized for this request: every prompt in one prefill, every token in the context.
  options.max_tokens = std::max<std::int64_t>(tokens, 1);
  options.max_sequences = static_cast<std::int64_t>(request.prompts.size());
  options.max_context = std::max<std::int64_t>(longest + request.max_new, 1);
  std::unique_ptr<TuningDb> tuning;
  if (!request.tuning.empty()) {
    tuning = std::make_unique<TuningDb>(
        TuningDb::load(request.tuning, current_tuning_key(query_device())));
    options.tuning = tuning.get();
  }

  if (!request.attention.empty())
    options.attention = runner::parse_prefill_attention(request.attention);

  runner::GpuModel model(request.model, options);
  std::vector<std::vector<int>> generated(request.prompts.size());
  std::vector<int> next = model.prefill(request.prompts);
  std::fprintf(stderr,
               "slidesparse: %s on the GPU: %s %s linears, pattern %s, %s prefill attention\n",
               model.name().c_str(), precision_label(options.precision),
               runner::gpu_backend_name(options.backend), options.pattern.zeros_name().c_str(),
               runner::prefill_attention_name(model.prefill_attention()));
  if (!request.logits_out.empty()) {
    const std::vector<float> logits = model.last_logits();
    write_file_atomic(request.logits_out, std::string(reinterpret_cast<const char*>(logits.data()),
                                                      logits.size() * sizeof(float)));
  }
  for (int step = 0; step < request.max_new; ++step) {
    for (std::size_t s = 0; s < next.size(); ++s) generated[s].push_back(next[s]);
    if (step + 1 < request.max_new) next = model.decode_step(next);
  }
  for (const auto& ids : generated) {
    for (std::size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
    std::printf("\n");
  }
}

}  // namespace slidesparse::cli
