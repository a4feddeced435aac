#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io_fixtures.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::write_bytes;

// Writes `specs` with byte i of tensor t equal to (t * 16 + i) mod 256.
void write_shard(const std::string& path, const std::vector<TensorSpec>& specs) {
  SafetensorsWriter w(path, specs);
  for (std::size_t t = 0; t < specs.size(); ++t) {
    std::vector<std::uint8_t> bytes(specs[t].nbytes());
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(t * 16 + i);
    w.write(specs[t].name, bytes.data(), bytes.size());
  }
  w.finish();
}

void write_config(const std::string& dir) {
  write_file_atomic(dir + "/config.json",
                    R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 8})");
}

template <typename Fn>
std::string format_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const FormatError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected FormatError";
  return {};
}

const std::vector<TensorSpec> kShard1 = {{"model.embed_tokens.weight", DType::BF16, {4, 2}},
                                         {"model.norm.weight", DType::BF16, {2}}};
const std::vector<TensorSpec> kShard2 = {{"lm_head.weight", DType::BF16, {4, 2}},
                                         {"model.layers.0.mlp.up_proj.weight", DType::I8, {3, 2}}};

// A sharded checkpoint: two shards and the index naming them.
void write_sharded(const std::string& dir) {
  write_config(dir);
  write_shard(dir + "/model-00001-of-00002.safetensors", kShard1);
  write_shard(dir + "/model-00002-of-00002.safetensors", kShard2);
  write_file_atomic(dir + "/model.safetensors.index.json", R"({
    "metadata": {"total_size": 42},
    "weight_map": {
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.norm.weight": "model-00001-of-00002.safetensors",
      "lm_head.weight": "model-00002-of-00002.safetensors",
      "model.layers.0.mlp.up_proj.weight": "model-00002-of-00002.safetensors"
    }})");
}

TEST(Checkpoint, SingleFile) {
  TempDir tmp;
  write_config(tmp.path());
  write_shard(tmp.file("model.safetensors"), kShard1);
  const Checkpoint ckpt = Checkpoint::open(tmp.path());
  EXPECT_EQ(ckpt.dir(), tmp.path());
  EXPECT_EQ(ckpt.config().at("hidden_size"), 8);
  EXPECT_EQ(ckpt.config_path(), tmp.file("config.json"));
  EXPECT_EQ(ckpt.tensor_names(),
            (std::vector<std::string>{"model.embed_tokens.weight", "model.norm.weight"}));
  EXPECT_EQ(ckpt.shard_files(), std::vector<std::string>{tmp.file("model.safetensors")});
  EXPECT_EQ(ckpt.info("model.norm.weight").shape, std::vector<std::int64_t>{2});
  EXPECT_EQ(ckpt.data("model.norm.weight")[3], 16 + 3);
  EXPECT_TRUE(ckpt.contains("model.norm.weight"));
  EXPECT_FALSE(ckpt.contains("lm_head.weight"));
}

TEST(Checkpoint, AnySingleSafetensorsFile) {
  TempDir tmp;
  write_config(tmp.path());
  write_shard(tmp.file("weights.safetensors"), kShard2);
  const Checkpoint ckpt = Checkpoint::open(tmp.path());
  EXPECT_EQ(ckpt.shard_files(), std::vector<std::string>{tmp.file("weights.safetensors")});
  EXPECT_EQ(ckpt.info("lm_head.weight").dtype, DType::BF16);
}

