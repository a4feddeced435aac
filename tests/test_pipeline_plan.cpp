// Plan files: what they may say, and that every kind of bad input is refused before
// anything runs, naming the line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/jobs.hpp"
#include "slidesparse/pipeline/plan.hpp"

namespace slidesparse::pipeline {
namespace {

namespace fs = std::filesystem;

const std::string kRepo = fs::path(SLIDESPARSE_TEST_DATA_DIR).parent_path().parent_path().string();

const char* kValid = R"(# a small plan
name = "small"
tasks = ["prefill", "prepare", "kernel-high"]
models = ["llama3.2-1b", "Qwen2.5-7B"]
dtypes = ["int8", "fp8"]
patterns = ["2_4", "6:8"]
layers = 2

[M]
prefill = [512, 4096]
kernel = [64]

[kernel]
high = ["2_4", "2_8"]

[timeout]
prefill = 120.5
)";

Plan parse(const std::string& text) { return parse_plan(text, "plan.toml", "/tmp"); }

// The message of the InvalidArgument that parsing `text` throws ("" when it parses).
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

TEST(PipelinePlan, ParsesEveryField) {
  const Plan plan = parse(kValid);
  EXPECT_EQ(plan.name, "small");
  ASSERT_EQ(plan.tasks.size(), 3u);  // pipeline order, not the file's
  EXPECT_EQ(plan.tasks[0], Task::Prepare);
  EXPECT_EQ(plan.tasks[1], Task::Prefill);
  EXPECT_EQ(plan.tasks[2], Task::KernelHigh);
  ASSERT_EQ(plan.models.size(), 2u);
  EXPECT_EQ(plan.models[1].name, "qwen2.5-7b");
  EXPECT_TRUE(plan.models[1].is_preset());
  ASSERT_EQ(plan.dtypes.size(), 2u);
  EXPECT_EQ(plan.dtypes[1], Precision::FP8);
  ASSERT_EQ(plan.patterns.size(), 2u);
  EXPECT_EQ(plan.patterns[1].zeros_name(), "2_8");
  EXPECT_EQ(plan.layers, 2);
  EXPECT_EQ(plan.m.prefill, (std::vector<std::int64_t>{512, 4096}));
  EXPECT_EQ(plan.m.kernel, (std::vector<std::int64_t>{64}));
  ASSERT_EQ(plan.kernel_high.size(), 2u);
  EXPECT_EQ(plan.kernel_low.size(), 4u);  // the default low-sparsity list
  EXPECT_DOUBLE_EQ(plan.timeout_for(Task::Prefill), 120.5);
  EXPECT_DOUBLE_EQ(plan.timeout_for(Task::Decode), 3600);
}

TEST(PipelinePlan, RefusesBadInputNamingTheLine) {
  struct Bad {
    std::string text;
    std::string expected;
  };
  const std::string head =
      "tasks = [\"prefill\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\"]\npatterns = "
      "[\"2_8\"]\n";
  const std::vector<Bad> cases = {
      {"tasks = [\"prefill\"]\nmodels = [\"llama9\"]\n", "plan.toml:2: unknown model 'llama9'"},
      {"tasks = [\"prefil\"]\n", "plan.toml:1: unknown task 'prefil'"},
      {"tasks = [\"prefill\"]\nmodels = [\"llama3.2-1b\"]\n\ndtypes = [\"int4\"]\n",
       "plan.toml:4: unknown dtype 'int4'"},
      {"tasks = [\"prefill\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\"]\npatterns = "
       "[\"2_4\",\n  \"3:8\"]\n",
       "plan.toml:5: unknown pattern '3:8'"},
      {head + "[M]\nprefill = [512,\n  -4]\n", "plan.toml:7: M must be a positive integer, got -4"},
      {head + "[M]\nprefill = [\"512x\"]\n",
       "plan.toml:6: M must be a positive integer, got the string '512x'"},
      {head + "[M]\nprefill = [1.5]\n", "plan.toml:6: M must be a positive integer, got 1.5"},
      {head + "[M]\nprefill = [0]\n", "plan.toml:6: M must be a positive integer, got 0"},
      {head + "[M]\nprefill = [64, 64]\n", "plan.toml:6: M = 64 is listed twice"},
      {head + "[M]\ndecode = [64]\n", "plan.toml:1: task 'prefill' needs an M list"},
      {head + "[M]\nprefil = [64]\n", "plan.toml:6: unknown key 'prefil' in [M]"},
      {head + "modles = 3\n", "plan.toml:5: unknown key 'modles'"},
      {head + "layers = -1\n", "plan.toml:5: 'layers' must be a positive integer"},
      {head + "[M]\nprefill = [1]\n[timeout]\nprefill = -5\n",
       "plan.toml:8: timeout 'prefill' must be a positive number"},
      {"tasks = [\"prefill\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\"]\npatterns = "
       "[\"dense\"]\n",
       "plan.toml:4: 'dense' is not a pattern here"},
      {"tasks = [\"prefill\"]\nmodels = [\"llama3.2-1b\", \"llama3.2-1b\"]\n",
       "plan.toml:2: model 'llama3.2-1b' is listed twice"},
      {"tasks = [\"prefill\"\nmodels = 3\n", "plan.toml:2: not valid TOML"},
      {"tasks = \"prefill\"\n", "plan.toml:1: 'tasks' must be a list"},
      {"tasks = [3]\n", "plan.toml:1: each entry of 'tasks' must be a string"},
      {"models = [\"llama3.2-1b\"]\n", "plan.toml: missing 'tasks'"},
      {"tasks = [\"prefill\"]\nmodels = [\"./no/such/folder\"]\n",
       "plan.toml:2: unknown model './no/such/folder'"},
  };
  for (const Bad& bad : cases) {
    const std::string message = error_of(bad.text);
    EXPECT_EQ(message.rfind(bad.expected, 0), 0u) << "plan:\n"
                                                  << bad.text << "\nmessage: " << message;
  }
}

TEST(PipelinePlan, NamesTheGemmsToRun) {
  const std::string head =
      "tasks = [\"prefill\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\", \"fp8\"]\n"
      "patterns = [\"2_8\"]\n[M]\nprefill = [512]\n";
  // Unnamed: the commands' own defaults.
  const Plan plain = parse(head);
  EXPECT_EQ(plain.sparse_backends, (std::vector<std::string>{"cusparselt"}));
  EXPECT_EQ(plain.dense_gemms, (std::vector<std::string>{"auto"}));
  EXPECT_FALSE(plain.dense_fallback);
  EXPECT_FALSE(plain.measures_cutlass(Precision::INT8));
  const Plan plan = parse(
      "sparse_backends = [\"cusparselt\", \"cutlass\", \"auto\"]\n"
      "dense_gemms = [\"auto\", \"cublaslt\", \"cublaslt_fused\", \"cutlass_dense\"]\n"
      "dense_fallback = true\n" +
      head);
  EXPECT_EQ(plan.sparse_backends, (std::vector<std::string>{"cusparselt", "cutlass", "auto"}));
  EXPECT_EQ(plan.dense_gemms,
            (std::vector<std::string>{"auto", "cublaslt", "cublaslt_fused", "cutlass_dense"}));
  EXPECT_TRUE(plan.dense_fallback);
  EXPECT_TRUE(plan.measures_cutlass(Precision::FP8));
  EXPECT_FALSE(plan.measures_cutlass(Precision::BF16));  // CUTLASS takes INT8 and FP8
  // The plan's echo names them (in status.json and the report).
  const auto json = plan_to_json(plan);
  EXPECT_EQ(json["sparse_backends"], nlohmann::ordered_json({"cusparselt", "cutlass", "auto"}));
  EXPECT_EQ(json["dense_gemms"][2], "cublaslt_fused");
  EXPECT_EQ(json["dense_fallback"], true);
  EXPECT_EQ(plan_to_json(plain)["dense_gemms"], nlohmann::ordered_json({"auto"}));
}

TEST(PipelinePlan, RefusesBadGemmsNamingTheLine) {
  const std::string head =
      "tasks = [\"prefill\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\"]\npatterns = "
      "[\"2_8\"]\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {head + "sparse_backends = [\"cusparselt\",\n  \"cutlas\"]\n",
       "plan.toml:6: unknown GEMM 'cutlas' in 'sparse_backends' (expected one of: cusparselt, "
       "cutlass, auto)"},
      {head + "dense_gemms = [\"cutlass\"]\n",
       "plan.toml:5: unknown GEMM 'cutlass' in 'dense_gemms' (expected one of: auto, cublaslt, "
       "cublaslt_fused, cutlass_dense)"},
      {head + "sparse_backends = [\"cutlass\", \"cutlass\"]\n",
       "plan.toml:5: 'cutlass' is listed twice in 'sparse_backends'"},
      {head + "\ndense_gemms = []\n",
       "plan.toml:6: 'dense_gemms' is empty: name at least one (the default is [\"auto\"])"},
      {head + "dense_gemms = \"cublaslt\"\n", "plan.toml:5: 'dense_gemms' must be a list"},
      {head + "sparse_backends = [1]\n",
       "plan.toml:5: each entry of 'sparse_backends' must be a string"},
      {head + "dense_fallback = \"yes\"\n", "plan.toml:5: 'dense_fallback' must be true or false"},
      // A GEMM that runs none of the plan's dtypes would make no case at all.
      {head + "dense_gemms = [\"auto\", \"cublaslt_fused\"]\n",
       "plan.toml:5: 'cublaslt_fused' in 'dense_gemms' runs none of the plan's dtypes (cuBLASLt's "
       "fused dequantization (outer-vector scaling) takes FP8 only)"},
      {"tasks = [\"prefill\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"bf16\"]\n"
       "sparse_backends = [\"cutlass\"]\npatterns = [\"2_8\"]\n",
       "plan.toml:4: 'cutlass' in 'sparse_backends' runs none of the plan's dtypes"},
      {head + "sparse_backend = [\"cutlass\"]\n", "plan.toml:5: unknown key 'sparse_backend'"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string message = error_of(text);
    EXPECT_EQ(message.rfind(expected, 0), 0u) << "plan:\n" << text << "\nmessage: " << message;
  }
}

TEST(PipelinePlan, TakesACheckpointFolderRelativeToThePlan) {
  const fs::path dir = fs::temp_directory_path() / ("plan_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir / "ckpt" / "my-llama");
  std::ofstream(dir / "ckpt" / "my-llama" / "config.json") << "{}";
  const Plan plan = parse_plan(
      "tasks = [\"prepare\", \"kernel-high\"]\nmodels = [\"ckpt/my-llama/\"]\ndtypes = [\"int8\"]\n"
      "patterns = [\"2_8\"]\n[M]\nkernel = [64]\n",
      "plan.toml", dir.string());
  ASSERT_EQ(plan.models.size(), 1u);
  EXPECT_EQ(plan.models[0].name, "my-llama");
  EXPECT_EQ(plan.models[0].checkpoint, (dir / "ckpt" / "my-llama").string());
  // A checkpoint folder is converted as it is (no make-model); the kernel sweep needs preset
  // shapes, so that job is ruled out by the plan itself.
  const auto jobs = expand_jobs(plan, "/results");
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].kind, "convert");
  EXPECT_EQ(jobs[0].args[1], plan.models[0].checkpoint);
  EXPECT_EQ(jobs[2].kind, "kernel-high");
  EXPECT_NE(jobs[2].skip_reason.find("checkpoint folder"), std::string::npos);
  fs::remove_all(dir);
}

