// `slidesparse demo ORIGINAL_DIR CONVERTED_DIR`: shows, on the CPU references, that the
// slid sparse layer computes exactly what the dense pruned, quantized layer computes: for
// each linear of layer 0, Y = X·Wᵀ from the original weights (pruned and quantized the way
// the converted checkpoint was) against Y from the converted slid weights, on one random X.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "commands.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/converted_checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/reference_linear.hpp"

namespace slidesparse::cli {

namespace {
struct DemoArgs {
  std::string original_dir, converted_dir;
  std::int64_t m = 8;
  std::uint64_t seed = 1;
};

std::vector<float> tensor_floats(const Checkpoint& checkpoint, const std::string& name) {
  const TensorInfo& tensor = checkpoint.info(name);
  const std::uint8_t* data = checkpoint.data(name);
  std::vector<float> out(static_cast<std::size_t>(tensor.numel()));
  for (std::int64_t i = 0; i < tensor.numel(); ++i)
    out[static_cast<std::size_t>(i)] = storage_to_float(data, i, tensor.dtype);
  return out;
}

// Activations a BF16 model could feed the layer.
std::vector<float> random_activations(std::int64_t m, std::int64_t k, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(m * k));
  for (float& v : x) v = bf16_to_float(float_to_bf16(normal(rng)));
  return x;
}

// True when the layer's sparse and dense results are identical bit for bit.
bool demo_layer(const Checkpoint& original, const Checkpoint& converted,
                const ConvertedModelInfo& info, const ConvertedLayerInfo& layer,
                const DemoArgs& args) {
  const TensorInfo& source = original.info(layer.weight_name());
  if (source.shape != std::vector<std::int64_t>{layer.n, layer.k})
    throw InvalidArgument(original.shard_of(layer.weight_name()).path() + ": " +
                          layer.weight_name() + " is not [" + std::to_string(layer.n) + ", " +
                          std::to_string(layer.k) + "] as in " + converted.config_path() +
                          ": not the model that was converted");
  std::vector<float> w = tensor_floats(original, layer.weight_name());
  if (info.prune == PruneMode::Magnitude) prune_magnitude(w.data(), layer.n, layer.k, info.pattern);
  const QuantizedMatrix dense_w = quantize_matrix(w.data(), layer.n, layer.k, info.precision);
  std::vector<float> bias;
  if (original.contains(layer.bias_name())) bias = tensor_floats(original, layer.bias_name());

  const PackedLinear packed = load_packed_linear(converted, info, layer.prefix);
  QuantizedMatrix slid_w{info.precision, layer.n, layer.k_slide, packed.weight, packed.scale};

  const std::vector<float> x = random_activations(args.m, layer.k, args.seed);
  const float* bias_data = bias.empty() ? nullptr : bias.data();
  const std::vector<float> dense = reference_linear_dense(x.data(), args.m, dense_w, bias_data);
  const std::vector<float> sparse =
      reference_linear_sparse(x.data(), args.m, layer.k, slid_w, info.pattern,
                              packed.bias.empty() ? nullptr : packed.bias.data());

  std::int64_t differing = 0;
  double max_diff = 0;
  for (std::size_t i = 0; i < dense.size(); ++i) {
    if (std::memcmp(&dense[i], &sparse[i], sizeof(float)) == 0) continue;
    ++differing;
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(dense[i]) - sparse[i]));
  }
  const std::string head =
      fmt::format("{}  [N={}, K={} → K_slide={}]  {} {}", layer.prefix, layer.n, layer.k,
                  layer.k_slide, info.pattern.display_name(), precision_label(info.precision));
  if (differing == 0) {
    fmt::print("{}: sparse == dense, bit for bit (M={})\n", head, args.m);
  } else {
    fmt::print("{}: sparse != dense in {} of {} outputs, max |diff| {:.3g} (M={})\n", head,
               differing, dense.size(), max_diff, args.m);
  }
  return differing == 0;
}

void run_demo(const DemoArgs& args) {
  const Checkpoint original = Checkpoint::open(args.original_dir);
  const Checkpoint converted = Checkpoint::open(args.converted_dir);
  const ConvertedModelInfo info = read_converted_info(converted.config(), converted.config_path());
  int layers = 0, failed = 0;
  for (const auto& layer : info.layers) {
    const auto name = parse_linear_weight_name(layer.weight_name());
    if (!name || name->layer != 0) continue;
    ++layers;
    if (!demo_layer(original, converted, info, layer, args)) ++failed;
  }
  if (layers == 0)
    throw FormatError(converted.config_path() + ": no converted linear layer of layer 0");
  if (failed > 0)
    throw Error(fmt::format("demo: {} of {} layers differ between the sparse and dense paths",
                            failed, layers));
}
}  // namespace

void add_demo_command(CLI::App& app) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "Show that the converted sparse layers of layer 0 equal the dense layers exactly");
  cmd->add_option("ORIGINAL_DIR", args->original_dir, "the checkpoint that was converted")
      ->required();
  cmd->add_option("CONVERTED_DIR", args->converted_dir, "its SlideSparse conversion")->required();
  cmd->add_option("--m", args->m, "tokens (rows of X)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--seed", args->seed, "seed of the random activations")->capture_default_str();
  cmd->callback([args] { run_demo(*args); });
}

}  // namespace slidesparse::cli
