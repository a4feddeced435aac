#include <gtest/gtest.h>

#include "model_fixtures.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/model/weights.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/presets.hpp"
#include "slidesparse/quantize.hpp"

namespace slidesparse {
namespace {

using test::EditableTensor;
using test::edited_checkpoint;
using test::TempDir;
using test::tiny_model_dir;

// Two rooms list the same tensors: the synthetic checkpoint writer (presets) and the
// model's check. They must agree for every preset.
TEST(ExpectedTensors, AgreeWithThePresetTensorLists) {
  for (const ModelPreset& p : model_presets()) {
    const ModelConfig c = parse_model_config(preset_config_json(p, 2), "config.json");
    const std::vector<ExpectedTensor> expected = expected_tensors(c);
    const std::vector<TensorSpec> specs = preset_tensor_specs(p, 2);
    ASSERT_EQ(expected.size(), specs.size()) << p.name;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      EXPECT_EQ(expected[i].name, specs[i].name) << p.name;
      EXPECT_EQ(expected[i].shape, specs[i].shape) << p.name << " " << specs[i].name;
    }
  }
}

TEST(ExpectedTensors, PerArchitectureExtras) {
  const auto names_of = [](const char* preset) {
    std::vector<std::string> names;
    const ModelPreset& p = find_preset(preset);
    for (const auto& t : expected_tensors(parse_model_config(preset_config_json(p, 1), "c")))
      names.push_back(t.name);
    return names;
  };
  const auto has = [](const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  const auto qwen = names_of("qwen2.5-7b");
  EXPECT_TRUE(has(qwen, "model.layers.0.self_attn.k_proj.bias"));
  EXPECT_FALSE(has(qwen, "model.layers.0.self_attn.o_proj.bias"));
  EXPECT_TRUE(has(qwen, "lm_head.weight"));
  const auto bitnet = names_of("bitnet-2b");
  EXPECT_TRUE(has(bitnet, "model.layers.0.self_attn.attn_sub_norm.weight"));
  EXPECT_TRUE(has(bitnet, "model.layers.0.mlp.ffn_sub_norm.weight"));
  EXPECT_FALSE(has(bitnet, "lm_head.weight"));  // tied
  const auto llama = names_of("llama3.2-1b");
  EXPECT_FALSE(has(llama, "model.layers.0.self_attn.q_proj.bias"));
  EXPECT_EQ(linear_bias_name(3, LinearKind::V), "model.layers.3.self_attn.v_proj.bias");
}

TEST(CheckWeights, TinyCheckpointsPass) {
  for (const std::string& name : test::tiny_model_names()) {
    const Checkpoint checkpoint = Checkpoint::open(tiny_model_dir(name));
    EXPECT_NO_THROW(check_weights(checkpoint, model_config(checkpoint))) << name;
  }
}

TEST(CheckWeights, UnusedTensorsAreAllowed) {
  TempDir tmp;
  const std::string dir =
      edited_checkpoint(tmp, tiny_model_dir("llama-tiny"), {}, [](std::vector<EditableTensor>& ts) {
        ts.push_back(
            {{"model.rotary_emb.inv_freq", DType::F32, {8}}, std::vector<std::uint8_t>(32, 0)});
      });
  const Checkpoint checkpoint = Checkpoint::open(dir);
  EXPECT_NO_THROW(check_weights(checkpoint, model_config(checkpoint)));
}

TEST(CheckWeights, NamesTheFirstMissingTensorInModelOrder) {
  TempDir tmp;
  const std::string dir = edited_checkpoint(
      tmp, tiny_model_dir("bitnet-tiny"), {}, [](std::vector<EditableTensor>& ts) {
        ts.erase(std::remove_if(ts.begin(), ts.end(),
                                [](const EditableTensor& t) {
                                  return t.spec.name.find("sub_norm") != std::string::npos;
                                }),
                 ts.end());
      });
  const Checkpoint checkpoint = Checkpoint::open(dir);
  try {
    check_weights(checkpoint, model_config(checkpoint));
    FAIL() << "no FormatError";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()),
              dir +
                  ": missing tensor 'model.layers.0.self_attn.attn_sub_norm.weight' (expected "
                  "[64] for BitNet)");
  }
}

