// `slidesparse run MODEL --prompt-ids 1,2,3 --max-new N`: greedy generation, printing the
// generated ids. By default the CPU reference forward (float32); with --pattern and --dtype
// every linear is pruned, quantized and slid at load and computed by the CPU reference of the
// SlideSparse linear (or its dense baseline). With --gpu the GPU model runner runs it
// (tools/gpu/cmd_run_gpu.cpp).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/converted_checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/model/reference_forward.hpp"

namespace slidesparse::cli {

namespace {
struct RunArgs {
  std::string model_dir;
  std::vector<std::string> prompts;  // each "1,2,3"
  int max_new = 16;
  std::string pattern, dtype, prune = "magnitude", path = "sparse";
  bool gpu = false;
  std::string backend, tuning, logits_out, attention;
};

std::vector<int> parse_ids(const std::string& text) {
  std::vector<int> ids;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    std::size_t used = 0;
    long value = -1;
    try {
      value = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || value < 0 || value > 0x7FFFFFFF)
      throw InvalidArgument("--prompt-ids: '" + item + "' is not a token id (in '" + text + "')");
    ids.push_back(static_cast<int>(value));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

void run(const RunArgs& args) {
  if (args.max_new < 0) throw InvalidArgument("--max-new must be >= 0");
  if (args.gpu) {
#ifdef SLIDESPARSE_HAVE_CUDA
    if (args.prune != "magnitude")
      throw InvalidArgument("--gpu prunes by magnitude only, not --prune " + args.prune);
    GpuRunRequest request;
    request.model = args.model_dir;
    for (const auto& p : args.prompts) request.prompts.push_back(parse_ids(p));
    request.max_new = args.max_new;
    if (!args.dtype.empty()) request.dtype = args.dtype;
    request.backend = args.backend;
    request.pattern = args.pattern;
    request.tuning = args.tuning;
    request.logits_out = args.logits_out;
    request.attention = args.attention;
    run_on_gpu(request);
    return;
#else
    throw DeviceError("no CUDA device: this build of slidesparse has no CUDA support (--gpu)");
#endif
  }
  if (!args.backend.empty() || !args.tuning.empty() || !args.attention.empty())
    throw InvalidArgument("--backend, --tuning and --attention go with --gpu");
  if (args.pattern.empty() != args.dtype.empty())
    throw InvalidArgument("--pattern and --dtype go together");
  const Checkpoint checkpoint = Checkpoint::open(args.model_dir);
  if (is_converted_config(checkpoint.config()))
    throw InvalidArgument(args.model_dir +
                          " is a converted SlideSparse checkpoint; this build's CPU runner loads "
                          "Hugging Face checkpoints (use --pattern/--dtype to slide at load)");
  const ModelConfig config = model_config(checkpoint);
  HostModelWeights weights = HostModelWeights::load(checkpoint, config);
  LinearFn linears;
  std::string mode = "float32 linears";
  if (!args.pattern.empty()) {
    const Pattern pattern = Pattern::parse(args.pattern);
    const Precision precision = parse_precision(args.dtype);
    if (args.path != "sparse" && args.path != "dense")
      throw InvalidArgument("--path must be sparse or dense, not '" + args.path + "'");
    const bool sparse = args.path == "sparse";
    linears =
        packed_reference_linears(weights, pattern, precision, parse_prune_mode(args.prune),
                                 sparse ? ReferenceLinearPath::Sparse : ReferenceLinearPath::Dense);
    mode = std::string(sparse ? "SlideSparse " : "dense ") + pattern.display_name() + " " +
           precision_label(precision) + " linears";
  }
  std::vector<std::vector<int>> prompts;
  for (const auto& p : args.prompts) prompts.push_back(parse_ids(p));
  std::fprintf(stderr, "%s: %s, CPU reference forward (%s)\n", args.model_dir.c_str(),
               architecture_name(config.architecture), mode.c_str());
  ReferenceModel model(config, std::move(weights), std::move(linears));
  std::vector<float> prefill_logits;
  const auto generated = model.generate_greedy(prompts, args.max_new, &prefill_logits);
  if (!args.logits_out.empty())
    write_file_atomic(args.logits_out,
                      std::string(reinterpret_cast<const char*>(prefill_logits.data()),
                                  prefill_logits.size() * sizeof(float)));
  for (const auto& ids : generated) {
    for (std::size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
    std::printf("\n");
  }
}
}  // namespace

void add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Greedy generation; prints the generated token ids");
  cmd->add_option("MODEL", args->model_dir,
                  "Hugging Face checkpoint directory (with --gpu also a converted one or a preset)")
      ->required();
  cmd->add_option("--prompt-ids", args->prompts, "Comma-separated token ids (repeat for a batch)")
      ->required();
  cmd->add_option("--max-new", args->max_new, "Tokens to generate per prompt")
      ->capture_default_str();
  cmd->add_option("--pattern", args->pattern, "Prune and slide every linear at load (e.g. 6:8)");
  cmd->add_option("--dtype", args->dtype, "int8, fp8 or bf16 linears (with --pattern)");
  cmd->add_option("--prune", args->prune, "magnitude or none")->capture_default_str();
  cmd->add_option("--path", args->path, "sparse (slid) or dense (baseline) linears")
      ->capture_default_str();
  cmd->add_flag("--gpu", args->gpu, "Run on the GPU model runner (default dtype bf16)");
  cmd->add_option("--backend", args->backend,
                  "With --gpu: dense (cuBLASLt) or sparse (SlideSparse; default with --pattern)");
  cmd->add_option("--tuning", args->tuning, "With --gpu: tuning database of `slidesparse tune`");
  cmd->add_option("--logits-out", args->logits_out,
                  "Write the prefill logits (float32 [prompts, vocab]) to this file");
  cmd->add_option(
         "--attention", args->attention,
         "With --gpu: prefill attention, cudnn (cuDNN's fused SDPA; the default when built "
         "with cuDNN) or own (the runner's kernel)")
      ->check(CLI::IsMember({"cudnn", "own"}));
  cmd->callback([args]() { run(*args); });
}

}  // namespace slidesparse::cli
