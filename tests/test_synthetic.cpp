#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io_fixtures.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/synthetic.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using test::read_all;
using test::TempDir;

// Small dimensions, the real structure of each family.
ModelPreset tiny(Architecture arch) {
  ModelPreset p;
  p.name = "tiny";
  p.architecture = arch;
  p.hidden = 64;
  p.intermediate = 96;
  p.layers = 2;
  p.heads = 4;
  p.kv_heads = 2;
  p.head_dim = 16;
  p.vocab = 300;
  p.max_position = 512;
  p.tie_embeddings = arch != Architecture::Qwen2;
  p.attention_bias = arch == Architecture::Qwen2;
  p.hidden_act = arch == Architecture::BitNet ? "relu2" : "silu";
  return p;
}

std::vector<float> values(const Checkpoint& ckpt, const std::string& name) {
  const TensorInfo& t = ckpt.info(name);
  EXPECT_EQ(t.dtype, DType::BF16);
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  const std::uint8_t* data = ckpt.data(name);
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, data + 2 * i, 2);
    out[i] = bf16_to_float(bits);
  }
  return out;
}

class SyntheticPerArchitecture : public testing::TestWithParam<Architecture> {};

TEST_P(SyntheticPerArchitecture, WritesEveryTensorOfTheArchitecture) {
  const ModelPreset p = tiny(GetParam());
  TempDir tmp;
  const std::string out = tmp.file("model");
  make_synthetic_checkpoint(p, 2, out, 1, false);
  EXPECT_EQ(fs::directory_iterator(tmp.path())->path(), out);  // nothing else left behind

  const Checkpoint ckpt = Checkpoint::open(out);
  EXPECT_EQ(ckpt.shard_files(), std::vector<std::string>{out + "/model.safetensors"});
  EXPECT_EQ(ckpt.shards().front().metadata().at("format"), "pt");
  std::vector<std::string> expected;
  for (const auto& spec : preset_tensor_specs(p, 2)) {
    expected.push_back(spec.name);
    EXPECT_EQ(ckpt.info(spec.name).shape, spec.shape) << spec.name;
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ckpt.tensor_names(), expected);

  const ModelPreset back = preset_from_config(ckpt.config(), ckpt.config_path());
  EXPECT_EQ(back.architecture, p.architecture);
  EXPECT_EQ(back.layers, 2);
  EXPECT_EQ(back.hidden, p.hidden);
  EXPECT_EQ(back.tie_embeddings, p.tie_embeddings);
}

INSTANTIATE_TEST_SUITE_P(Families, SyntheticPerArchitecture,
                         testing::Values(Architecture::Llama, Architecture::Qwen2,
                                         Architecture::BitNet),
                         [](const testing::TestParamInfo<Architecture>& info) {
                           return std::string(architecture_name(info.param));
                         });

TEST(Synthetic, NormsAreOneAndWeightsLookLikeInit) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  ModelPreset p = tiny(Architecture::Qwen2);
  p.hidden = 256;
  p.intermediate = 1024;
  make_synthetic_checkpoint(p, 1, out, 7, false);
  const Checkpoint ckpt = Checkpoint::open(out);
  for (const char* norm : {"model.norm.weight", "model.layers.0.input_layernorm.weight",
                           "model.layers.0.post_attention_layernorm.weight"})
    for (const float v : values(ckpt, norm)) ASSERT_EQ(v, 1.0f) << norm;

  // 262144 samples of N(0, 0.02²): the sample std is within 1% and the mean
  // within 5 standard errors.
  const auto w = values(ckpt, "model.layers.0.mlp.up_proj.weight");
  double sum = 0, sum_sq = 0;
  float max_abs = 0;
  for (const float v : w) {
    sum += v;
    sum_sq += double(v) * v;
    max_abs = std::max(max_abs, std::fabs(v));
  }
  const double n = static_cast<double>(w.size());
  const double mean = sum / n;
  const double std_dev = std::sqrt(sum_sq / n - mean * mean);
  EXPECT_NEAR(std_dev, 0.02, 0.0002);
  EXPECT_LT(std::fabs(mean), 5 * 0.02 / std::sqrt(n));
  EXPECT_LT(max_abs, 0.02f * 6);
  EXPECT_GT(max_abs, 0.02f * 3);

  const auto bias = values(ckpt, "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(bias.size(), 64u);
  for (const float v : bias) EXPECT_LT(std::fabs(v), 0.2f);
}

