#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <tuple>

#include "convert_fixtures.hpp"
#include "io_fixtures.hpp"
#include "slidesparse/converted_checkpoint.hpp"
#include "slidesparse/converter.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/quantize.hpp"
#include "slidesparse/verify.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using test::read_all;
using test::TempDir;
using test::TinyTensor;

// Slots that hold no value come back from un-sliding as +0 (slide.hpp): compare values with
// every zero made +0.
std::vector<std::uint8_t> canonical_zeros(std::vector<std::uint8_t> bytes, DType storage) {
  const std::size_t size = dtype_size(storage);
  for (std::size_t i = 0; i < bytes.size(); i += size) {
    if (storage == DType::I8) continue;
    std::uint32_t bits = 0;
    std::memcpy(&bits, bytes.data() + i, size);
    const std::uint32_t magnitude = size == 1 ? 0x7Fu : 0x7FFFu;
    if ((bits & magnitude) == 0) std::memset(bytes.data() + i, 0, size);
  }
  return bytes;
}

// The pruned, quantized [n, k] weights the dense baseline uses.
std::vector<std::uint8_t> pruned_quantized(std::vector<float> w, std::int64_t n, std::int64_t k,
                                           const ConvertOptions& options) {
  if (options.prune == PruneMode::Magnitude) prune_magnitude(w.data(), n, k, options.pattern);
  const DType storage = precision_storage(options.precision);
  std::vector<std::uint8_t> q(static_cast<std::size_t>(n * k) * dtype_size(storage));
  std::vector<float> scales(static_cast<std::size_t>(n));
  quantize_rows(w.data(), n, k, options.precision, q.data(), scales.data());
  return canonical_zeros(std::move(q), storage);
}

bool is_linear(const std::string& name, const ConvertOptions& options) {
  const auto kind = linear_kind_of(name);
  if (!kind) return false;
  return std::find(options.layers.begin(), options.layers.end(), *kind) != options.layers.end();
}

// Everything a correct conversion of `tensors` promises.
void expect_converted(const std::vector<TinyTensor>& tensors, const std::string& out_dir,
                      const ConvertOptions& options) {
  const VerifyReport report = verify_checkpoint(out_dir);
  const Checkpoint out = Checkpoint::open(out_dir);
  const ConvertedModelInfo info = read_converted_info(out.config(), out.config_path());
  EXPECT_EQ(info.pattern, options.pattern);
  EXPECT_EQ(info.precision, options.precision);
  EXPECT_EQ(info.prune, options.prune);
  std::int64_t linears = 0;
  for (const TinyTensor& t : tensors) {
    if (!is_linear(t.name, options)) {
      SCOPED_TRACE(t.name);
      const TensorInfo& copied = out.info(t.name);
      EXPECT_EQ(copied.dtype, t.dtype);
      EXPECT_EQ(copied.shape, t.shape);
      const auto bytes = t.bytes();
      ASSERT_EQ(copied.nbytes(), bytes.size());
      EXPECT_EQ(std::memcmp(out.data(t.name), bytes.data(), bytes.size()), 0);
      continue;
    }
    ++linears;
    const std::string prefix = t.name.substr(0, t.name.size() - 7);
    SCOPED_TRACE(prefix);
    const std::int64_t n = t.shape[0], k = t.shape[1];
    const PackedLinear loaded = load_packed_linear(out, info, prefix);
    const PackedLinear expected = pack_linear(t.values.data(), n, k, nullptr, options.precision,
                                              options.pattern, options.prune, t.name, 1);
    EXPECT_EQ(loaded.k_slide(), options.pattern.k_slide(k));
    EXPECT_EQ(loaded.weight, expected.weight);
    EXPECT_EQ(loaded.scale, expected.scale);
    const DType storage = precision_storage(options.precision);
    EXPECT_EQ(canonical_zeros(unpacked_weight(loaded), storage),
              pruned_quantized(t.values, n, k, options));
    // Biases travel unchanged and load as floats.
    const std::string bias_name = prefix + ".bias";
    if (out.contains(bias_name)) {
      ASSERT_EQ(loaded.bias.size(), static_cast<std::size_t>(n));
      for (const TinyTensor& b : tensors) {
        if (b.name == bias_name) {
          EXPECT_EQ(loaded.bias, b.values);
        }
      }
    } else {
      EXPECT_TRUE(loaded.bias.empty());
    }
  }
  EXPECT_EQ(report.layers_checked, linears);
  EXPECT_EQ(static_cast<std::int64_t>(info.layers.size()), linears);
}

