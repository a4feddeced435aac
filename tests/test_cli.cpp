// Runs the built `slidesparse` command on good and bad checkpoints: every failure must be
// one clear line on stderr naming the file and the problem, a non-zero exit, and no output
// directory left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "convert_fixtures.hpp"
#include "io_fixtures.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using test::read_all;
using test::TempDir;

// The line of `text` that starts with `start` ("" if none).
std::string line_starting(const std::string& text, const std::string& start) {
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = std::min(text.find('\n', begin), text.size());
    if (text.compare(begin, start.size(), start) == 0) return text.substr(begin, end - begin);
    begin = end + 1;
  }
  return "";
}

struct RunResult {
  int exit_code;
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(SLIDESPARSE_CLI_PATH))
      GTEST_SKIP() << "the slidesparse command is not built: " << SLIDESPARSE_CLI_PATH;
    in_dir_ = tmp_.file("in");
    out_dir_ = tmp_.file("out");
    fs::create_directories(in_dir_);
  }

  RunResult run(const std::string& args) const {
    const std::string command = std::string("'") + SLIDESPARSE_CLI_PATH + "' " + args + " >'" +
                                tmp_.file("stdout") + "' 2>'" + tmp_.file("stderr") + "'";
    const int status = std::system(command.c_str());
    RunResult result{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_all(tmp_.file("stdout")),
                     read_all(tmp_.file("stderr"))};
    fs::remove(tmp_.file("stdout"));
    fs::remove(tmp_.file("stderr"));
    return result;
  }

  std::string convert_args(const std::string& extra = "", const std::string& dtype = "int8") const {
    return "convert '" + in_dir_ + "' '" + out_dir_ + "' --pattern 6:8 --dtype " + dtype + " " +
           extra;
  }

  // The run failed with one line on stderr holding every piece of `expected`, and left no
  // output (nor staging directory) beside the input.
  void expect_clean_failure(const RunResult& result, const std::vector<std::string>& expected) {
    EXPECT_NE(result.exit_code, 0);
    ASSERT_FALSE(result.err.empty());
    EXPECT_EQ(result.err.find('\n'), result.err.size() - 1) << "not one line:\n" << result.err;
    for (const auto& piece : expected)
      EXPECT_NE(result.err.find(piece), std::string::npos)
          << "'" << piece << "' missing in: " << result.err;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(tmp_.path())) names.push_back(e.path().filename());
    EXPECT_EQ(names, std::vector<std::string>{"in"});
  }

  void write_good(Architecture a = Architecture::Llama) { test::write_tiny_checkpoint(in_dir_, a); }

  // config.json plus a model.safetensors of the given raw bytes.
  void write_raw(const std::string& bytes) {
    test::write_text(in_dir_ + "/config.json", test::tiny_config(Architecture::Llama).dump());
    test::write_bytes(in_dir_ + "/model.safetensors", bytes);
  }

  std::string model_file() const { return in_dir_ + "/model.safetensors"; }

  TempDir tmp_;
  std::string in_dir_, out_dir_;
};