TEST(PipelinePlan, DigestIgnoresLayoutCommentsAndTimeouts) {
  const Plan a = parse(kValid);
  std::string reformatted = std::string("# another comment\n") + kValid;
  reformatted.replace(reformatted.find("prefill = 120.5"), 15, "prefill = 99");
  EXPECT_EQ(plan_digest(a), plan_digest(parse(reformatted)));
  std::string other = kValid;
  other.replace(other.find("[512, 4096]"), 11, "[512, 8192]");
  EXPECT_NE(plan_digest(a), plan_digest(parse(other)));
}

TEST(PipelinePlan, GemmKeysAtTheirDefaultsKeepTheDigestOfPlansFromBeforeThem) {
  // tests/data/pipeline/old_run holds a results folder of this plan, written before plans
  // named GEMMs; its status.json records this digest.
  const Plan old =
      load_plan(std::string(SLIDESPARSE_TEST_DATA_DIR) + "/pipeline/old_run/plan.toml");
  EXPECT_EQ(plan_digest(old), "641b2cd91dda5e52");
  const Plan a = parse(kValid);
  const std::string defaults =
      "sparse_backends = [\"cusparselt\"]\ndense_gemms = [\"auto\"]\ndense_fallback = false\n";
  EXPECT_EQ(plan_digest(a), plan_digest(parse(defaults + kValid)));
  for (const char* other :
       {"sparse_backends = [\"cusparselt\", \"cutlass\"]\n", "sparse_backends = [\"cutlass\"]\n",
        "dense_gemms = [\"cublaslt\"]\n", "dense_fallback = true\n"})
    EXPECT_NE(plan_digest(a), plan_digest(parse(other + std::string(kValid)))) << other;
}

TEST(PipelinePlan, TheShippedPlansParse) {
  for (const char* name : {"default", "short", "demo-cpu"}) {
    const Plan plan = load_plan(kRepo + "/plans/" + name + ".toml");
    EXPECT_EQ(plan.name, name);
    EXPECT_FALSE(expand_jobs(plan, "/results").empty()) << name;
  }
}

}  // namespace
}  // namespace slidesparse::pipeline