using ConvertCase = std::tuple<Architecture, Pattern, Precision>;

class ConvertEveryPattern : public ::testing::TestWithParam<ConvertCase> {};

TEST_P(ConvertEveryPattern, PacksLinearsAndCopiesTheRest) {
  const auto [architecture, pattern, precision] = GetParam();
  TempDir tmp;
  const std::string in_dir = tmp.file("in"), out_dir = tmp.file("out");
  fs::create_directories(in_dir);
  const auto tensors = test::tiny_tensors(architecture);
  test::write_checkpoint(in_dir, test::tiny_config(architecture), tensors);

  ConvertOptions options;
  options.pattern = pattern;
  options.precision = precision;
  const ConvertStats stats = convert_checkpoint(in_dir, out_dir, options);
  EXPECT_EQ(stats.linear_tensors, 14);
  EXPECT_EQ(stats.linear_tensors + stats.copied_tensors, static_cast<std::int64_t>(tensors.size()));
  std::uint64_t input_bytes = 0;
  for (const auto& t : tensors) input_bytes += t.bytes().size();
  EXPECT_EQ(stats.input_bytes, input_bytes);
  EXPECT_EQ(stats.output_shards, 1);
  expect_converted(tensors, out_dir, options);

  // config.json: the input's fields plus the section; side files copied.
  const auto config = nlohmann::json::parse(read_all(out_dir + "/config.json"));
  EXPECT_EQ(config.at("architectures"), test::tiny_config(architecture).at("architectures"));
  EXPECT_EQ(config.at("hidden_size"), 24);
  const auto& section = config.at("slidesparse");
  EXPECT_EQ(section.at("format_version"), 1);
  EXPECT_EQ(section.at("pattern"), pattern.zeros_name());
  EXPECT_EQ(section.at("pattern_paper"), pattern.paper_name());
  EXPECT_EQ(section.at("dtype"), precision_name(precision));
  EXPECT_EQ(section.at("prune"), "magnitude");
  const auto& down = section.at("layers").at("model.layers.1.mlp.down_proj");
  EXPECT_EQ(down.at("n"), 24);
  EXPECT_EQ(down.at("k"), 40);
  EXPECT_EQ(down.at("k_slide"), pattern.k_slide(40));
  EXPECT_EQ(read_all(out_dir + "/tokenizer.json"), read_all(in_dir + "/tokenizer.json"));
  EXPECT_FALSE(fs::exists(out_dir + "/model.safetensors.index.json"));
}

std::vector<ConvertCase> every_case() {
  std::vector<ConvertCase> cases;
  for (Architecture a : {Architecture::Llama, Architecture::Qwen2, Architecture::BitNet})
    for (const Pattern& p : Pattern::all())
      for (Precision q : {Precision::INT8, Precision::FP8, Precision::BF16})
        cases.emplace_back(a, p, q);
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<ConvertCase>& info) {
  return std::string(architecture_name(std::get<0>(info.param))) + "_" +
         std::get<1>(info.param).zeros_name() + "_" + precision_name(std::get<2>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Converter, ConvertEveryPattern, ::testing::ValuesIn(every_case()),
                         case_name);

// ---- options -------------------------------------------------------------------------

class ConverterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    in_dir_ = tmp_.file("in");
    out_dir_ = tmp_.file("out");
    fs::create_directories(in_dir_);
  }
  void write(const std::vector<TinyTensor>& tensors, Architecture a = Architecture::Llama,
             int shards = 1) {
    test::write_checkpoint(in_dir_, test::tiny_config(a), tensors, shards);
  }
  // Nothing but the input is left in the temporary directory: no output, no staging.
  void expect_no_output() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(tmp_.path())) names.push_back(e.path().filename());
    EXPECT_EQ(names, std::vector<std::string>{"in"});
  }

  TempDir tmp_;
  std::string in_dir_, out_dir_;
};

TEST_F(ConverterTest, SelectedLayersOnly) {
  const auto tensors = test::tiny_tensors(Architecture::Qwen2);
  write(tensors, Architecture::Qwen2);
  ConvertOptions options;
  options.layers = parse_linear_kinds("q,down");
  const ConvertStats stats = convert_checkpoint(in_dir_, out_dir_, options);
  EXPECT_EQ(stats.linear_tensors, 4);
  expect_converted(tensors, out_dir_, options);
  const Checkpoint out = Checkpoint::open(out_dir_);
  EXPECT_EQ(out.info("model.layers.0.mlp.up_proj.weight").dtype, DType::BF16);
  EXPECT_FALSE(out.contains("model.layers.0.mlp.up_proj.weight_scale"));
}

