#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "convert_fixtures.hpp"
#include "io_fixtures.hpp"
#include "slidesparse/converter.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/verify.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

struct RawTensor {
  TensorSpec spec;
  std::vector<std::uint8_t> bytes;
};

// A converted tiny Llama (hidden 24, intermediate 40) whose tensors and config a test edits
// and writes back as a second checkpoint, to see verify reject the defect.
class VerifyTest : public ::testing::Test {
 protected:
  void convert(const std::string& pattern, Precision precision) {
    const std::string in_dir = tmp_.file("in");
    fs::create_directories(in_dir);
    test::write_tiny_checkpoint(in_dir, Architecture::Llama);
    ConvertOptions options;
    options.pattern = Pattern::parse(pattern);
    options.precision = precision;
    convert_checkpoint(in_dir, tmp_.file("good"), options);
    const Checkpoint good = Checkpoint::open(tmp_.file("good"));
    config_ = good.config();
    for (const auto& shard : good.shards())
      for (const auto& t : shard.tensors())
        tensors_.push_back({{t.name, t.dtype, t.shape},
                            std::vector<std::uint8_t>(shard.data(t), shard.data(t) + t.nbytes())});
  }

  RawTensor& tensor(const std::string& name) {
    for (auto& t : tensors_)
      if (t.spec.name == name) return t;
    throw std::runtime_error("no tensor " + name);
  }

  // Writes the edited checkpoint and returns verify's error message ("" if it passed).
  std::string verify_edited() {
    const std::string dir = tmp_.file("edited");
    fs::remove_all(dir);
    fs::create_directories(dir);
    test::write_text(dir + "/config.json", config_.dump());
    std::vector<TensorSpec> specs;
    for (const auto& t : tensors_) specs.push_back(t.spec);
    SafetensorsWriter writer(dir + "/model.safetensors", specs);
    for (const auto& t : tensors_) writer.write(t.spec.name, t.bytes.data(), t.bytes.size());
    writer.finish();
    try {
      verify_checkpoint(dir);
    } catch (const FormatError& e) {
      return e.what();
    }
    return "";
  }

  TempDir tmp_;
  nlohmann::json config_;
  std::vector<RawTensor> tensors_;
};

constexpr const char* kQ = "model.layers.0.self_attn.q_proj.weight";
constexpr const char* kScale = "model.layers.1.mlp.up_proj.weight_scale";

TEST_F(VerifyTest, AcceptsAConversion) {
  convert("6:8", Precision::INT8);
  const VerifyReport report = verify_checkpoint(tmp_.file("good"));
  EXPECT_EQ(report.layers_checked, 14);
  EXPECT_EQ(report.info.pattern, Pattern::parse("2_8"));
  EXPECT_EQ(report.info.precision, Precision::INT8);
  EXPECT_GT(report.tensors, 14);
  EXPECT_EQ(verify_edited(), "");  // the round trip through the test's writer is faithful
}

TEST_F(VerifyTest, RejectsAWindowWithThreeNonZeros) {
  convert("6:8", Precision::INT8);
  auto& q = tensor(kQ);  // [24, 36]
  for (int c = 4; c < 7; ++c) q.bytes[2 * 36 + c] = 5;
  const std::string error = verify_edited();
  EXPECT_NE(error.find(std::string(kQ) + ": row 2, window 1"), std::string::npos) << error;
  EXPECT_NE(error.find("not 2:4"), std::string::npos) << error;
}

TEST_F(VerifyTest, RejectsTwoValuesClaimingOneColumn) {
  convert("6:8", Precision::INT8);
  auto& q = tensor(kQ);
  // Group 0 of row 1: window 0 holds columns 0..3 (slots 0..3), window 1 columns 2..5
  // (slots 4..7): slot 2 and slot 4 both claim column 2.
  std::memset(&q.bytes[1 * 36], 0, 12);
  q.bytes[1 * 36 + 2] = 3;
  q.bytes[1 * 36 + 4] = 4;
  const std::string error = verify_edited();
  EXPECT_NE(error.find(std::string(kQ) + ": row 1 cannot be un-slid"), std::string::npos) << error;
}

TEST_F(VerifyTest, RejectsAValueInThePadding) {
  convert("8:10", Precision::INT8);
  auto& q = tensor(kQ);  // K = 24 → K_pad = 30 → 3 groups of 16 slots: [24, 48]
  // Window 2 of group 2 (slots 40..43) covers columns 24..27: padding.
  std::memset(&q.bytes[7 * 48 + 40], 0, 4);
  q.bytes[7 * 48 + 40] = 9;
  const std::string error = verify_edited();
  EXPECT_NE(error.find(std::string(kQ) + ": row 7 cannot be un-slid"), std::string::npos) << error;
}