TEST_F(CliTest, ConvertVerifyInspectDemo) {
  write_good(Architecture::Qwen2);
  RunResult r = run(convert_args("--layers q,k,v,o,gate,up,down --threads 2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("14 linear layers → 6:8 (2_8) INT8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MB/s"), std::string::npos) << r.out;

  r = run("verify '" + out_dir_ + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("OK, 14 layers of 6:8 (2_8) INT8 verified"), std::string::npos) << r.out;

  r = run("inspect '" + out_dir_ + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string scale_line =
      line_starting(r.out, "model.layers.0.self_attn.q_proj.weight_scale ");
  EXPECT_NE(scale_line.find(" F32 "), std::string::npos) << r.out;
  EXPECT_NE(scale_line.find(" [24] "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("slidesparse: format 1, pattern 6:8 (2_8), INT8"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("architecture: Qwen2"), std::string::npos) << r.out;

  r = run("inspect '" + out_dir_ + "/model.safetensors'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << r.out;

  r = run("demo '" + in_dir_ + "' '" + out_dir_ + "' --m 5");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("model.layers.0.self_attn.q_proj  [N=24, K=24 → K_slide=36]  6:8 (2_8) "
                       "INT8: sparse == dense, bit for bit (M=5)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("model.layers.0.mlp.down_proj  [N=24, K=40 → K_slide=60]"),
            std::string::npos)
      << r.out;

  // An existing output is kept without --force.
  r = run(convert_args());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(out_dir_), std::string::npos) << r.err;
  EXPECT_EQ(run("verify '" + out_dir_ + "'").exit_code, 0);
  EXPECT_EQ(run(convert_args("--force", "fp8")).exit_code, 0);
  EXPECT_NE(run("verify '" + out_dir_ + "'").out.find("FP8E4M3"), std::string::npos);
}

// `run` on the tiny Llama checkpoint generates the greedy tokens the independent numpy
// forward recorded (tests/data/models/llama-tiny/expected_logits.json), for a batch of two.
TEST_F(CliTest, RunGeneratesTheReferenceGreedyTokens) {
  const std::string model = std::string(SLIDESPARSE_TEST_DATA_DIR) + "/models/llama-tiny";
  const RunResult result =
      run("run '" + model + "' --prompt-ids 1,17,42,99,5,63,120 --prompt-ids 3,3,3 --max-new 8");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "121 121 121 121 121 121 121 121\n13 13 13 124 124 124 117 117\n");
}

// Slid at load: the SlideSparse linears and their dense baseline generate the same tokens.
TEST_F(CliTest, RunSparseAndDenseLinearsAgree) {
  const std::string model = std::string(SLIDESPARSE_TEST_DATA_DIR) + "/models/qwen2-tiny";
  const std::string args = "run '" + model +
                           "' --prompt-ids 1,17,42,99,5,63,120 --max-new 8 "
                           "--pattern 6:8 --dtype int8 --path ";
  const RunResult sparse = run(args + "sparse");
  const RunResult dense = run(args + "dense");
  ASSERT_EQ(sparse.exit_code, 0) << sparse.err;
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  EXPECT_EQ(sparse.out, dense.out);
  EXPECT_NE(sparse.err.find("SlideSparse 6:8 (2_8) INT8"), std::string::npos) << sparse.err;
}

TEST_F(CliTest, RunRejectsATokenOutsideTheVocabulary) {
  const std::string model = std::string(SLIDESPARSE_TEST_DATA_DIR) + "/models/llama-tiny";
  const RunResult result = run("run '" + model + "' --prompt-ids 1,999 --max-new 2");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("token id 999"), std::string::npos) << result.err;
}

TEST_F(CliTest, BadArgumentsFailWithOneLine) {
  write_good();
  expect_clean_failure(run(convert_args("--prune sometimes")), {"sometimes"});
  expect_clean_failure(run(convert_args("--layers q,qkv")), {"qkv"});
  expect_clean_failure(
      run("convert '" + in_dir_ + "' '" + out_dir_ + "' --pattern 3:8 --dtype int8"), {"3:8"});
  expect_clean_failure(run("verify '" + in_dir_ + "'"),
                       {in_dir_ + "/config.json", "not a SlideSparse checkpoint"});
}

TEST_F(CliTest, TruncatedSafetensorsFile) {
  write_good();
  const std::string bytes = read_all(model_file());
  test::write_bytes(model_file(), bytes.substr(0, bytes.size() / 2));
  expect_clean_failure(run(convert_args()), {model_file()});
}

TEST_F(CliTest, HeaderLengthPastTheEndOfTheFile) {
  write_good();
  std::string bytes = read_all(model_file());
  const std::uint64_t length = bytes.size() + 100;
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  test::write_bytes(model_file(), bytes);
  expect_clean_failure(run(convert_args()), {model_file(), "header"});
}

TEST_F(CliTest, InvalidHeaderJson) {
  write_raw(test::safetensors_bytes("{\"a\": {\"dtype\": \"BF16\", ", "1234"));
  expect_clean_failure(run(convert_args()), {model_file(), "JSON"});
}

TEST_F(CliTest, OverlappingOffsets) {
  write_raw(test::safetensors_bytes(R"({"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[4,12]}})",
                                    std::string(12, '\0')));
  expect_clean_failure(run(convert_args()), {model_file(), "overlap"});
}