TEST_F(ConverterTest, Float16AndFloat32Inputs) {
  for (DType dtype : {DType::F16, DType::F32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const auto tensors = test::tiny_tensors(Architecture::Llama, {}, 3, dtype);
    write(tensors);
    ConvertOptions options;
    options.force = true;
    convert_checkpoint(in_dir_, out_dir_, options);
    expect_converted(tensors, out_dir_, options);
  }
}

TEST_F(ConverterTest, ShardedInputAndOutput) {
  const auto tensors = test::tiny_tensors(Architecture::Llama);
  write(tensors, Architecture::Llama, 3);
  ConvertOptions options;
  options.max_shard_bytes = 2000;
  const ConvertStats stats = convert_checkpoint(in_dir_, out_dir_, options);
  EXPECT_GT(stats.output_shards, 1);
  expect_converted(tensors, out_dir_, options);
  const auto index = nlohmann::json::parse(read_all(out_dir_ + "/model.safetensors.index.json"));
  const auto& map = index.at("weight_map");
  EXPECT_EQ(map.size(), tensors.size() + 14);  // + one scale per linear
  // A layer's weight and its scale live in one shard.
  EXPECT_EQ(map.at("model.layers.0.mlp.up_proj.weight"),
            map.at("model.layers.0.mlp.up_proj.weight_scale"));
  EXPECT_EQ(index.at("metadata").at("total_size"), stats.output_bytes);
  const std::string last = map.at("lm_head.weight");
  EXPECT_NE(last.find("-of-"), std::string::npos);
  EXPECT_FALSE(fs::exists(out_dir_ + "/model.safetensors"));
}

TEST_F(ConverterTest, ThreadCountDoesNotChangeTheOutput) {
  write(test::tiny_tensors(Architecture::Llama));
  ConvertOptions one, three;
  one.threads = 1;
  three.threads = 3;
  convert_checkpoint(in_dir_, out_dir_, one);
  convert_checkpoint(in_dir_, tmp_.file("out3"), three);
  EXPECT_EQ(read_all(out_dir_ + "/model.safetensors"),
            read_all(tmp_.file("out3") + "/model.safetensors"));
}

TEST_F(ConverterTest, ProgressReachesTheTotal) {
  write(test::tiny_tensors(Architecture::Llama));
  std::uint64_t last = 0, total = 0;
  int calls = 0;
  const ConvertStats stats = convert_checkpoint(in_dir_, out_dir_, ConvertOptions{},
                                                [&](std::uint64_t done, std::uint64_t all) {
                                                  EXPECT_GE(done, last);
                                                  last = done;
                                                  total = all;
                                                  ++calls;
                                                });
  EXPECT_GT(calls, 1);
  EXPECT_EQ(last, stats.input_bytes);
  EXPECT_EQ(total, stats.input_bytes);
}

TEST_F(ConverterTest, PruneNoneAcceptsCompliantWeights) {
  auto tensors = test::tiny_tensors(Architecture::Llama);
  ConvertOptions options;
  options.prune = PruneMode::None;
  for (TinyTensor& t : tensors)
    if (linear_kind_of(t.name))
      prune_magnitude(t.values.data(), t.shape[0], t.shape[1], options.pattern);
  write(tensors);
  convert_checkpoint(in_dir_, out_dir_, options);
  expect_converted(tensors, out_dir_, options);
}

TEST_F(ConverterTest, PruneNoneRejectsViolationNamingTensorRowGroup) {
  auto tensors = test::tiny_tensors(Architecture::Llama);
  ConvertOptions options;
  options.prune = PruneMode::None;
  for (TinyTensor& t : tensors)
    if (linear_kind_of(t.name))
      prune_magnitude(t.values.data(), t.shape[0], t.shape[1], options.pattern);
  // Row 5, group 1 (columns 8..15) of up_proj gets 7 non-zeros; 6:8 allows 6.
  TinyTensor& up = test::find_tensor(tensors, "model.layers.1.mlp.up_proj.weight");
  for (int c = 8; c < 15; ++c) up.values[5 * 24 + c] = 0.5f;
  write(tensors);
  try {
    convert_checkpoint(in_dir_, out_dir_, options);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
    EXPECT_NE(message.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("row 5, group 1"), std::string::npos) << message;
  }
  expect_no_output();
}

TEST_F(ConverterTest, NonFiniteWeightsNameTensorAndRow) {
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    auto tensors = test::tiny_tensors(Architecture::BitNet);
    test::find_tensor(tensors, "model.layers.0.self_attn.k_proj.weight").values[3 * 24 + 2] = bad;
    write(tensors, Architecture::BitNet);
    try {
      convert_checkpoint(in_dir_, out_dir_, ConvertOptions{});
      FAIL() << "expected FormatError";
    } catch (const FormatError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("model.layers.0.self_attn.k_proj.weight: row 3, column 2"),
                std::string::npos)
          << message;
      EXPECT_NE(message.find(std::isnan(bad) ? "NaN" : "Inf"), std::string::npos) << message;
    }
    expect_no_output();
  }
}

