// The `pipeline` and `report` commands end to end, through the built `slidesparse`
// executable (skipped where it is not built), with the fake command running the jobs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "slidesparse/pipeline/status.hpp"

extern char** environ;

namespace slidesparse::pipeline {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(SLIDESPARSE_TEST_DATA_DIR) + "/pipeline";
const std::string kCli = SLIDESPARSE_CLI_PATH;

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class PipelineCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kCli)) GTEST_SKIP() << "the slidesparse command is not built (" << kCli << ")";
    dir_ = fs::temp_directory_path() /
           ("cli_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
            "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "fake");
    fs::copy_file(kData + "/info_h100.txt", dir_ / "fake" / "info.txt");
    std::ofstream(dir_ / "fake" / "has_info");
    std::ofstream(dir_ / "plan.toml")
        << "tasks = [\"prepare\", \"kernel-high\"]\nmodels = [\"llama3.2-1b\"]\n"
           "dtypes = [\"int8\"]\npatterns = [\"2_8\"]\n[M]\nkernel = [64, 128]\n";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Starts the command with the fake as its job runner; output into dir_/output.txt.
  pid_t start(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {kCli};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c_argv;
    for (auto& a : argv) c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    std::vector<std::string> env = {"FAKE=" + (dir_ / "fake").string()};
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    std::vector<char*> c_env;
    for (auto& e : env) c_env.push_back(e.data());
    c_env.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string output = (dir_ / "output.txt").string();
    posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, kCli.c_str(), &actions, nullptr, c_argv.data(), c_env.data()), 0);
    posix_spawn_file_actions_destroy(&actions);
    return pid;
  }

  // Runs it to the end: the raw wait status.
  int run(const std::vector<std::string>& args) {
    int status = 0;
    waitpid(start(args), &status, 0);
    return status;
  }

  std::string output() const { return read(dir_ / "output.txt"); }
  std::string path(const std::string& relative) const { return (dir_ / relative).string(); }
  std::vector<std::string> with_fake(std::vector<std::string> args) const {
    args.insert(args.end(), {"--exe", kData + "/fake_slidesparse.sh"});
    return args;
  }

  fs::path dir_;
};

TEST_F(PipelineCli, ABadPlanIsRefusedNamingTheLine) {
  std::ofstream(path("bad.toml"))
      << "tasks = [\"prepare\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\",\n  \"int4\"]\n";
  const int status = run(with_fake({"pipeline", path("bad.toml"), "--out", path("out")}));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(output().find("slidesparse: error: " + path("bad.toml") + ":4: unknown dtype 'int4'"),
            std::string::npos)
      << output();
  EXPECT_FALSE(fs::exists(path("out")));  // nothing ran
}

TEST_F(PipelineCli, RunsThePlanWritesTheReportAndResumes) {
  const int status =
      run(with_fake({"pipeline", path("plan.toml"), "--out", path("out"), "--no-plots"}));
  ASSERT_TRUE(WIFEXITED(status)) << output();
  EXPECT_EQ(WEXITSTATUS(status), 0) << output();
  EXPECT_NE(output().find("4 jobs: 4 passed, 0 failed, 0 skipped, 0 not run"), std::string::npos)
      << output();
  EXPECT_TRUE(fs::exists(path("out/report.md")));
  EXPECT_TRUE(fs::exists(path("out/logs/run-001.log")));
  // Again without --resume: refused, nothing overwritten.
  const int again = run(with_fake({"pipeline", path("plan.toml"), "--out", path("out")}));
  EXPECT_EQ(WEXITSTATUS(again), 1);
  EXPECT_NE(output().find("continue it with --resume"), std::string::npos) << output();
  const int resumed = run(
      with_fake({"pipeline", path("plan.toml"), "--out", path("out"), "--resume", "--no-plots"}));
  EXPECT_EQ(WEXITSTATUS(resumed), 0) << output();
  EXPECT_NE(output().find("[4/4] kernel-high/llama3.2-1b/int8  passed earlier"), std::string::npos)
      << output();
  // The report command alone.
  const int report = run({"report", path("out"), "--no-plots"});
  EXPECT_EQ(WEXITSTATUS(report), 0) << output();
  EXPECT_NE(output().find("report " + path("out") + "/report.md"), std::string::npos) << output();
}

TEST_F(PipelineCli, CtrlCStopsCleanlyAndTheRunResumes) {
  std::ofstream(dir_ / "fake" / "slow_kernel");
  const pid_t pid =
      start(with_fake({"pipeline", path("plan.toml"), "--out", path("out"), "--no-plots"}));
  // Wait until the kernel job runs, then Ctrl-C the pipeline (not its child).
  for (int i = 0; i < 1000 && read(dir_ / "fake" / "calls.log").find("bench kernel --preset") ==
                                  std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto sent = std::chrono::steady_clock::now();
  ::kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  EXPECT_LT(seconds, 10.0);
  ASSERT_TRUE(WIFSIGNALED(status)) << output();  // a shell sees 130
  EXPECT_EQ(WTERMSIG(status), SIGINT);
  EXPECT_NE(output().find("interrupted: continue with"), std::string::npos) << output();
  const PipelineStatus s = PipelineStatus::load(path("out/status.json"));
  EXPECT_EQ(s.find("kernel-high/llama3.2-1b/int8")->status, "interrupted");
  EXPECT_TRUE(s.runs[0].interrupted);

  fs::remove(dir_ / "fake" / "slow_kernel");
  const int resumed = run(
      with_fake({"pipeline", path("plan.toml"), "--out", path("out"), "--resume", "--no-plots"}));
  EXPECT_EQ(WEXITSTATUS(resumed), 0) << output();
  EXPECT_EQ(
      PipelineStatus::load(path("out/status.json")).find("kernel-high/llama3.2-1b/int8")->status,
      "passed");
}

TEST_F(PipelineCli, DryRunAndEstimate) {
  const int dry =
      run({"pipeline", kData + "/../../../plans/default.toml", "--dry-run", "--out", path("out")});
  EXPECT_EQ(WEXITSTATUS(dry), 0) << output();
  EXPECT_NE(output().find("plan 'default': 430 jobs"), std::string::npos) << output();
  ASSERT_EQ(WEXITSTATUS(run(
                with_fake({"pipeline", path("plan.toml"), "--out", path("out"), "--no-plots"}))),
            0);
  const int estimate =
      run(with_fake({"pipeline", path("plan.toml"), "--estimate", "--out", path("out")}));
  EXPECT_EQ(WEXITSTATUS(estimate), 0) << output();
  EXPECT_NE(
      output().find("Projected time of plan 'plan' on NVIDIA H100 80GB HBM3, cc 9.0, CUDA 13.0"),
      std::string::npos)
      << output();
  EXPECT_NE(output().find("measured in " + path("out") + "/status.json"), std::string::npos)
      << output();
}

}  // namespace
}  // namespace slidesparse::pipeline
