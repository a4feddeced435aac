// Child processes of the pipeline: exit codes, signals, time limits, interrupts, and what
// each end means for a job (passed, failed with its class, skipped).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "slidesparse/pipeline/child_process.hpp"
#include "slidesparse/pipeline/interrupt.hpp"
#include "slidesparse/pipeline/probe.hpp"
#include "slidesparse/pipeline/verdict.hpp"

namespace slidesparse::pipeline {
namespace {

namespace fs = std::filesystem;
using End = ChildOutcome::End;

// A file the child writes its output into, read back after it ends.
class Output {
 public:
  Output()
      : path_(fs::temp_directory_path() /
              ("child_out_" + std::to_string(::getpid()) + "_" + std::to_string(next_++))) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  }
  ~Output() {
    ::close(fd_);
    fs::remove(path_);
  }
  int fd() const { return fd_; }
  std::string text() const {
    std::ifstream in(path_);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  static inline int next_ = 0;
  fs::path path_;
  int fd_ = -1;
};

ChildOutcome sh(const std::string& script, Output& out, ChildOptions options = {}) {
  return run_child({"/bin/sh", "-c", "ulimit -c 0; " + script}, out.fd(), options);
}

TEST(PipelineChild, ExitCodeAndOutput) {
  Output out;
  const ChildOutcome ok = sh("echo hello; echo oops >&2; exit 0", out);
  EXPECT_EQ(ok.end, End::Exited);
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(out.text(), "hello\noops\n");
  EXPECT_EQ(judge_child(ok, out.text(), 10).status, "passed");

  Output out2;
  const ChildOutcome bad =
      sh("echo 'slidesparse: error: cuSPARSELt: CUDA error: an illegal memory access was "
         "encountered' >&2; exit 1",
         out2);
  EXPECT_EQ(bad.end, End::Exited);
  EXPECT_EQ(bad.exit_code, 1);
  const Verdict v = judge_child(bad, out2.text(), 10);
  EXPECT_EQ(v.status, "failed");
  EXPECT_EQ(v.error_class, "illegal memory access");
  EXPECT_EQ(v.message, "cuSPARSELt: CUDA error: an illegal memory access was encountered");
}

TEST(PipelineChild, ACrashIsASignalNotAnExitCode) {
  Output out;
  const ChildOutcome o = sh("echo 'slidesparse: error: before the crash'; kill -SEGV $$", out);
  EXPECT_EQ(o.end, End::Signaled);
  EXPECT_EQ(o.signal, SIGSEGV);
  const Verdict v = judge_child(o, out.text(), 10);
  EXPECT_EQ(v.status, "failed");
  EXPECT_EQ(v.error_class, "crash: SIGSEGV");
  EXPECT_EQ(v.message, "before the crash");
  Output out2;
  EXPECT_EQ(judge_child(sh("kill -ABRT $$", out2), "", 10).message, "killed by SIGABRT");
}

TEST(PipelineChild, ATimeoutStopsTheWholeProcessGroup) {
  Output out;
  ChildOptions options;
  options.timeout_s = 0.2;
  options.kill_grace_s = 0.2;
  const auto start = std::chrono::steady_clock::now();
  // The shell ignores SIGTERM: only SIGKILL after the grace ends it; its sleep goes too.
  const ChildOutcome o = sh("trap '' TERM; sleep 20; echo not reached", out, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(o.end, End::TimedOut);
  EXPECT_LT(seconds, 5.0);
  EXPECT_GE(o.seconds, 0.2);
  const Verdict v = judge_child(o, out.text(), 0.2);
  EXPECT_EQ(v.status, "failed");
  EXPECT_EQ(v.error_class, "timeout");
  EXPECT_EQ(out.text().find("not reached"), std::string::npos);
}

TEST(PipelineChild, LeftoverProcessesOfAJobEndWithIt) {
  Output out;
  const ChildOutcome o = sh("sleep 30 & echo $!; exit 0", out);
  ASSERT_EQ(o.end, End::Exited);
  const std::string pid = out.text().substr(0, out.text().find('\n'));
  ASSERT_FALSE(pid.empty());
  // Gone or a zombie waiting for its new parent: not running.
  bool running = true;
  for (int i = 0; i < 100 && running; ++i) {
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string line;
    running = std::getline(stat, line) && line.find(") Z") == std::string::npos;
    if (running) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(running) << "background process " << pid << " still runs";
}

TEST(PipelineChild, AnInterruptStopsTheChild) {
  Output out;
  std::atomic<bool> stop{false};
  ChildOptions options;
  options.kill_grace_s = 2;
  options.interrupted = [&] { return stop.load(); };
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  const ChildOutcome o = sh("sleep 20", out, options);
  later.join();
  EXPECT_EQ(o.end, End::Interrupted);
  EXPECT_LT(o.seconds, 3.0);
  EXPECT_EQ(judge_child(o, "", 10).status, "interrupted");
}

TEST(PipelineChild, TheChildGetsDefaultSignalsEvenWhenThePipelineBlocksThem) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  Output out;
  const ChildOutcome o = sh("kill -INT $$; sleep 5; exit 0", out);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(o.end, End::Signaled);
  EXPECT_EQ(o.signal, SIGINT);
}

TEST(PipelineChild, AProgramThatCannotStart) {
  Output out;
  const ChildOutcome o = run_child({"/no/such/program"}, out.fd(), {});
  EXPECT_EQ(o.end, End::SpawnFailed);
  EXPECT_NE(o.spawn_error.find("/no/such/program"), std::string::npos);
  const Verdict v = judge_child(o, "", 10);
  EXPECT_EQ(v.status, "failed");
  EXPECT_EQ(v.error_class, "cannot start");
}

TEST(PipelineVerdict, NoCudaDeviceIsASkipNotAFailure) {
  ChildOutcome o;
  o.exit_code = 1;
  const Verdict v = judge_child(o,
                                "loading\nslidesparse: error: no CUDA device: cudaGetDeviceCount: "
                                "no CUDA-capable device is detected\n",
                                10);
  EXPECT_EQ(v.status, "skipped");
  EXPECT_EQ(v.message, "no CUDA device: cudaGetDeviceCount: no CUDA-capable device is detected");
}

TEST(PipelineVerdict, ErrorClassesComeFromOneTable) {
  EXPECT_EQ(classify_error("CUDA error: out of memory (cudaMalloc of 12 GiB)"), "out of memory");
  EXPECT_EQ(classify_error("cusparseLtMatmulPlanInit: CUSPARSE_STATUS_INVALID_VALUE"),
            "cuSPARSELt error");
  EXPECT_EQ(classify_error("cublasLtMatmul: CUBLAS_STATUS_EXECUTION_FAILED"), "cuBLASLt error");
  EXPECT_EQ(classify_error("cudaLaunchKernel: unspecified launch failure"), "launch failure");
  EXPECT_EQ(classify_error("cannot open /x/model.safetensors: No such file or directory"),
            "file error");
  EXPECT_EQ(classify_error("FP8 is not supported on cc 8.0"), "not supported");
  EXPECT_EQ(classify_error("shape mismatch in q_proj"), "error");
  EXPECT_TRUE(is_sticky_device_error("illegal memory access"));
  EXPECT_TRUE(is_sticky_device_error("launch failure"));
  EXPECT_FALSE(is_sticky_device_error("out of memory"));

  ChildOutcome usage;
  usage.exit_code = 109;
  const Verdict u = judge_child(
      usage,
      "The following argument was not expected: --foo\nRun with --help for more information.\n",
      10);
  EXPECT_EQ(u.error_class, "usage error");
  EXPECT_EQ(u.message, "The following argument was not expected: --foo");
  ChildOutcome internal;
  internal.exit_code = 2;
  EXPECT_EQ(judge_child(internal, "slidesparse: internal error: std::bad_alloc\n", 10).error_class,
            "internal error");
  ChildOutcome silent;
  silent.exit_code = 7;
  const Verdict s = judge_child(silent, "", 10);
  EXPECT_EQ(s.error_class, "exit 7");
  EXPECT_EQ(s.message, "exited with code 7");
}

TEST(PipelineProbe, ASubcommandIsThereWhenItsHelpNamesIt) {
  // CLI11 answers "--help" after an unknown subcommand with the top-level help and exit 0.
  const std::vector<std::string> top_level = {
      "/bin/sh", "-c", "echo 'Usage: slidesparse [OPTIONS] SUBCOMMAND'", "sh"};
  EXPECT_FALSE(has_command(top_level, {"bench", "e2e"}));
  const std::vector<std::string> knows_it = {
      "/bin/sh", "-c", "echo \"Usage: /x/slidesparse $1 $2 [OPTIONS] MODEL\"", "sh"};
  EXPECT_TRUE(has_command(knows_it, {"bench", "e2e"}));
  const std::vector<std::string> mentions_it = {
      "/bin/sh", "-c",
      "echo 'Subcommands: bench e2e'; echo 'Usage: slidesparse [OPTIONS] SUBCOMMAND'", "sh"};
  EXPECT_FALSE(has_command(mentions_it, {"bench", "e2e"}));
  const std::vector<std::string> fails = {"/bin/sh", "-c",
                                          "echo \"Usage: slidesparse $1 [OPTIONS]\"; exit 1", "sh"};
  EXPECT_FALSE(has_command(fails, {"info"}));
}

TEST(PipelineInterrupt, SigintRaisesTheFlagInsteadOfEndingTheProcess) {
  struct sigaction before {};
  sigaction(SIGINT, nullptr, &before);
  {
    const InterruptFlag flag;
    EXPECT_FALSE(flag.raised());
    std::raise(SIGINT);
    EXPECT_TRUE(flag.raised());
    EXPECT_EQ(flag.signal(), SIGINT);
    EXPECT_THROW(InterruptFlag{}, std::exception);  // one at a time
  }
  struct sigaction after {};
  sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

}  // namespace
}  // namespace slidesparse::pipeline