TEST_F(ConverterTest, ExistingOutputKeptWithoutForceReplacedWithForce) {
  write(test::tiny_tensors(Architecture::Llama));
  fs::create_directories(out_dir_);
  test::write_text(out_dir_ + "/keep.txt", "precious");
  EXPECT_THROW(convert_checkpoint(in_dir_, out_dir_, ConvertOptions{}), InvalidArgument);
  EXPECT_EQ(read_all(out_dir_ + "/keep.txt"), "precious");

  ConvertOptions force;
  force.force = true;
  convert_checkpoint(in_dir_, out_dir_, force);
  EXPECT_FALSE(fs::exists(out_dir_ + "/keep.txt"));
  EXPECT_NO_THROW(verify_checkpoint(out_dir_));
}

TEST_F(ConverterTest, UnknownArchitectureFails) {
  auto config = test::tiny_config(Architecture::Llama);
  config["architectures"] = {"MambaForCausalLM"};
  config["model_type"] = "mamba";
  test::write_checkpoint(in_dir_, config, test::tiny_tensors(Architecture::Llama));
  try {
    convert_checkpoint(in_dir_, out_dir_, ConvertOptions{});
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("config.json"), std::string::npos) << message;
    EXPECT_NE(message.find("Mamba"), std::string::npos) << message;
  }
  expect_no_output();
}

TEST_F(ConverterTest, AlreadyConvertedInputFails) {
  write(test::tiny_tensors(Architecture::Llama));
  convert_checkpoint(in_dir_, out_dir_, ConvertOptions{});
  try {
    convert_checkpoint(out_dir_, tmp_.file("twice"), ConvertOptions{});
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("already a SlideSparse checkpoint"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp_.file("twice")));
}

TEST_F(ConverterTest, LinearWeightMustBeTwoDimensional) {
  auto tensors = test::tiny_tensors(Architecture::Llama);
  TinyTensor& v = test::find_tensor(tensors, "model.layers.0.self_attn.v_proj.weight");
  v.shape = {2, 4, 24};
  write(tensors);
  try {
    convert_checkpoint(in_dir_, out_dir_, ConvertOptions{});
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("model.layers.0.self_attn.v_proj.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("2-D"), std::string::npos) << message;
  }
  expect_no_output();
}

TEST_F(ConverterTest, QuantizedLinearInputFails) {
  auto tensors = test::tiny_tensors(Architecture::BitNet);
  TinyTensor& q = test::find_tensor(tensors, "model.layers.0.self_attn.q_proj.weight");
  q.dtype = DType::I8;
  for (float& x : q.values) x = std::round(x * 1000);
  write(tensors, Architecture::BitNet);
  try {
    convert_checkpoint(in_dir_, out_dir_, ConvertOptions{});
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("q_proj.weight: linear weight of dtype I8"),
              std::string::npos)
        << e.what();
  }
  expect_no_output();
}

TEST_F(ConverterTest, BadOptionsFail) {
  write(test::tiny_tensors(Architecture::Llama));
  ConvertOptions no_threads;
  no_threads.threads = 0;
  EXPECT_THROW(convert_checkpoint(in_dir_, out_dir_, no_threads), InvalidArgument);
  ConvertOptions no_layers;
  no_layers.layers.clear();
  EXPECT_THROW(convert_checkpoint(in_dir_, out_dir_, no_layers), InvalidArgument);
  ConvertOptions in_place;
  in_place.force = true;
  EXPECT_THROW(convert_checkpoint(in_dir_, in_dir_ + "/.", in_place), InvalidArgument);
  expect_no_output();
}

}  // namespace
}  // namespace slidesparse
