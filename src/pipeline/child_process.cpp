#include "slidesparse/pipeline/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "files.hpp"
#include "slidesparse/error.hpp"

extern char** environ;

namespace slidesparse::pipeline {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class SpawnFileActions {
 public:
  SpawnFileActions() { posix_spawn_file_actions_init(&actions_); }
  SpawnFileActions(const SpawnFileActions&) = delete;
  SpawnFileActions& operator=(const SpawnFileActions&) = delete;
  ~SpawnFileActions() { posix_spawn_file_actions_destroy(&actions_); }
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

class SpawnAttributes {
 public:
  SpawnAttributes() { posix_spawnattr_init(&attr_); }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  ~SpawnAttributes() { posix_spawnattr_destroy(&attr_); }
  posix_spawnattr_t* get() { return &attr_; }

 private:
  posix_spawnattr_t attr_;
};

// True once `pid` has ended; it stays a zombie (not reaped), so its pid and process
// group id cannot be reused while we still signal the group.
bool has_ended(pid_t pid) {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != EINTR) return true;  // not our child any more: nothing to wait for
  }
  return info.si_pid == pid;
}

}  // namespace

std::string signal_name(int signal) {
  switch (signal) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGKILL:
      return "SIGKILL";
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGTRAP:
      return "SIGTRAP";
    default:
      return "signal " + std::to_string(signal);
  }
}

ChildOutcome run_child(const std::vector<std::string>& argv, int output_fd,
                       const ChildOptions& options) {
  ChildOutcome outcome;
  const Clock::time_point start = Clock::now();
  if (argv.empty()) {
    outcome.end = ChildOutcome::End::SpawnFailed;
    outcome.spawn_error = "empty command";
    return outcome;
  }
  const FileDescriptor null_input(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_input.get() < 0)
    throw IoError(std::string("cannot open /dev/null: ") + std::strerror(errno));

  SpawnFileActions actions;
  posix_spawn_file_actions_adddup2(actions.get(), null_input.get(), 0);
  posix_spawn_file_actions_adddup2(actions.get(), output_fd, 1);
  posix_spawn_file_actions_adddup2(actions.get(), output_fd, 2);

  // Own process group; no blocked or ignored signals inherited from this process.
  SpawnAttributes attr;
  posix_spawnattr_setflags(attr.get(),
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(attr.get(), 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(attr.get(), &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(attr.get(), &defaults);

  std::vector<char*> c_argv;
  for (const auto& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);

  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, argv[0].c_str(), actions.get(), attr.get(), c_argv.data(), environ);
  if (rc != 0) {
    outcome.end = ChildOutcome::End::SpawnFailed;
    outcome.spawn_error = "cannot start " + argv[0] + ": " + std::strerror(rc);
    outcome.seconds = seconds_since(start);
    return outcome;
  }

  // Poll: starts at 1 ms so short children cost little, backs off to 20 ms.
  auto interval = std::chrono::microseconds(1000);
  bool stopping = false, killed = false;
  Clock::time_point kill_at{};
  while (!has_ended(pid)) {
    if (!stopping) {
      if (options.interrupted && options.interrupted()) {
        outcome.end = ChildOutcome::End::Interrupted;
        ::kill(-pid, SIGINT);
        stopping = true;
      } else if (options.timeout_s > 0 && seconds_since(start) > options.timeout_s) {
        outcome.end = ChildOutcome::End::TimedOut;
        ::kill(-pid, SIGTERM);
        stopping = true;
      }
      if (stopping)
        kill_at = Clock::now() +
                  std::chrono::microseconds(static_cast<std::int64_t>(options.kill_grace_s * 1e6));
    } else if (!killed && Clock::now() >= kill_at) {
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(interval);
    interval = std::min(interval * 2, std::chrono::microseconds(20000));
  }
  // Whatever the job left running in its group goes with it.
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  outcome.seconds = seconds_since(start);
  const bool finished_cleanly = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (stopping && !finished_cleanly) return outcome;
  if (WIFSIGNALED(status)) {
    outcome.end = ChildOutcome::End::Signaled;
    outcome.signal = WTERMSIG(status);
  } else {
    outcome.end = ChildOutcome::End::Exited;
    outcome.exit_code = WEXITSTATUS(status);
  }
  return outcome;
}

}  // namespace slidesparse::pipeline
