#include <gtest/gtest.h>

#include <cmath>

#include "slidesparse/error.hpp"
#include "slidesparse/model/config.hpp"
#include "slidesparse/presets.hpp"

namespace slidesparse {
namespace {

const char* kPath = "/models/x/config.json";

nlohmann::json minimal_config(const char* hf_class) {
  return {{"architectures", {hf_class}}, {"hidden_size", 64},        {"intermediate_size", 96},
          {"num_hidden_layers", 2},      {"num_attention_heads", 4}, {"vocab_size", 128}};
}

// The message of the FormatError parse_model_config throws for `config`.
std::string error_of(const nlohmann::json& config) {
  try {
    parse_model_config(config, kPath);
  } catch (const FormatError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no FormatError for " << config.dump();
  return "";
}

TEST(ModelConfig, ReadsEveryPresetsConfigJson) {
  for (const ModelPreset& p : model_presets()) {
    const ModelConfig c = parse_model_config(preset_config_json(p, p.layers), kPath);
    EXPECT_EQ(c.architecture, p.architecture) << p.name;
    EXPECT_EQ(c.hidden, p.hidden) << p.name;
    EXPECT_EQ(c.intermediate, p.intermediate) << p.name;
    EXPECT_EQ(c.layers, p.layers) << p.name;
    EXPECT_EQ(c.heads, p.heads) << p.name;
    EXPECT_EQ(c.kv_heads, p.kv_heads) << p.name;
    EXPECT_EQ(c.head_dim, p.head_dim) << p.name;
    EXPECT_EQ(c.vocab, p.vocab) << p.name;
    EXPECT_EQ(c.max_position, p.max_position) << p.name;
    EXPECT_EQ(c.rms_norm_eps, p.rms_norm_eps) << p.name;
    EXPECT_EQ(c.rope_theta, p.rope_theta) << p.name;
    EXPECT_EQ(c.tie_embeddings, p.tie_embeddings) << p.name;
    EXPECT_EQ(activation_name(c.activation), p.hidden_act) << p.name;
    EXPECT_EQ(c.rope_scaling.has_value(), !p.rope_scaling.is_null()) << p.name;
    EXPECT_EQ(c.qkv_bias, p.architecture == Architecture::Qwen2) << p.name;
    EXPECT_FALSE(c.o_bias) << p.name;
  }
  const ModelConfig llama =
      parse_model_config(preset_config_json(find_preset("llama3.2-3b"), 1), kPath);
  ASSERT_TRUE(llama.rope_scaling.has_value());
  EXPECT_EQ(llama.rope_scaling->factor, 32.0);
  EXPECT_EQ(llama.rope_scaling->low_freq_factor, 1.0);
  EXPECT_EQ(llama.rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(llama.rope_scaling->original_max_position, 8192);
  EXPECT_EQ(llama.group_size(), 3);
  EXPECT_EQ(llama.q_width(), 3072);
  EXPECT_EQ(llama.kv_width(), 1024);
}

TEST(ModelConfig, OptionalFieldsTakeTheTransformersDefaultsOfTheArchitecture) {
  const ModelConfig llama = parse_model_config(minimal_config("LlamaForCausalLM"), kPath);
  EXPECT_EQ(llama.kv_heads, 4);
  EXPECT_EQ(llama.head_dim, 16);
  EXPECT_EQ(llama.max_position, 2048);
  EXPECT_EQ(llama.rms_norm_eps, 1e-6);
  EXPECT_EQ(llama.rope_theta, 10000.0);
  EXPECT_EQ(llama.activation, Activation::Silu);
  EXPECT_FALSE(llama.tie_embeddings);
  EXPECT_FALSE(llama.rope_scaling.has_value());
  EXPECT_FALSE(llama.qkv_bias || llama.o_bias);

  const ModelConfig qwen = parse_model_config(minimal_config("Qwen2ForCausalLM"), kPath);
  EXPECT_EQ(qwen.max_position, 32768);
  EXPECT_TRUE(qwen.qkv_bias);
  EXPECT_FALSE(qwen.o_bias);

  const ModelConfig bitnet = parse_model_config(minimal_config("BitNetForCausalLM"), kPath);
  EXPECT_EQ(bitnet.rms_norm_eps, 1e-5);
  EXPECT_EQ(bitnet.rope_theta, 500000.0);
  EXPECT_EQ(bitnet.activation, Activation::Relu2);

  nlohmann::json biased = minimal_config("LlamaForCausalLM");
  biased["attention_bias"] = true;  // Llama's attention_bias covers o_proj too
  const ModelConfig llama_bias = parse_model_config(biased, kPath);
  EXPECT_TRUE(llama_bias.qkv_bias && llama_bias.o_bias);
  biased["hidden_act"] = "swish";  // transformers' other name of SiLU
  EXPECT_EQ(parse_model_config(biased, kPath).activation, Activation::Silu);
}

TEST(ModelConfig, MissingRequiredFieldNamesFileAndField) {
  for (const char* field : {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size"}) {
    nlohmann::json c = minimal_config("LlamaForCausalLM");
    c.erase(field);
    EXPECT_EQ(error_of(c), std::string(kPath) + ": missing \"" + field + "\"");
    c[field] = nullptr;
    EXPECT_EQ(error_of(c), std::string(kPath) + ": missing \"" + field + "\"");
  }
}

TEST(ModelConfig, InvalidFieldsNameFileFieldAndValue) {
  const auto with = [](const char* key, nlohmann::json value) {
    nlohmann::json c = minimal_config("LlamaForCausalLM");
    c[key] = std::move(value);
    return error_of(c);
  };
  EXPECT_EQ(with("num_attention_heads", "4"),
            std::string(kPath) + ": \"num_attention_heads\" is \"4\", expected a positive integer");
  EXPECT_EQ(with("vocab_size", 0),
            std::string(kPath) + ": \"vocab_size\" is 0, expected a positive integer");
  EXPECT_EQ(with("hidden_size", 64.5),
            std::string(kPath) + ": \"hidden_size\" is 64.5, expected a positive integer");
  EXPECT_EQ(with("rms_norm_eps", -1e-5),
            std::string(kPath) + ": \"rms_norm_eps\" is -1e-05, expected a positive number");
  EXPECT_EQ(with("rope_theta", "1e4"),
            std::string(kPath) + ": \"rope_theta\" is \"1e4\", expected a positive number");
  EXPECT_EQ(with("tie_word_embeddings", "yes"),
            std::string(kPath) + ": \"tie_word_embeddings\" is \"yes\", expected true or false");
  EXPECT_NE(with("num_key_value_heads", 3)
                .find("\"num_key_value_heads\" is 3, must divide "
                      "num_attention_heads 4"),
            std::string::npos);
  EXPECT_NE(with("head_dim", 15).find("\"head_dim\" is 15, RoPE needs an even head_dim"),
            std::string::npos);
  EXPECT_NE(with("hidden_act", "gelu").find("\"hidden_act\" is 'gelu', unsupported"),
            std::string::npos);
  EXPECT_NE(with("mlp_bias", true).find("\"mlp_bias\" is true"), std::string::npos);

  EXPECT_NE(with("quantization_config", {{"quant_method", "bitnet"}})
                .find("\"quantization_config\" is present"),
            std::string::npos);

  nlohmann::json odd = minimal_config("LlamaForCausalLM");
  odd["hidden_size"] = 66;  // not a multiple of 4 heads, and no head_dim to say otherwise
  EXPECT_NE(error_of(odd).find("not a multiple of num_attention_heads 4"), std::string::npos);

  nlohmann::json windowed = minimal_config("Qwen2ForCausalLM");
  windowed["use_sliding_window"] = true;
  EXPECT_NE(error_of(windowed).find("\"use_sliding_window\" is true"), std::string::npos);

  nlohmann::json bitnet = minimal_config("BitNetForCausalLM");
  bitnet["head_dim"] = 32;  // 4 heads x 32 != hidden 64: attn_sub_norm could not apply
  EXPECT_NE(error_of(bitnet).find("attn_sub_norm"), std::string::npos);
}

TEST(ModelConfig, UnsupportedArchitectureNamesFileAndClass) {
  nlohmann::json c = minimal_config("GPT2LMHeadModel");
  EXPECT_EQ(error_of(c), std::string(kPath) +
                             ": unsupported architecture 'GPT2LMHeadModel' (supported: Llama, "
                             "Qwen2, BitNet)");
  EXPECT_NE(error_of(nlohmann::json::array()).find("not a JSON object"), std::string::npos);
}

TEST(ModelConfig, RopeScalingLlama3OrNothing) {
  nlohmann::json c = minimal_config("LlamaForCausalLM");
  const nlohmann::json llama3 = {{"rope_type", "llama3"},
                                 {"factor", 8.0},
                                 {"low_freq_factor", 1.0},
                                 {"high_freq_factor", 4.0},
                                 {"original_max_position_embeddings", 8192}};
  c["rope_scaling"] = llama3;
  EXPECT_EQ(parse_model_config(c, kPath).rope_scaling->factor, 8.0);

  nlohmann::json old_spelling = llama3;  // "type" is what configs before "rope_type" used
  old_spelling.erase("rope_type");
  old_spelling["type"] = "llama3";
  c["rope_scaling"] = old_spelling;
  EXPECT_TRUE(parse_model_config(c, kPath).rope_scaling.has_value());

  c["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_FALSE(parse_model_config(c, kPath).rope_scaling.has_value());

  for (const char* type : {"linear", "dynamic", "yarn", "longrope"}) {
    c["rope_scaling"] = {{"rope_type", type}, {"factor", 2.0}};
    EXPECT_EQ(error_of(c), std::string(kPath) + ": unsupported rope_scaling.rope_type '" + type +
                               "' (supported: llama3, default)");
  }
  nlohmann::json incomplete = llama3;
  incomplete.erase("low_freq_factor");
  c["rope_scaling"] = incomplete;
  EXPECT_EQ(error_of(c), std::string(kPath) + ": missing \"rope_scaling.low_freq_factor\"");

  nlohmann::json inverted = llama3;
  inverted["high_freq_factor"] = 1.0;
  c["rope_scaling"] = inverted;
  EXPECT_NE(error_of(c).find("\"rope_scaling.high_freq_factor\""), std::string::npos);

  c["rope_scaling"] = "llama3";
  EXPECT_NE(error_of(c).find("\"rope_scaling\" is \"llama3\", expected null or an object"),
            std::string::npos);
}

// transformers 5 writes "rope_parameters" (rope_theta inside it) instead of "rope_scaling".
TEST(ModelConfig, RopeParametersOfTransformers5) {
  nlohmann::json c = minimal_config("LlamaForCausalLM");
  c.erase("rope_theta");
  c["rope_parameters"] = {{"rope_type", "llama3"},
                          {"rope_theta", 500000.0},
                          {"factor", 32.0},
                          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  const ModelConfig llama = parse_model_config(c, kPath);
  EXPECT_EQ(llama.rope_theta, 500000.0);
  ASSERT_TRUE(llama.rope_scaling.has_value());
  EXPECT_EQ(llama.rope_scaling->factor, 32.0);

  c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  const ModelConfig plain = parse_model_config(c, kPath);
  EXPECT_EQ(plain.rope_theta, 1000000.0);
  EXPECT_FALSE(plain.rope_scaling.has_value());

  c["rope_theta"] = 10000.0;  // a top-level rope_theta wins
  EXPECT_EQ(parse_model_config(c, kPath).rope_theta, 10000.0);

  c["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  EXPECT_EQ(error_of(c), std::string(kPath) +
                             ": unsupported rope_parameters.rope_type 'yarn' (supported: llama3, "
                             "default)");
  c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", -1.0}};
  c.erase("rope_theta");
  EXPECT_NE(error_of(c).find("\"rope_parameters.rope_theta\""), std::string::npos);
}

// ---- RoPE frequencies ------------------------------------------------------------------

TEST(RopeInvFreq, PlainRopeIsThetaToTheMinusTwoIOverD) {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 1000000.0;
  const std::vector<float> f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 64u);
  for (std::size_t i = 0; i < f.size(); ++i) {
    const double exact = std::pow(1000000.0, -2.0 * static_cast<double>(i) / 128.0);
    EXPECT_NEAR(f[i], exact, 2e-6 * exact) << i;
  }
  EXPECT_EQ(f[0], 1.0f);
}

// _compute_llama3_parameters in double for Llama 3.2 1B (head_dim 64, theta 500000,
// factor 32, bands at wavelengths 8192/4 and 8192/1): all three bands occur there.
TEST(RopeInvFreq, Llama3ScalingKeepsInterpolatesAndStretches) {
  const ModelConfig c =
      parse_model_config(preset_config_json(find_preset("llama3.2-1b"), 1), kPath);
  const std::vector<float> f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 32u);
  int kept = 0, interpolated = 0, stretched = 0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const double base = std::pow(500000.0, -2.0 * static_cast<double>(i) / 64.0);
    const double wavelen = 2.0 * M_PI / base;
    double expected;
    if (wavelen < 8192.0 / 4.0) {
      expected = base;
      ++kept;
    } else if (wavelen > 8192.0 / 1.0) {
      expected = base / 32.0;
      ++stretched;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1.0 - smooth) * base / 32.0 + smooth * base;
      EXPECT_GT(expected, base / 32.0);
      EXPECT_LT(expected, base);
      ++interpolated;
    }
    EXPECT_NEAR(f[i], expected, 1e-5 * expected) << "frequency " << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(interpolated, 0);
  EXPECT_GT(stretched, 0);
}

}  // namespace
}  // namespace slidesparse
