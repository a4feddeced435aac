// `slidesparse make-model`: a checkpoint of random weights in real Hugging Face format,
// shaped like a named model, for benchmarks when no downloaded model is at hand.
#include <fmt/format.h>

#include <memory>

#include "commands.hpp"
#include "slidesparse/file.hpp"
#include "slidesparse/progress.hpp"
#include "slidesparse/synthetic.hpp"

namespace slidesparse::cli {

namespace {
struct MakeModelArgs {
  std::string preset, out_dir;
  std::int64_t layers = 0;  // 0: all of the preset's layers
  std::uint64_t seed = 0;
  bool force = false;
};

std::string preset_names() {
  std::string names;
  for (const auto& preset : model_presets()) names += (names.empty() ? "" : ", ") + preset.name;
  return names;
}

void run_make_model(const MakeModelArgs& args) {
  const ModelPreset& preset = find_preset(args.preset);
  const std::int64_t layers = args.layers > 0 ? args.layers : preset.layers;
  install_interrupt_cleanup();  // Ctrl-C removes the half-written output
  ProgressBar bar("make-model", 0);
  make_synthetic_checkpoint(
      preset, layers, args.out_dir, args.seed, args.force,
      [&bar](std::uint64_t done, std::uint64_t total) { bar.update(done, total); });
  bar.finish();
  fmt::print("{}: {} with {} of {} layers, seed {}: random weights (benchmark only)\n",
             args.out_dir, preset.name, layers, preset.layers, args.seed);
}
}  // namespace

void add_make_model_command(CLI::App& app) {
  auto args = std::make_shared<MakeModelArgs>();
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a random-weight checkpoint shaped like a named model (benchmark only)");
  cmd->add_option("--preset", args->preset, "model: " + preset_names())->required();
  cmd->add_option("--layers", args->layers, "decoder layers (default: all of the model's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "random seed")->capture_default_str();
  cmd->add_flag("--force", args->force, "replace OUT_DIR if it exists");
  cmd->add_option("OUT_DIR", args->out_dir, "output directory")->required();
  cmd->callback([args] { run_make_model(*args); });
}

}  // namespace slidesparse::cli
