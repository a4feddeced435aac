#include <gtest/gtest.h>

#include "slidesparse/error.hpp"
#include "slidesparse/presets.hpp"

namespace slidesparse {
namespace {

std::int64_t parameter_count(const ModelPreset& p) {
  std::int64_t n = 0;
  for (const auto& spec : preset_tensor_specs(p, p.layers)) n += spec.numel();
  return n;
}

TEST(Presets, AllFiveWithTheirNames) {
  std::vector<std::string> names;
  for (const auto& p : model_presets()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"llama3.2-1b", "llama3.2-3b", "qwen2.5-7b",
                                             "qwen2.5-14b", "bitnet-2b"}));
}

// Parameter counts published for the real checkpoints: a check of every
// dimension and of the tensor list at once.
TEST(Presets, ParameterCountsMatchTheRealModels) {
  EXPECT_EQ(parameter_count(find_preset("llama3.2-1b")), 1'235'814'400);
  EXPECT_EQ(parameter_count(find_preset("llama3.2-3b")), 3'212'749'824);
  EXPECT_EQ(parameter_count(find_preset("qwen2.5-7b")), 7'615'616'512);
  EXPECT_EQ(parameter_count(find_preset("qwen2.5-14b")), 14'770'033'664);
  EXPECT_EQ(parameter_count(find_preset("bitnet-2b")), 2'412'820'480);  // "2.41B"
}

TEST(Presets, DimensionsFromThePublicConfigs) {
  const ModelPreset& llama1b = find_preset("llama3.2-1b");
  EXPECT_EQ(llama1b.architecture, Architecture::Llama);
  EXPECT_EQ(llama1b.head_dim, 64);
  EXPECT_TRUE(llama1b.tie_embeddings);
  EXPECT_EQ(llama1b.rope_theta, 500000.0);
  EXPECT_EQ(llama1b.rope_scaling.at("rope_type"), "llama3");
  EXPECT_EQ(llama1b.rope_scaling.at("factor"), 32.0);
  EXPECT_EQ(llama1b.max_position, 131072);

  const ModelPreset& qwen7b = find_preset("qwen2.5-7b");
  EXPECT_EQ(qwen7b.architecture, Architecture::Qwen2);
  EXPECT_TRUE(qwen7b.attention_bias);
  EXPECT_FALSE(qwen7b.tie_embeddings);
  EXPECT_EQ(qwen7b.rms_norm_eps, 1e-6);
  EXPECT_TRUE(qwen7b.rope_scaling.is_null());

  const ModelPreset& bitnet = find_preset("bitnet-2b");
  EXPECT_EQ(bitnet.architecture, Architecture::BitNet);
  EXPECT_EQ(bitnet.hidden_act, "relu2");
  EXPECT_EQ(bitnet.kv_heads, 5);
  EXPECT_EQ(bitnet.max_position, 4096);
}

TEST(Presets, FindIsCaseInsensitiveAndListsValidNames) {
  EXPECT_EQ(find_preset("Qwen2.5-14B").name, "qwen2.5-14b");
  try {
    find_preset("llama3-8b");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown model preset 'llama3-8b' (valid: llama3.2-1b, llama3.2-3b, qwen2.5-7b, "
              "qwen2.5-14b, bitnet-2b)");
  }
}

TEST(Presets, LinearShapes) {
  const auto shapes = linear_shapes(find_preset("llama3.2-1b"));
  ASSERT_EQ(shapes.size(), 7u);
  const std::int64_t expected[7][2] = {{2048, 2048}, {512, 2048},  {512, 2048}, {2048, 2048},
                                       {8192, 2048}, {8192, 2048}, {2048, 8192}};
  for (std::size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(shapes[i].kind, all_linear_kinds()[i]);
    EXPECT_EQ(shapes[i].n, expected[i][0]) << linear_kind_name(shapes[i].kind);
    EXPECT_EQ(shapes[i].k, expected[i][1]) << linear_kind_name(shapes[i].kind);
  }
  const auto qwen = linear_shapes(find_preset("qwen2.5-7b"));
  EXPECT_EQ(qwen[1].n, 512);    // k: 4 kv heads x 128
  EXPECT_EQ(qwen[4].n, 18944);  // gate
  EXPECT_EQ(qwen[6].k, 18944);  // down
  const auto llama3b = linear_shapes(find_preset("llama3.2-3b"));
  EXPECT_EQ(llama3b[0].n, 3072);  // 24 heads x 128
  EXPECT_EQ(llama3b[3].k, 3072);
}

TEST(Presets, TensorListPerArchitecture) {
  const auto names = [](const ModelPreset& p) {
    std::vector<std::string> out;
    for (const auto& s : preset_tensor_specs(p, 1)) out.push_back(s.name);
    return out;
  };
  const std::vector<std::string> llama = names(find_preset("llama3.2-1b"));
  EXPECT_EQ(llama,
            (std::vector<std::string>{
                "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
                "model.layers.0.post_attention_layernorm.weight",
                "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                "model.layers.0.mlp.down_proj.weight", "model.norm.weight"}));
  const std::vector<std::string> qwen = names(find_preset("qwen2.5-7b"));
  EXPECT_EQ(qwen.size(), llama.size() + 4);  // q/k/v biases and lm_head
  EXPECT_EQ(qwen[3], "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(qwen.back(), "lm_head.weight");
  const auto bitnet = preset_tensor_specs(find_preset("bitnet-2b"), 1);
  ASSERT_EQ(bitnet.size(), llama.size() + 2);
  EXPECT_EQ(bitnet[6].name, "model.layers.0.self_attn.attn_sub_norm.weight");
  EXPECT_EQ(bitnet[6].shape, std::vector<std::int64_t>{2560});
  EXPECT_EQ(bitnet[11].name, "model.layers.0.mlp.ffn_sub_norm.weight");
  EXPECT_EQ(bitnet[11].shape, std::vector<std::int64_t>{6912});
  for (const auto& s : bitnet) EXPECT_EQ(s.dtype, DType::BF16);
  EXPECT_THROW(preset_tensor_specs(find_preset("bitnet-2b"), 0), InvalidArgument);
}

TEST(Presets, ConfigJsonRoundTrip) {
  for (const auto& p : model_presets()) {
    const nlohmann::json config = preset_config_json(p, 3);
    EXPECT_EQ(config.at("torch_dtype"), "bfloat16");
    EXPECT_EQ(config.at("num_hidden_layers"), 3);
    EXPECT_EQ(detect_architecture(config, "config.json"), p.architecture);
    const ModelPreset back = preset_from_config(config, "config.json");
    EXPECT_EQ(back.architecture, p.architecture) << p.name;
    EXPECT_EQ(back.hidden, p.hidden) << p.name;
    EXPECT_EQ(back.intermediate, p.intermediate) << p.name;
    EXPECT_EQ(back.layers, 3) << p.name;
    EXPECT_EQ(back.heads, p.heads) << p.name;
    EXPECT_EQ(back.kv_heads, p.kv_heads) << p.name;
    EXPECT_EQ(back.head_dim, p.head_dim) << p.name;
    EXPECT_EQ(back.vocab, p.vocab) << p.name;
    EXPECT_EQ(back.max_position, p.max_position) << p.name;
    EXPECT_EQ(back.tie_embeddings, p.tie_embeddings) << p.name;
    EXPECT_EQ(back.attention_bias, p.attention_bias) << p.name;
    EXPECT_EQ(back.rope_theta, p.rope_theta) << p.name;
    EXPECT_EQ(back.rms_norm_eps, p.rms_norm_eps) << p.name;
    EXPECT_EQ(back.hidden_act, p.hidden_act) << p.name;
    EXPECT_EQ(back.rope_scaling, p.rope_scaling) << p.name;
  }
  const nlohmann::json bitnet = preset_config_json(find_preset("bitnet-2b"), 1);
  EXPECT_EQ(bitnet.at("model_type"), "bitnet");
  EXPECT_EQ(bitnet.at("architectures"), nlohmann::json::array({"BitNetForCausalLM"}));
  const nlohmann::json qwen = preset_config_json(find_preset("qwen2.5-14b"), 2);
  EXPECT_EQ(qwen.at("max_window_layers"), 2);
  EXPECT_EQ(qwen.at("use_sliding_window"), false);
  EXPECT_THROW(preset_config_json(find_preset("qwen2.5-14b"), 0), InvalidArgument);
}

TEST(Presets, FromConfigDefaultsAndErrors) {
  const nlohmann::json minimal = {{"model_type", "llama"},    {"hidden_size", 64},
                                  {"intermediate_size", 128}, {"num_hidden_layers", 2},
                                  {"num_attention_heads", 4}, {"vocab_size", 100}};
  const ModelPreset p = preset_from_config(minimal, "m/config.json");
  EXPECT_EQ(p.kv_heads, 4);
  EXPECT_EQ(p.head_dim, 16);
  EXPECT_FALSE(p.attention_bias);
  EXPECT_EQ(p.hidden_act, "silu");

  auto missing = minimal;
  missing.erase("vocab_size");
  try {
    preset_from_config(missing, "m/config.json");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), "m/config.json: missing \"vocab_size\"");
  }
  auto negative = minimal;
  negative["hidden_size"] = -64;
  EXPECT_THROW(preset_from_config(negative, "m/config.json"), FormatError);
  auto bad_gqa = minimal;
  bad_gqa["num_key_value_heads"] = 3;
  EXPECT_THROW(preset_from_config(bad_gqa, "m/config.json"), FormatError);
  auto wrong_type = minimal;
  wrong_type["tie_word_embeddings"] = "yes";
  EXPECT_THROW(preset_from_config(wrong_type, "m/config.json"), FormatError);
  auto deep = minimal;
  deep["rope_scaling"] =
      nlohmann::json::parse(std::string(1'000'000, '[') + std::string(1'000'000, ']'));
  EXPECT_THROW(preset_from_config(deep, "m/config.json"), FormatError);
  deep["rope_scaling"] = {{"factor", {{"nested", 1}}}};
  EXPECT_THROW(preset_from_config(deep, "m/config.json"), FormatError);
  deep["rope_scaling"] = {{"rope_type", "longrope"}, {"long_factor", {1.0, 2.0}}};
  EXPECT_EQ(preset_from_config(deep, "m/config.json").rope_scaling, deep["rope_scaling"]);
  EXPECT_THROW(preset_from_config(nlohmann::json{{"model_type", "gpt2"}}, "m/config.json"),
               FormatError);
}

}  // namespace
}  // namespace slidesparse
