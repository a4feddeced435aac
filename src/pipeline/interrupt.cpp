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
  sigaction(SIGINT, &action, &old_int_);
  sigaction(SIGTERM, &action, &old_term_);
  sigset_t both;
  sigemptyset(&both);
  sigaddset(&both, SIGINT);
  sigaddset(&both, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &both, &old_mask_);
  g_installed = true;
}

InterruptFlag::~InterruptFlag() {
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  g_installed = false;
}

bool InterruptFlag::raised() const { return g_signal != 0; }
int InterruptFlag::signal() const { return g_signal; }

}  // namespace slidesparse::pipeline
