// Ctrl-C for the pipeline command: while an InterruptFlag lives, SIGINT, SIGTERM and SIGHUP
// (the terminal went away) only raise a flag, which the runner polls; it stops the running
// child, writes the status and returns, so the run can be resumed.
#pragma once

#include <array>
#include <csignal>

namespace slidesparse::pipeline {

class InterruptFlag {
 public:
  InterruptFlag();   // installs the handlers (and unblocks the two signals in this thread)
  ~InterruptFlag();  // restores what was there before
  InterruptFlag(const InterruptFlag&) = delete;
  InterruptFlag& operator=(const InterruptFlag&) = delete;

  bool raised() const;
  int signal() const;  // the signal that raised it, 0 if none

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> old_actions_{};
  sigset_t old_mask_{};
};

}  // namespace slidesparse::pipeline
