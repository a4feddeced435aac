// Runs one child process with a time limit: its own process group (so a timeout or
// Ctrl-C reaches everything it started), stdin from /dev/null, stdout and stderr into
// a file the caller owns (the run's log).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace slidesparse::pipeline {

struct ChildOptions {
  double timeout_s = 0;     // 0: no limit
  double kill_grace_s = 5;  // after SIGTERM (timeout) or SIGINT (interrupt), before SIGKILL
  // Polled while the child runs; true stops the child (SIGINT, then SIGKILL after the grace).
  std::function<bool()> interrupted;
};

struct ChildOutcome {
  enum class End { Exited, Signaled, TimedOut, Interrupted, SpawnFailed };
  End end = End::Exited;
  int exit_code = 0;  // End::Exited
  int signal = 0;     // End::Signaled
  double seconds = 0;
  std::string spawn_error;  // End::SpawnFailed
};

// argv[0] is the program's path (no PATH search). Never throws for what the child does;
// throws IoError only when /dev/null cannot be opened.
ChildOutcome run_child(const std::vector<std::string>& argv, int output_fd,
                       const ChildOptions& options);

// "SIGSEGV", "SIGABRT", … ("signal 42" for one without a name).
std::string signal_name(int signal);

}  // namespace slidesparse::pipeline