TEST_F(VerifyTest, RejectsBadScales) {
  convert("4:6", Precision::FP8);
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    auto& scale = tensor(kScale);
    const auto saved = scale.bytes;
    std::memcpy(&scale.bytes[4 * 6], &bad, 4);
    const std::string error = verify_edited();
    EXPECT_NE(error.find(std::string(kScale) + ": row 6 has scale"), std::string::npos) << error;
    scale.bytes = saved;
  }
}

TEST_F(VerifyTest, RejectsNaNWeights) {
  convert("4:6", Precision::FP8);
  auto& q = tensor(kQ);  // [24, 32]
  std::memset(&q.bytes[3 * 32 + 8], 0, 4);
  q.bytes[3 * 32 + 9] = 0x7F;  // E4M3 NaN
  const std::string error = verify_edited();
  EXPECT_NE(error.find(std::string(kQ) + ": row 3, column 9 holds NaN"), std::string::npos)
      << error;
}

TEST_F(VerifyTest, RejectsWrongDtypeShapeOrMissingTensor) {
  convert("6:8", Precision::INT8);
  config_["slidesparse"]["dtype"] = "fp8";
  std::string error = verify_edited();
  EXPECT_NE(error.find(std::string(kQ) + ": dtype I8, expected F8_E4M3"), std::string::npos)
      << error;

  config_["slidesparse"]["dtype"] = "int8";
  config_["slidesparse"]["layers"]["model.layers.0.self_attn.q_proj"]["n"] = 25;
  error = verify_edited();
  EXPECT_NE(error.find(std::string(kQ) + ": shape [24, 36], expected [25, 36]"), std::string::npos)
      << error;

  config_["slidesparse"]["layers"]["model.layers.0.self_attn.q_proj"]["n"] = 24;
  tensors_.erase(std::remove_if(tensors_.begin(), tensors_.end(),
                                [](const RawTensor& t) { return t.spec.name == kScale; }),
                 tensors_.end());
  error = verify_edited();
  EXPECT_NE(error.find("has no tensor " + std::string(kScale)), std::string::npos) << error;
}

TEST_F(VerifyTest, RejectsABadSection) {
  convert("6:8", Precision::INT8);
  const nlohmann::json good = config_;
  config_["slidesparse"]["format_version"] = 2;
  EXPECT_NE(verify_edited().find("format_version 2 is not supported"), std::string::npos);
  config_ = good;
  config_["slidesparse"]["pattern"] = "3:8";
  EXPECT_NE(verify_edited().find("invalid sparsity pattern '3:8'"), std::string::npos);
  config_ = good;
  config_["slidesparse"]["layers"]["model.layers.0.mlp.down_proj"]["k_slide"] = 40;
  EXPECT_NE(
      verify_edited().find("k_slide 40 does not match pattern 6:8 (2_8) for k 40 (expected 60)"),
      std::string::npos);
  config_ = good;
  config_["slidesparse"].erase("prune");
  EXPECT_NE(verify_edited().find("missing field 'prune'"), std::string::npos);
  config_ = good;
  config_.erase("slidesparse");
  const std::string error = verify_edited();
  EXPECT_NE(error.find("config.json: no \"slidesparse\" section"), std::string::npos) << error;
}

TEST(ReadConvertedInfo, OrdersLayersByModelOrderAndRoundTrips) {
  ConvertedModelInfo info;
  info.pattern = Pattern::parse("4:6");
  info.precision = Precision::BF16;
  info.prune = PruneMode::None;
  for (const char* prefix : {"model.layers.10.mlp.down_proj", "model.layers.2.self_attn.v_proj",
                             "model.layers.2.self_attn.q_proj"})
    info.layers.push_back({prefix, 16, 12, info.pattern.k_slide(12)});
  const nlohmann::json config = {{"model_type", "llama"},
                                 {"slidesparse", converted_info_json(info)}};
  const ConvertedModelInfo read = read_converted_info(config, "config.json");
  EXPECT_EQ(read.pattern, info.pattern);
  EXPECT_EQ(read.precision, Precision::BF16);
  EXPECT_EQ(read.prune, PruneMode::None);
  ASSERT_EQ(read.layers.size(), 3u);
  EXPECT_EQ(read.layers[0].prefix, "model.layers.2.self_attn.q_proj");
  EXPECT_EQ(read.layers[1].prefix, "model.layers.2.self_attn.v_proj");
  EXPECT_EQ(read.layers[2].prefix, "model.layers.10.mlp.down_proj");
  EXPECT_EQ(read.layers[2].k_slide, 16);
  ASSERT_NE(read.find("model.layers.2.self_attn.v_proj"), nullptr);
  EXPECT_EQ(read.find("model.layers.3.self_attn.v_proj"), nullptr);
  EXPECT_EQ(config.at("slidesparse").at("pattern_paper"), "4:6");
}

}  // namespace
}  // namespace slidesparse
