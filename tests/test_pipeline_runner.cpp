// The pipeline runner against a stand-in for the `slidesparse` command
// (tests/data/pipeline/fake_slidesparse.sh): statuses of jobs and cases, failures that
// never stop the others, the status file after every job, resume, refusals, Ctrl-C.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/plan.hpp"
#include "slidesparse/pipeline/runner.hpp"
#include "slidesparse/pipeline/status.hpp"

namespace slidesparse::pipeline {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(SLIDESPARSE_TEST_DATA_DIR) + "/pipeline";

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A scratch folder with the fake command's switches and a results folder.
class FakeCommand {
 public:
  FakeCommand() {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("pipeline_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "fake");
    gpu("h100");
    on("has_info");
  }
  ~FakeCommand() { fs::remove_all(dir_); }

  void on(const std::string& name, const std::string& content = "") {
    std::ofstream(dir_ / "fake" / name) << content;
  }
  void off(const std::string& name) { fs::remove(dir_ / "fake" / name); }
  void gpu(const std::string& which) {
    if (which.empty())
      off("info.txt");
    else
      fs::copy_file(kData + "/info_" + which + ".txt", dir_ / "fake" / "info.txt",
                    fs::copy_options::overwrite_existing);
  }

  std::string results() const { return (dir_ / "results").string(); }
  fs::path path(const std::string& relative) const { return dir_ / "results" / relative; }

  PipelineOptions options(bool resume = false) const {
    PipelineOptions o;
    o.results_dir = results();
    o.resume = resume;
    o.launcher = {"/usr/bin/env", "FAKE=" + (dir_ / "fake").string(), "/bin/sh",
                  kData + "/fake_slidesparse.sh"};
    o.kill_grace_s = 0.5;
    return o;
  }

  // Calls of the fake whose arguments start with `prefix` (probes with --help excluded).
  int calls(const std::string& prefix) const {
    std::istringstream log(read(dir_ / "fake" / "calls.log"));
    int n = 0;
    for (std::string line; std::getline(log, line);)
      n += line.rfind(prefix, 0) == 0 && line.find("--help") == std::string::npos;
    return n;
  }
  void clear_calls() { fs::remove(dir_ / "fake" / "calls.log"); }

  PipelineStatus status() const { return PipelineStatus::load(results() + "/status.json"); }

 private:
  fs::path dir_;
};

Plan plan_of(const std::string& body) { return parse_plan(body, "test.toml", "/tmp"); }

const char* kPlan = R"(
tasks = ["prepare", "tune-coarse", "prefill", "kernel-high"]
models = ["llama3.2-1b"]
dtypes = ["int8", "fp8"]
patterns = ["2_8"]
layers = 2
[M]
tune = [64, 128]
prefill = [512, 1024]
kernel = [64, 128]
[kernel]
high = ["2_4", "2_8"]
)";

const JobRecord& job(const PipelineStatus& s, const std::string& id) {
  const JobRecord* r = s.find(id);
  if (!r) throw InvalidArgument("no job " + id);
  return *r;
}

TEST(PipelineRunner, AFailingJobNeverStopsTheOthers) {
  FakeCommand fake;
  fake.on("crash_tune");
  const PipelineSummary summary = run_pipeline(plan_of(kPlan), fake.options());
  const PipelineStatus s = fake.status();
  // prepare: make-model + 2 × (convert, verify); tune 2; prefill 2 × 2; kernel 2.
  EXPECT_EQ(summary.jobs, 13);
  EXPECT_EQ(s.jobs.size(), 13u);
  EXPECT_EQ(job(s, "prepare/make-model/llama3.2-1b").status, "passed");
  EXPECT_EQ(job(s, "prepare/verify/llama3.2-1b/fp8/2_8").status, "passed");
  const JobRecord& tune = job(s, "tune-coarse/llama3.2-1b/int8");
  EXPECT_EQ(tune.status, "failed");
  EXPECT_EQ(tune.error_class, "crash: SIGSEGV");
  EXPECT_EQ(tune.message, "killed by SIGSEGV");
  // Both cases crashed with it; each ran again alone (and crashed again).
  ASSERT_EQ(tune.cells.size(), 2u);
  EXPECT_EQ(tune.cells[1].error_class, "crash: SIGSEGV");
  EXPECT_EQ(tune.parts.size(), 2u);
  // The end-to-end command is not in this build: skipped, with the reason, no child run.
  const JobRecord& prefill = job(s, "prefill/llama3.2-1b/int8/2_8");
  EXPECT_EQ(prefill.status, "skipped");
  EXPECT_EQ(prefill.message, "`slidesparse bench e2e` is not in this build");
  EXPECT_EQ(prefill.cells.size(), 2u);
  EXPECT_EQ(prefill.cells[0].status, "skipped");
  EXPECT_EQ(fake.calls("bench e2e"), 0);
  const JobRecord& kernel = job(s, "kernel-high/llama3.2-1b/fp8");
  EXPECT_EQ(kernel.status, "passed");
  EXPECT_EQ(kernel.result_file,
            "kernel-high/llama3.2-1b/fp8/H100_cc90_FP8E4M3_cu130_x86_64/kernel_bench.csv");
  ASSERT_EQ(kernel.cells.size(), 4u);
  for (const CellRecord& c : kernel.cells) EXPECT_EQ(c.status, "passed") << c.pattern << " " << c.m;
  EXPECT_EQ(summary.failed, 2);  // tune, int8 and fp8
  EXPECT_EQ(summary.skipped, 4);
  EXPECT_EQ(summary.passed, 7);
  EXPECT_FALSE(summary.interrupted);
  // The hardware and the run are recorded; the log holds every job's section.
  EXPECT_EQ(s.hardware.identity(), "NVIDIA H100 80GB HBM3, cc 9.0, CUDA 13.0");
  ASSERT_EQ(s.runs.size(), 1u);
  EXPECT_FALSE(s.runs[0].finished.empty());
  const std::string log = read(fake.path(s.runs[0].log));
  EXPECT_NE(log.find("=== tune-coarse/llama3.2-1b/int8: failed after"), std::string::npos);
  EXPECT_NE(log.find("=== tune-coarse/llama3.2-1b/int8/dense/M64 (attempt 1"), std::string::npos);
  // log_line points at the job's section.
  std::istringstream lines(log);
  std::string line;
  for (std::int64_t i = 0; i < tune.log_line; ++i) std::getline(lines, line);
  EXPECT_EQ(line.rfind("=== tune-coarse/llama3.2-1b/int8 (attempt 1", 0), 0u) << line;
}

TEST(PipelineRunner, TheStatusFileIsValidAfterEveryJob) {
  FakeCommand fake;
  PipelineOptions options = fake.options();
  int seen = 0, previous_done = -1;
  options.progress = [&](const std::string&) {
    const PipelineStatus s = fake.status();  // throws if not valid
    int done = 0;
    for (const JobRecord& r : s.jobs) done += r.status != "pending";
    EXPECT_GT(done, previous_done);
    previous_done = done;
    ++seen;
  };
  run_pipeline(plan_of(kPlan), options);
  EXPECT_EQ(seen, 13);
  EXPECT_EQ(previous_done, 13);
}

TEST(PipelineRunner, ResumeKeepsWhatPassedAndRerunsWhatFailed) {
  FakeCommand fake;
  fake.on("crash_tune");
  fake.on("crash_m", "128");
  run_pipeline(plan_of(kPlan), fake.options());
  const PipelineStatus first = fake.status();
  EXPECT_EQ(job(first, "kernel-high/llama3.2-1b/int8").status, "failed");
  // Without --resume the folder is refused: its results are never overwritten.
  try {
    run_pipeline(plan_of(kPlan), fake.options());
    FAIL() << "a second run without --resume was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("continue it with --resume"), std::string::npos)
        << e.what();
  }
  fake.off("crash_tune");
  fake.off("crash_m");
  fake.clear_calls();
  const PipelineSummary summary = run_pipeline(plan_of(kPlan), fake.options(true));
  EXPECT_EQ(summary.failed, 0);
  EXPECT_EQ(summary.passed, 9);
  EXPECT_EQ(fake.calls("tune"), 2);          // the two failed jobs, once each
  EXPECT_EQ(fake.calls("bench kernel"), 2);  // the failed kernel jobs
  EXPECT_EQ(fake.calls("make-model"), 0);    // passed before: not run again
  EXPECT_EQ(fake.calls("convert"), 0);
  const PipelineStatus s = fake.status();
  ASSERT_EQ(s.runs.size(), 2u);
  EXPECT_TRUE(s.runs[1].resumed);
  EXPECT_EQ(s.runs[1].log, "logs/run-002.log");
  const JobRecord& kernel = job(s, "kernel-high/llama3.2-1b/int8");
  EXPECT_EQ(kernel.status, "passed");
  EXPECT_EQ(kernel.attempts, 2);
  EXPECT_EQ(kernel.run, 2);
  EXPECT_TRUE(kernel.parts.empty());
  // The first attempt's output is kept aside, not overwritten.
  ASSERT_EQ(kernel.earlier_outputs.size(), 1u);
  EXPECT_EQ(kernel.earlier_outputs[0], "kernel-high/llama3.2-1b/int8.attempt1");
  EXPECT_TRUE(fs::exists(fake.path("kernel-high/llama3.2-1b/int8.attempt1/cells")));
  EXPECT_EQ(job(s, "prepare/make-model/llama3.2-1b").attempts, 1);
}

TEST(PipelineRunner, ACrashIsNarrowedDownToItsCase) {
  FakeCommand fake;
  fake.on("crash_m", "65536");
  const Plan plan = plan_of(
      "tasks = [\"kernel-high\"]\nmodels = [\"qwen2.5-7b\"]\ndtypes = [\"int8\"]\n[M]\nkernel = "
      "[64, 65536, 128]\n"
      "[kernel]\nhigh = [\"2_8\"]\n");
  run_pipeline(plan, fake.options());
  const PipelineStatus s = fake.status();
  const JobRecord& kernel = job(s, "kernel-high/qwen2.5-7b/int8");
  EXPECT_EQ(kernel.status, "failed");
  EXPECT_EQ(kernel.error_class, "crash: SIGSEGV");
  ASSERT_EQ(kernel.cells.size(), 3u);
  EXPECT_EQ(kernel.cells[0].status, "passed");  // its rows were written before the crash
  EXPECT_EQ(kernel.cells[1].status, "failed");  // crashes alone too
  EXPECT_EQ(kernel.cells[1].error_class, "crash: SIGSEGV");
  EXPECT_EQ(kernel.cells[2].status, "passed");  // lost with the crash, passes alone
  ASSERT_EQ(kernel.parts.size(), 2u);
  EXPECT_EQ(kernel.parts[0].id, "kernel-high/qwen2.5-7b/int8/2_8/M65536");
  EXPECT_EQ(kernel.parts[1].id, "kernel-high/qwen2.5-7b/int8/2_8/M128");
  EXPECT_EQ(
      kernel.parts[1].result_file,
      "kernel-high/qwen2.5-7b/int8/cells/2_8_M128/H100_cc90_INT8_cu130_x86_64/kernel_bench.csv");
  EXPECT_EQ(fake.calls("bench kernel"), 3);
}

TEST(PipelineRunner, CasesPoisonedByAStickyCudaErrorRunAgainAlone) {
  FakeCommand fake;
  fake.on("sticky_m", "256");
  const Plan plan = plan_of(
      "tasks = [\"kernel-high\"]\nmodels = [\"qwen2.5-7b\"]\ndtypes = [\"int8\"]\n[M]\nkernel = "
      "[64, 256, 512, 1024]\n"
      "[kernel]\nhigh = [\"2_8\"]\n");
  run_pipeline(plan, fake.options());
  const PipelineStatus s = fake.status();
  const JobRecord& kernel = job(s, "kernel-high/qwen2.5-7b/int8");
  ASSERT_EQ(kernel.cells.size(), 4u);
  EXPECT_EQ(kernel.cells[0].status, "passed");
  EXPECT_EQ(kernel.cells[1].status, "failed");
  EXPECT_EQ(kernel.cells[1].error_class, "illegal memory access");
  EXPECT_EQ(kernel.cells[2].status, "passed");
  EXPECT_EQ(kernel.cells[3].status, "passed");
  EXPECT_EQ(kernel.parts.size(), 2u);  // 512 and 1024; 256 was the first, its own failure
  EXPECT_EQ(kernel.status, "failed");
  EXPECT_EQ(kernel.message.rfind(
                "1 of 4 cases failed; first: cuSPARSELt: CUDA error: an illegal memory access", 0),
            0u)
      << kernel.message;
}

TEST(PipelineRunner, FP8IsSkippedOnAGpuWithoutIt) {
  FakeCommand fake;
  fake.gpu("a100");
  run_pipeline(plan_of(kPlan), fake.options());
  const PipelineStatus s = fake.status();
  const JobRecord& fp8 = job(s, "kernel-high/llama3.2-1b/fp8");
  EXPECT_EQ(fp8.status, "skipped");
  EXPECT_EQ(fp8.message, "no FP8 on cc 8.0 (needs 8.9 or newer)");
  EXPECT_EQ(job(s, "kernel-high/llama3.2-1b/int8").status, "passed");
  EXPECT_EQ(job(s, "prepare/convert/llama3.2-1b/fp8/2_8").status,
            "passed");  // converting needs no GPU
  EXPECT_EQ(fake.calls("bench kernel --preset llama3.2-1b --dtype fp8"), 0);
  EXPECT_EQ(fake.calls("tune --preset llama3.2-1b --dtype fp8"), 0);
}

TEST(PipelineRunner, WithoutAGpuTheGpuJobsAreSkipped) {
  FakeCommand fake;
  fake.gpu("");
  const PipelineSummary summary = run_pipeline(plan_of(kPlan), fake.options());
  const PipelineStatus s = fake.status();
  EXPECT_FALSE(s.hardware.gpu);
  EXPECT_EQ(s.hardware.no_gpu_reason,
            "no CUDA device: cudaGetDeviceCount: no CUDA-capable device is detected");
  EXPECT_EQ(job(s, "kernel-high/llama3.2-1b/int8").message, s.hardware.no_gpu_reason);
  EXPECT_EQ(job(s, "tune-coarse/llama3.2-1b/int8").status, "skipped");
  EXPECT_EQ(summary.passed, 5);  // prepare
  EXPECT_EQ(summary.skipped, 8);
  EXPECT_EQ(summary.failed, 0);
  // A build without `info` at all says so.
  FakeCommand cpu_build;
  cpu_build.off("has_info");
  run_pipeline(plan_of(kPlan), cpu_build.options());
  EXPECT_EQ(cpu_build.status().hardware.no_gpu_reason,
            "`slidesparse info` is not in this build (built without CUDA)");
}

TEST(PipelineRunner, AFailedDependencySkipsWhatNeedsIt) {
  FakeCommand fake;
  fake.on("fail_convert");
  fake.on("has_e2e");
  run_pipeline(plan_of(kPlan), fake.options());
  const PipelineStatus s = fake.status();
  const JobRecord& convert = job(s, "prepare/convert/llama3.2-1b/int8/2_8");
  EXPECT_EQ(convert.status, "failed");
  EXPECT_EQ(convert.error_class, "file error");
  EXPECT_EQ(job(s, "prepare/verify/llama3.2-1b/int8/2_8").message,
            "needs prepare/convert/llama3.2-1b/int8/2_8, which failed");
  EXPECT_EQ(job(s, "prefill/llama3.2-1b/int8/2_8").message,
            "needs prepare/verify/llama3.2-1b/int8/2_8, which was skipped");
  // The dense baseline needs only the made model: it runs.
  const JobRecord& dense = job(s, "prefill/llama3.2-1b/int8/dense");
  EXPECT_EQ(dense.status, "passed");
  ASSERT_EQ(dense.cells.size(), 2u);
  EXPECT_EQ(dense.cells[1].m, 1024);
  EXPECT_EQ(dense.cells[1].status, "passed");
}

TEST(PipelineRunner, ATimeoutFailsTheJobAndTheRunGoesOn) {
  FakeCommand fake;
  fake.on("slow_tune");
  std::string body = kPlan;
  body += "[timeout]\ntune-coarse = 0.3\n";
  const auto start = std::chrono::steady_clock::now();
  run_pipeline(plan_of(body), fake.options());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
  const PipelineStatus s = fake.status();
  const JobRecord& tune = job(s, "tune-coarse/llama3.2-1b/int8");
  EXPECT_EQ(tune.status, "failed");
  EXPECT_EQ(tune.error_class, "timeout");
  EXPECT_TRUE(tune.parts.empty());  // a slow job is not split into slow cases
  EXPECT_EQ(job(s, "kernel-high/llama3.2-1b/int8").status, "passed");
}

TEST(PipelineRunner, AnInterruptStopsCleanlyAndTheRunResumes) {
  FakeCommand fake;
  fake.on("slow_kernel");
  std::atomic<bool> stop{false};
  PipelineOptions options = fake.options();
  options.interrupted = [&] { return stop.load(); };
  std::thread later([&] {  // Ctrl-C while the first kernel job runs
    for (int i = 0; i < 1000 && fake.calls("bench kernel") == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stop = true;
  });
  const PipelineSummary summary = run_pipeline(plan_of(kPlan), options);
  later.join();
  EXPECT_TRUE(summary.interrupted);
  const PipelineStatus s = fake.status();
  EXPECT_TRUE(s.runs[0].interrupted);
  EXPECT_EQ(job(s, "kernel-high/llama3.2-1b/int8").status, "interrupted");
  EXPECT_EQ(job(s, "kernel-high/llama3.2-1b/fp8").status, "pending");
  EXPECT_EQ(summary.not_run, 2);

  fake.off("slow_kernel");
  const PipelineSummary resumed = run_pipeline(plan_of(kPlan), fake.options(true));
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(resumed.not_run, 0);
  EXPECT_EQ(job(fake.status(), "kernel-high/llama3.2-1b/fp8").status,
            "passed");  // a copy, compared at once
}

TEST(PipelineRunner, EachGemmCaseHasItsOwnStatusAndResult) {
  FakeCommand fake;
  fake.on("has_e2e");
  fake.on("crash_m", "1024");
  fake.on("crash_backend", "sparse-cutlass");
  const Plan plan = plan_of(R"(
tasks = ["prefill"]
models = ["llama3.2-1b"]
dtypes = ["fp8"]
patterns = ["2_8"]
sparse_backends = ["cusparselt", "cutlass"]
dense_gemms = ["auto", "cublaslt_fused"]
[M]
prefill = [512, 1024]
)");
  run_pipeline(plan, fake.options());
  const PipelineStatus s = fake.status();
  ASSERT_EQ(s.jobs.size(), 4u);
  const std::string gpu = "H100_cc90_FP8E4M3_cu130_x86_64";
  // Every case found its rows in its own job's CSV.
  for (const char* id :
       {"prefill/llama3.2-1b/fp8/dense", "prefill/llama3.2-1b/fp8/dense+cublaslt_fused",
        "prefill/llama3.2-1b/fp8/2_8"}) {
    const JobRecord& r = job(s, id);
    EXPECT_EQ(r.status, "passed") << id << ": " << r.message;
    EXPECT_EQ(r.result_file, std::string(id) + "/" + gpu + "/e2e_prefill.csv");
    ASSERT_EQ(r.cells.size(), 2u);
    for (const CellRecord& c : r.cells) EXPECT_EQ(c.status, "passed") << id << " M=" << c.m;
  }
  EXPECT_EQ(job(s, "prefill/llama3.2-1b/fp8/dense+cublaslt_fused").backend, "dense-cublaslt_fused");
  EXPECT_NE(
      read(fake.path("prefill/llama3.2-1b/fp8/dense+cublaslt_fused/" + gpu + "/e2e_prefill.csv"))
          .find("dense-cublaslt_fused,dense,fp8,512"),
      std::string::npos);
  // The CUTLASS case that crashes is narrowed down in its own job, on its own GEMM.
  const JobRecord& cutlass = job(s, "prefill/llama3.2-1b/fp8/2_8+cutlass");
  EXPECT_EQ(cutlass.backend, "sparse-cutlass");
  EXPECT_EQ(cutlass.status, "failed");
  ASSERT_EQ(cutlass.cells.size(), 2u);
  EXPECT_EQ(cutlass.cells[0].status, "passed");
  EXPECT_EQ(cutlass.cells[1].error_class, "crash: SIGSEGV");
  ASSERT_EQ(cutlass.parts.size(), 1u);
  EXPECT_EQ(cutlass.cells[1].pattern, "2_8+cutlass");  // the report's column
  EXPECT_EQ(cutlass.parts[0].id, "prefill/llama3.2-1b/fp8/2_8+cutlass/2_8+cutlass/M1024");
  EXPECT_NE(std::find(cutlass.parts[0].argv.begin(), cutlass.parts[0].argv.end(), "cutlass"),
            cutlass.parts[0].argv.end());
  EXPECT_EQ(fake.calls("bench e2e"), 5);
  // Resume reruns that job alone.
  fake.off("crash_m");
  fake.clear_calls();
  const PipelineSummary resumed = run_pipeline(plan, fake.options(true));
  EXPECT_EQ(resumed.passed, 4);
  EXPECT_EQ(fake.calls("bench e2e"), 1);
  EXPECT_EQ(
      fake.calls("bench e2e " + fake.results() +
                 "/models/llama3.2-1b-2_8-fp8 --stage "
                 "prefill --M 512,1024 --backend sparse --pattern 2_8 --sparse-backend cutlass"),
      1);
}

TEST(PipelineRunner, AFolderFromBeforeTheGemmKeysResumes) {
  // old_run/status.json: written by the pipeline before plans named GEMMs, for old_run/plan.toml
  // (whose results it holds: the kernel case M=128 crashed).
  FakeCommand fake;
  fs::create_directories(fake.results());
  fs::copy_file(kData + "/old_run/status.json", fake.results() + "/status.json");
  const Plan plan = load_plan(kData + "/old_run/plan.toml");
  const PipelineStatus before = fake.status();
  const PipelineSummary summary = run_pipeline(plan, fake.options(true));
  EXPECT_EQ(summary.jobs, 6);
  EXPECT_EQ(summary.passed, 6);
  // Its cases are the default GEMMs' cases of today: the same jobs, only the failed one ran.
  const PipelineStatus s = fake.status();
  ASSERT_EQ(s.jobs.size(), before.jobs.size());
  for (std::size_t i = 0; i < s.jobs.size(); ++i) {
    EXPECT_EQ(s.jobs[i].id, before.jobs[i].id);
    EXPECT_EQ(s.jobs[i].backend, before.jobs[i].backend);
  }
  EXPECT_EQ(job(s, "prefill/llama3.2-1b/int8/2_8").backend, "sparse");
  EXPECT_EQ(job(s, "prefill/llama3.2-1b/int8/2_8").run, 1);
  EXPECT_EQ(job(s, "kernel-high/llama3.2-1b/int8").run, 2);
  EXPECT_EQ(fake.calls("bench kernel"), 1);
  EXPECT_EQ(fake.calls("bench e2e"), 0);
  EXPECT_EQ(fake.calls("tune"), 0);
  EXPECT_EQ(s.plan_digest, before.plan_digest);
  EXPECT_EQ(s.plan["sparse_backends"], nlohmann::ordered_json({"cusparselt"}));  // now echoed
}

TEST(PipelineRunner, RefusesAFolderOfAnotherPlanOrGpuOrOfOtherFiles) {
  FakeCommand fake;
  run_pipeline(plan_of(kPlan), fake.options());
  const std::string status_before = read(fake.results() + "/status.json");
  const auto message = [&](const Plan& plan, const PipelineOptions& options) {
    try {
      run_pipeline(plan, options);
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  std::string other = kPlan;
  other.replace(other.find("kernel = [64, 128]"), 18, "kernel = [64, 256]");
  EXPECT_NE(
      message(plan_of(other), fake.options(true)).find("results of two plans are never mixed"),
      std::string::npos);
  // Naming a GEMM makes another plan.
  EXPECT_NE(
      message(plan_of(std::string("sparse_backends = [\"cutlass\"]\n") + kPlan), fake.options(true))
          .find("results of two plans are never mixed"),
      std::string::npos);
  fake.gpu("a100");
  EXPECT_NE(
      message(plan_of(kPlan), fake.options(true))
          .find(
              "holds results of NVIDIA H100 80GB HBM3, cc 9.0, CUDA 13.0; this machine has NVIDIA "
              "A100-SXM4-80GB, cc 8.0, CUDA 13.0"),
      std::string::npos);
  EXPECT_EQ(read(fake.results() + "/status.json"), status_before);  // untouched

  FakeCommand other_files;
  fs::create_directories(other_files.results());
  std::ofstream(other_files.results() + "/notes.txt") << "mine";
  EXPECT_NE(message(plan_of(kPlan), other_files.options())
                .find("is not empty and holds no pipeline status.json"),
            std::string::npos);
  EXPECT_NE(message(plan_of(kPlan), other_files.options(true)).find("nothing to resume"),
            std::string::npos);
}

}  // namespace
}  // namespace slidesparse::pipeline
