// `slidesparse convert` (HF checkpoint → SlideSparse checkpoint) and `slidesparse verify`.
#include <fmt/format.h>

#include <memory>
#include <thread>

#include "commands.hpp"
#include "slidesparse/converter.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/progress.hpp"
#include "slidesparse/verify.hpp"

namespace slidesparse::cli {

namespace {
struct ConvertArgs {
  std::string in_dir, out_dir;
  std::string pattern, dtype, prune = "magnitude", layers = "all";
  bool force = false;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

void run_convert(const ConvertArgs& args) {
  ConvertOptions options;
  options.pattern = Pattern::parse(args.pattern);
  options.precision = parse_precision(args.dtype);
  options.prune = parse_prune_mode(args.prune);
  options.layers = parse_linear_kinds(args.layers);
  options.force = args.force;
  options.threads = args.threads;

  install_interrupt_cleanup();  // Ctrl-C removes the half-written output
  ProgressBar bar("convert", 0);
  const ConvertStats stats = convert_checkpoint(
      args.in_dir, args.out_dir, options,
      [&bar](std::uint64_t done, std::uint64_t total) { bar.update(done, total); });
  bar.finish();
  fmt::print("{}: {} linear layers → {} {} (prune {}), {} tensors copied, {} shard{}\n",
             args.out_dir, stats.linear_tensors, options.pattern.display_name(),
             precision_label(options.precision), prune_mode_name(options.prune),
             stats.copied_tensors, stats.output_shards, stats.output_shards == 1 ? "" : "s");
  fmt::print("read {:.1f} MB, wrote {:.1f} MB in {:.2f} s: {:.1f} MB/s of input ({} threads)\n",
             stats.input_bytes / 1e6, stats.output_bytes / 1e6, stats.seconds,
             stats.seconds > 0 ? stats.input_bytes / 1e6 / stats.seconds : 0.0, options.threads);
}

void run_verify(const std::string& dir) {
  ProgressBar bar("verify", 0);
  const VerifyReport report = verify_checkpoint(
      dir, [&bar](std::uint64_t done, std::uint64_t total) { bar.update(done, total); });
  bar.finish();
  fmt::print(
      "{}: OK, {} layers of {} {} verified (2:4 windows, {} groups after un-sliding, "
      "scales), {} tensors\n",
      dir, report.layers_checked, report.info.pattern.display_name(),
      precision_label(report.info.precision), report.info.pattern.paper_name(), report.tensors);
}
}  // namespace

void add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a Hugging Face checkpoint (Llama, Qwen2, BitNet) to SlideSparse");
  cmd->add_option("IN_DIR", args->in_dir, "checkpoint directory (config.json + safetensors)")
      ->required();
  cmd->add_option("OUT_DIR", args->out_dir, "output directory (appears when complete)")->required();
  cmd->add_option("--pattern", args->pattern, "sparsity pattern: 6:8 or 2_8, 4:6, ..., 2_inf")
      ->required();
  cmd->add_option("--dtype", args->dtype, "int8, fp8 or bf16")->required();
  cmd->add_option("--prune", args->prune,
                  "magnitude (prune to the pattern) or none (the weights must satisfy it)")
      ->capture_default_str();
  cmd->add_option("--layers", args->layers,
                  "linear layers to convert: all or a list of q,k,v,o,gate,up,down")
      ->capture_default_str();
  cmd->add_flag("--force", args->force, "replace OUT_DIR if it exists");
  cmd->add_option("--threads", args->threads, "packing threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->callback([args] { run_convert(*args); });
}

void add_verify_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "verify", "Check a converted checkpoint: 2:4 windows, pattern groups, shapes, scales");
  cmd->add_option("DIR", *dir, "converted checkpoint directory")->required();
  cmd->callback([dir] { run_verify(*dir); });
}

}  // namespace slidesparse::cli