TEST(Checkpoint, ShardedRoundTrip) {
  TempDir tmp;
  write_sharded(tmp.path());
  const Checkpoint ckpt = Checkpoint::open(tmp.path());
  EXPECT_EQ(ckpt.tensor_names(),
            (std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight",
                                      "model.layers.0.mlp.up_proj.weight", "model.norm.weight"}));
  EXPECT_EQ(ckpt.shard_files(),
            (std::vector<std::string>{tmp.file("model-00001-of-00002.safetensors"),
                                      tmp.file("model-00002-of-00002.safetensors")}));
  EXPECT_EQ(ckpt.shard_of("lm_head.weight").path(), tmp.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(ckpt.shard_of("model.norm.weight").path(),
            tmp.file("model-00001-of-00002.safetensors"));
  const TensorInfo& up = ckpt.info("model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(up.dtype, DType::I8);
  EXPECT_EQ(up.shape, (std::vector<std::int64_t>{3, 2}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ckpt.data(up.name)[i], 16 + i);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(ckpt.data("lm_head.weight")[i], i);
}

TEST(Checkpoint, MissingShardNamesShardAndIndex) {
  TempDir tmp;
  write_sharded(tmp.path());
  fs::remove(tmp.file("model-00002-of-00002.safetensors"));
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_NE(msg.find(tmp.file("model.safetensors.index.json")), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-00002-of-00002.safetensors does not exist"), std::string::npos) << msg;
}

TEST(Checkpoint, IndexEntryAbsentFromShard) {
  TempDir tmp;
  write_sharded(tmp.path());
  write_shard(tmp.file("model-00002-of-00002.safetensors"), {kShard2[0]});
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_NE(msg.find("tensor 'model.layers.0.mlp.up_proj.weight' is mapped to "
                     "model-00002-of-00002.safetensors, which does not contain it"),
            std::string::npos)
      << msg;
}

TEST(Checkpoint, IndexMayNotPointOutsideTheDirectory) {
  TempDir tmp;
  write_config(tmp.path());
  write_file_atomic(tmp.file("model.safetensors.index.json"),
                    R"({"weight_map": {"a": "../elsewhere.safetensors"}})");
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_NE(msg.find("not a file name in the checkpoint directory"), std::string::npos) << msg;
}

TEST(Checkpoint, IndexWithoutWeightMap) {
  TempDir tmp;
  write_config(tmp.path());
  write_file_atomic(tmp.file("model.safetensors.index.json"), R"({"metadata": {}})");
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_EQ(msg, tmp.file("model.safetensors.index.json") + ": no \"weight_map\" object");
}

TEST(Checkpoint, CorruptShardNamesTheShard) {
  TempDir tmp;
  write_sharded(tmp.path());
  write_bytes(tmp.file("model-00001-of-00002.safetensors"), "abc");
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_EQ(msg.rfind(tmp.file("model-00001-of-00002.safetensors") + ": truncated file", 0), 0u)
      << msg;
}

TEST(Checkpoint, BadConfigJsonNamesConfig) {
  TempDir tmp;
  write_file_atomic(tmp.file("config.json"), "{\"hidden_size\": ");
  write_shard(tmp.file("model.safetensors"), kShard1);
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_EQ(msg.rfind(tmp.file("config.json") + ": invalid JSON", 0), 0u) << msg;
}

TEST(Checkpoint, MissingConfig) {
  TempDir tmp;
  write_shard(tmp.file("model.safetensors"), kShard1);
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_EQ(msg.rfind(tmp.file("config.json") + ": missing", 0), 0u) << msg;
}

TEST(Checkpoint, NoWeights) {
  TempDir tmp;
  write_config(tmp.path());
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_NE(msg.find("no model.safetensors"), std::string::npos) << msg;
}

TEST(Checkpoint, SeveralFilesWithoutIndex) {
  TempDir tmp;
  write_config(tmp.path());
  write_shard(tmp.file("a.safetensors"), kShard1);
  write_shard(tmp.file("b.safetensors"), kShard2);
  const std::string msg = format_error_of([&] { Checkpoint::open(tmp.path()); });
  EXPECT_NE(msg.find("2 .safetensors files but no model.safetensors.index.json"), std::string::npos)
      << msg;
}

TEST(Checkpoint, NotADirectoryIsIoError) {
  TempDir tmp;
  EXPECT_THROW(Checkpoint::open(tmp.file("absent")), IoError);
  write_config(tmp.path());
  EXPECT_THROW(Checkpoint::open(tmp.file("config.json")), IoError);
}

TEST(Checkpoint, MissingTensorNamesCheckpointAndTensor) {
  TempDir tmp;
  write_sharded(tmp.path());
  const Checkpoint ckpt = Checkpoint::open(tmp.path());
  const std::string msg = format_error_of([&] { ckpt.info("model.layers.9.mlp.up_proj.weight"); });
  EXPECT_EQ(msg, tmp.path() + ": checkpoint has no tensor 'model.layers.9.mlp.up_proj.weight'");
  EXPECT_THROW(ckpt.data("nope"), FormatError);
  EXPECT_THROW(ckpt.shard_of("nope"), FormatError);
}

// ---- architectures --------------------------------------------------------------------

TEST(Architecture, FromArchitecturesOrModelType) {
  using nlohmann::json;
  EXPECT_EQ(detect_architecture(json{{"architectures", {"LlamaForCausalLM"}}}, "c"),
            Architecture::Llama);
  EXPECT_EQ(detect_architecture(json{{"architectures", {"Qwen2ForCausalLM"}}}, "c"),
            Architecture::Qwen2);
  EXPECT_EQ(detect_architecture(json{{"architectures", {"BitNetForCausalLM"}}}, "c"),
            Architecture::BitNet);
  EXPECT_EQ(detect_architecture(json{{"model_type", "llama"}}, "c"), Architecture::Llama);
  EXPECT_EQ(detect_architecture(json{{"model_type", "qwen2"}}, "c"), Architecture::Qwen2);
  EXPECT_EQ(detect_architecture(json{{"model_type", "bitnet"}}, "c"), Architecture::BitNet);
  // An unknown class falls back to model_type.
  EXPECT_EQ(
      detect_architecture(json{{"architectures", {"LlamaModel"}}, {"model_type", "llama"}}, "c"),
      Architecture::Llama);
  EXPECT_STREQ(architecture_name(Architecture::Qwen2), "Qwen2");
  EXPECT_STREQ(architecture_class(Architecture::BitNet), "BitNetForCausalLM");
  EXPECT_STREQ(architecture_model_type(Architecture::Llama), "llama");
}

TEST(Architecture, UnsupportedNamesConfigAndArchitecture) {
  using nlohmann::json;
  const std::string msg = format_error_of([] {
    detect_architecture(json{{"architectures", {"MistralForCausalLM"}}, {"model_type", "mistral"}},
                        "/m/config.json");
  });
  EXPECT_EQ(msg,
            "/m/config.json: unsupported architecture 'MistralForCausalLM' "
            "(supported: Llama, Qwen2, BitNet)");
  const std::string none = format_error_of([] { detect_architecture(json::object(), "x.json"); });
  EXPECT_NE(none.find("x.json: unsupported architecture '(none"), std::string::npos) << none;
}

// ---- linear layers --------------------------------------------------------------------

TEST(LinearKind, RecognizesWeightNames) {
  EXPECT_EQ(linear_kind_of("model.layers.0.self_attn.q_proj.weight"), LinearKind::Q);
  EXPECT_EQ(linear_kind_of("model.layers.12.self_attn.k_proj.weight"), LinearKind::K);
  EXPECT_EQ(linear_kind_of("model.layers.3.self_attn.v_proj.weight"), LinearKind::V);
  EXPECT_EQ(linear_kind_of("model.layers.3.self_attn.o_proj.weight"), LinearKind::O);
  EXPECT_EQ(linear_kind_of("model.layers.47.mlp.gate_proj.weight"), LinearKind::Gate);
  EXPECT_EQ(linear_kind_of("model.layers.47.mlp.up_proj.weight"), LinearKind::Up);
  EXPECT_EQ(linear_kind_of("model.layers.47.mlp.down_proj.weight"), LinearKind::Down);
  const auto parsed = parse_linear_weight_name("model.layers.29.mlp.down_proj.weight");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->layer, 29);
  for (const char* other :
       {"model.layers.0.self_attn.q_proj.bias", "model.layers.0.input_layernorm.weight",
        "model.layers.0.mlp.q_proj.weight", "model.layers.0.self_attn.up_proj.weight",
        "model.layers.01.mlp.up_proj.weight", "model.layers.x.mlp.up_proj.weight",
        "model.layers..mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight.scale",
        "layers.0.mlp.up_proj.weight", "model.embed_tokens.weight", "lm_head.weight",
        "model.layers.99999999999999999999.mlp.up_proj.weight", ""})
    EXPECT_FALSE(linear_kind_of(other)) << other;
}

TEST(LinearKind, NamesRoundTrip) {
  for (const LinearKind kind : all_linear_kinds()) {
    EXPECT_EQ(parse_linear_kind(linear_kind_name(kind)), kind);
    const std::string name = linear_weight_name(7, kind);
    const auto parsed = parse_linear_weight_name(name);
    ASSERT_TRUE(parsed) << name;
    EXPECT_EQ(parsed->layer, 7);
    EXPECT_EQ(parsed->kind, kind);
  }
  EXPECT_EQ(linear_weight_name(2, LinearKind::Gate), "model.layers.2.mlp.gate_proj.weight");
  EXPECT_EQ(linear_weight_name(0, LinearKind::O), "model.layers.0.self_attn.o_proj.weight");
  EXPECT_THROW(parse_linear_kind("qkv"), InvalidArgument);
  EXPECT_THROW(parse_linear_kind("Q"), InvalidArgument);
}

TEST(LinearKind, ParsesCommaLists) {
  EXPECT_EQ(parse_linear_kinds("q,k,v"),
            (std::vector<LinearKind>{LinearKind::Q, LinearKind::K, LinearKind::V}));
  EXPECT_EQ(parse_linear_kinds("down,q,down"),
            (std::vector<LinearKind>{LinearKind::Down, LinearKind::Q}));
  EXPECT_EQ(parse_linear_kinds("all"), all_linear_kinds());
  EXPECT_EQ(all_linear_kinds().size(), 7u);
  EXPECT_THROW(parse_linear_kinds(""), InvalidArgument);
  EXPECT_THROW(parse_linear_kinds("q,,k"), InvalidArgument);
  EXPECT_THROW(parse_linear_kinds("q,"), InvalidArgument);
  EXPECT_THROW(parse_linear_kinds("q,x"), InvalidArgument);
}

}  // namespace
}  // namespace slidesparse