TEST_F(CliTest, UnknownDtype) {
  write_raw(test::safetensors_bytes(R"({"a":{"dtype":"Q4","shape":[4],"data_offsets":[0,8]}})",
                                    std::string(8, '\0')));
  expect_clean_failure(run(convert_args()), {model_file(), "Q4"});
}

TEST_F(CliTest, ShapeDoesNotMatchOffsets) {
  write_raw(test::safetensors_bytes(R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})",
                                    std::string(8, '\0')));
  expect_clean_failure(run(convert_args()), {model_file(), "tensor 'a'", "data_offsets"});
}

TEST_F(CliTest, NaNWeights) {
  auto tensors = test::tiny_tensors(Architecture::Llama);
  test::find_tensor(tensors, "model.layers.1.mlp.gate_proj.weight").values[7 * 24 + 5] =
      std::numeric_limits<float>::quiet_NaN();
  test::write_checkpoint(in_dir_, test::tiny_config(Architecture::Llama), tensors);
  expect_clean_failure(
      run(convert_args()),
      {model_file(), "model.layers.1.mlp.gate_proj.weight: row 7, column 5 holds NaN"});
}

TEST_F(CliTest, MissingShard) {
  test::write_checkpoint(in_dir_, test::tiny_config(Architecture::Llama),
                         test::tiny_tensors(Architecture::Llama), 2);
  const std::string missing = in_dir_ + "/model-00002-of-00002.safetensors";
  fs::remove(missing);
  expect_clean_failure(run(convert_args()), {"model-00002-of-00002.safetensors"});
}

TEST_F(CliTest, UnknownArchitecture) {
  auto config = test::tiny_config(Architecture::Llama);
  config["architectures"] = {"GPT2LMHeadModel"};
  config["model_type"] = "gpt2";
  test::write_checkpoint(in_dir_, config, test::tiny_tensors(Architecture::Llama));
  expect_clean_failure(run(convert_args()), {in_dir_ + "/config.json", "GPT2LMHeadModel"});
}

TEST_F(CliTest, PatternViolatedWithPruneNone) {
  write_good(Architecture::BitNet);
  expect_clean_failure(
      run(convert_args("--prune none")),
      {model_file(), "model.layers.0.self_attn.q_proj.weight: row 0, group", "--prune magnitude"});
}

// Real model shapes, cut to one layer: make-model → convert → verify, and Ctrl-C.
class CliPresetTest : public CliTest, public ::testing::WithParamInterface<std::string> {
 protected:
  // SIGINT while the output is being written: exit 130, no output, no staging directory.
  void expect_interrupt_leaves_nothing(const std::string& model) {
    const std::string out = tmp_.file("interrupted");
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      std::freopen("/dev/null", "w", stdout);
      std::freopen("/dev/null", "w", stderr);
      execl(SLIDESPARSE_CLI_PATH, "slidesparse", "convert", model.c_str(), out.c_str(), "--pattern",
            "6:8", "--dtype", "int8", static_cast<char*>(nullptr));
      _exit(127);
    }
    auto staging_exists = [&] {
      for (const auto& e : fs::directory_iterator(tmp_.path()))
        if (e.path().filename().string().rfind("interrupted.", 0) == 0) return true;
      return false;
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!staging_exists() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_TRUE(staging_exists()) << "the conversion never started writing";
    kill(child, SIGINT);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 130);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(staging_exists());
  }
};

TEST_P(CliPresetTest, MakeModelConvertVerify) {
  const std::string model = tmp_.file("model");
  RunResult r = run("make-model --preset " + GetParam() + " --layers 1 --seed 3 '" + model + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("random weights (benchmark only)"), std::string::npos) << r.out;
  for (const char* dtype : {"int8", "fp8", "bf16"}) {
    SCOPED_TRACE(dtype);
    const std::string converted = tmp_.file(std::string("converted-") + dtype);
    r = run("convert '" + model + "' '" + converted + "' --pattern 2_8 --dtype " + dtype);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("7 linear layers"), std::string::npos) << r.out;
    r = run("verify '" + converted + "'");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("OK, 7 layers"), std::string::npos) << r.out;
    fs::remove_all(converted);
  }
  expect_interrupt_leaves_nothing(model);
}

INSTANTIATE_TEST_SUITE_P(Presets, CliPresetTest, ::testing::Values("llama3.2-1b", "bitnet-2b"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

}  // namespace
}  // namespace slidesparse
