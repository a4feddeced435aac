#include "slidesparse/pipeline/interrupt.hpp"

#include <pthread.h>

#include "slidesparse/error.hpp"

namespace slidesparse::pipeline {

namespace {

volatile std::sig_atomic_t g_signal = 0;
bool g_installed = false;

extern "C" void remember_signal(int signal) { g_signal = signal; }

}  // namespace

InterruptFlag::InterruptFlag() {
  if (g_installed) throw InvalidArgument("an InterruptFlag is already installed");
  g_signal = 0;
  struct sigaction action {};
  action.sa_handler = remember_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a sleeping runner wakes up at once
  sigset_t signals;
  sigemptyset(&signals);
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    sigaction(kSignals[i], &action, &old_actions_[i]);
    sigaddset(&signals, kSignals[i]);
  }
  pthread_sigmask(SIG_UNBLOCK, &signals, &old_mask_);
  g_installed = true;
}

InterruptFlag::~InterruptFlag() {
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  for (std::size_t i = 0; i < kSignals.size(); ++i)
    sigaction(kSignals[i], &old_actions_[i], nullptr);
  g_installed = false;
}

bool InterruptFlag::raised() const { return g_signal != 0; }
int InterruptFlag::signal() const { return g_signal; }

}  // namespace slidesparse::pipeline