// Any of BF16, F16 and F32 loads, to the same values here (the tiny weights are
// exact in all three); other dtypes are refused by name.
TEST(HostModelWeights, LoadsBf16F16AndF32AndRefusesOthers) {
  const std::string source = tiny_model_dir("qwen2-tiny");
  const Checkpoint original = Checkpoint::open(source);
  const ModelConfig config = model_config(original);
  const HostModelWeights reference = HostModelWeights::load(original, config);

  TempDir tmp;
  const std::string single = tmp.file("single");
  {  // qwen2-tiny is sharded: gather it into one file first, converting two tensors.
    std::filesystem::create_directories(single);
    std::filesystem::copy_file(source + "/config.json", single + "/config.json");
    std::vector<TensorSpec> specs;
    std::vector<std::vector<std::uint8_t>> bytes;
    for (const std::string& name : original.tensor_names()) {
      const TensorInfo& info = original.info(name);
      TensorSpec spec{name, info.dtype, info.shape};
      const std::vector<float> values = read_float_tensor(original, name);
      if (name == "model.norm.weight") spec.dtype = DType::F32;
      if (name == "model.layers.1.self_attn.q_proj.bias") spec.dtype = DType::F16;
      std::vector<std::uint8_t> data(spec.nbytes());
      for (std::size_t i = 0; i < values.size(); ++i)
        float_to_storage(values[i], data.data(), static_cast<std::int64_t>(i), spec.dtype);
      specs.push_back(spec);
      bytes.push_back(std::move(data));
    }
    SafetensorsWriter writer(single + "/model.safetensors", specs);
    for (std::size_t i = 0; i < specs.size(); ++i)
      writer.write(specs[i].name, bytes[i].data(), bytes[i].size());
    writer.finish();
  }
  const Checkpoint mixed = Checkpoint::open(single);
  EXPECT_EQ(mixed.info("model.norm.weight").dtype, DType::F32);
  const HostModelWeights loaded = HostModelWeights::load(mixed, config);
  EXPECT_EQ(loaded.final_norm(), reference.final_norm());
  EXPECT_EQ(loaded.layer(1).linear(LinearKind::Q).bias,
            reference.layer(1).linear(LinearKind::Q).bias);
  EXPECT_EQ(loaded.lm_head(), reference.lm_head());

  const std::string int8 =
      edited_checkpoint(tmp, tiny_model_dir("llama-tiny"), {}, [](std::vector<EditableTensor>& ts) {
        for (auto& t : ts)
          if (t.spec.name == "model.norm.weight") {
            t.spec.dtype = DType::I8;
            t.bytes.resize(t.bytes.size() / 2);
          }
      });
  const Checkpoint bad = Checkpoint::open(int8);
  try {
    HostModelWeights::load(bad, model_config(bad));
    FAIL() << "no FormatError";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()),
              int8 + ": tensor 'model.norm.weight' is I8, expected BF16, F16 or F32");
  }
}

TEST(HostModelWeights, HoldsEveryTensorOfTheCheckpointAsFloat) {
  const Checkpoint checkpoint = Checkpoint::open(tiny_model_dir("bitnet-tiny"));
  const ModelConfig config = model_config(checkpoint);
  const HostModelWeights w = HostModelWeights::load(checkpoint, config);
  ASSERT_EQ(w.layers(), 2);

  const auto* raw =
      reinterpret_cast<const std::uint16_t*>(checkpoint.data("model.embed_tokens.weight"));
  ASSERT_EQ(w.embed_tokens().size(), static_cast<std::size_t>(config.vocab * config.hidden));
  for (std::size_t i = 0; i < w.embed_tokens().size(); i += 97)
    EXPECT_EQ(w.embed_tokens()[i], bf16_to_float(raw[i])) << i;
  EXPECT_EQ(&w.lm_head(), &w.embed_tokens());  // tied: one copy

  const HostLayerWeights& layer = w.layer(1);
  EXPECT_EQ(layer.attn_sub_norm.size(), 64u);
  EXPECT_EQ(layer.ffn_sub_norm.size(), 96u);
  const HostLinear& down = layer.linear(LinearKind::Down);
  EXPECT_EQ(down.n, 64);
  EXPECT_EQ(down.k, 96);
  EXPECT_EQ(down.weight, read_float_tensor(checkpoint, "model.layers.1.mlp.down_proj.weight"));
  EXPECT_TRUE(down.bias.empty());
  // BitNet's linear weights are ternary: -s, 0 or +s.
  for (const float v : down.weight) EXPECT_TRUE(v == 0.0f || std::abs(v) == 0.125f) << v;

  EXPECT_THROW(w.layer(2), InvalidArgument);
  EXPECT_THROW(w.layer(-1), InvalidArgument);
}

TEST(HostModelWeights, QwenBiasesOnQkvOnly) {
  const Checkpoint checkpoint = Checkpoint::open(tiny_model_dir("qwen2-tiny"));
  const HostModelWeights w = HostModelWeights::load(checkpoint, model_config(checkpoint));
  EXPECT_EQ(w.layer(0).linear(LinearKind::K).bias.size(), 32u);
  EXPECT_TRUE(w.layer(0).linear(LinearKind::O).bias.empty());
  EXPECT_NE(&w.lm_head(), &w.embed_tokens());
  EXPECT_EQ(w.lm_head(), read_float_tensor(checkpoint, "lm_head.weight"));
}

}  // namespace
}  // namespace slidesparse