TEST(Synthetic, DeterministicPerSeedAndTensorName) {
  TempDir tmp;
  const ModelPreset p = tiny(Architecture::Llama);
  make_synthetic_checkpoint(p, 2, tmp.file("a"), 5, false);
  make_synthetic_checkpoint(p, 2, tmp.file("b"), 5, false);
  make_synthetic_checkpoint(p, 2, tmp.file("c"), 6, false);
  make_synthetic_checkpoint(p, 1, tmp.file("d"), 5, false);
  EXPECT_EQ(read_all(tmp.file("a/model.safetensors")), read_all(tmp.file("b/model.safetensors")));
  EXPECT_EQ(read_all(tmp.file("a/config.json")), read_all(tmp.file("b/config.json")));
  const Checkpoint a = Checkpoint::open(tmp.file("a"));
  const Checkpoint c = Checkpoint::open(tmp.file("c"));
  const Checkpoint d = Checkpoint::open(tmp.file("d"));
  const std::string q0 = linear_weight_name(0, LinearKind::Q);
  EXPECT_NE(values(a, q0), values(c, q0));  // another seed
  EXPECT_EQ(values(a, q0), values(d, q0));  // layer 0 does not depend on the layer count
  EXPECT_NE(values(a, q0), values(a, linear_weight_name(1, LinearKind::Q)));
}

TEST(Synthetic, ShardsWithIndexBeyondMaxShardSize) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  const ModelPreset p = tiny(Architecture::Qwen2);
  const auto specs = preset_tensor_specs(p, 3);
  std::uint64_t total = 0, largest = 0;
  for (const auto& s : specs) {
    total += s.nbytes();
    largest = std::max(largest, s.nbytes());
  }
  const std::uint64_t max_shard = 40'000;
  std::uint64_t last_done = 0;
  int calls = 0;
  make_synthetic_checkpoint(
      p, 3, out, 3, false,
      [&](std::uint64_t done, std::uint64_t all) {
        EXPECT_EQ(all, total);
        EXPECT_GE(done, last_done);
        last_done = done;
        ++calls;
      },
      max_shard);
  EXPECT_EQ(last_done, total);
  EXPECT_GT(calls, 0);

  const Checkpoint ckpt = Checkpoint::open(out);
  const auto shards = ckpt.shard_files();
  ASSERT_GT(shards.size(), 2u);
  EXPECT_EQ(fs::path(shards.front()).filename(),
            "model-00001-of-0000" + std::to_string(shards.size()) + ".safetensors");
  std::uint64_t data_bytes = 0;
  for (const auto& shard : ckpt.shards()) {
    std::uint64_t bytes = 0;
    for (const auto& t : shard.tensors()) bytes += t.nbytes();
    EXPECT_LE(bytes, std::max(max_shard, largest)) << shard.path();
    data_bytes += bytes;
  }
  EXPECT_EQ(data_bytes, total);
  EXPECT_EQ(ckpt.tensor_names().size(), specs.size());
  const auto index = nlohmann::json::parse(read_all(out + "/model.safetensors.index.json"));
  EXPECT_EQ(index.at("metadata").at("total_size"), total);
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));

  // Sharding does not change the values.
  make_synthetic_checkpoint(p, 3, tmp.file("single"), 3, false);
  const Checkpoint single = Checkpoint::open(tmp.file("single"));
  for (const auto& name : single.tensor_names())
    ASSERT_EQ(std::memcmp(single.data(name), ckpt.data(name), single.info(name).nbytes()), 0)
        << name;
}

TEST(Synthetic, ExistingOutputNeedsForce) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  const ModelPreset p = tiny(Architecture::BitNet);
  make_synthetic_checkpoint(p, 1, out, 1, false);
  EXPECT_THROW(make_synthetic_checkpoint(p, 2, out, 1, false), InvalidArgument);
  EXPECT_EQ(Checkpoint::open(out).config().at("num_hidden_layers"), 1);
  make_synthetic_checkpoint(p, 2, out, 1, true);
  EXPECT_EQ(Checkpoint::open(out).config().at("num_hidden_layers"), 2);
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

TEST(Synthetic, FailureLeavesNoOutput) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  EXPECT_THROW(make_synthetic_checkpoint(tiny(Architecture::Llama), 0, out, 1, false),
               InvalidArgument);
  EXPECT_THROW(make_synthetic_checkpoint(
                   tiny(Architecture::Llama), 1, out, 1, false,
                   [](std::uint64_t, std::uint64_t) { throw std::runtime_error("cancelled"); }),
               std::runtime_error);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

}  // namespace
}  // namespace slidesparse
