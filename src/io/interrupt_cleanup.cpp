#include "interrupt_cleanup.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"

namespace slidesparse {

namespace io_detail {
namespace {

struct Registry {
  std::mutex mutex;
  std::multiset<std::string> paths;
};

// Never destroyed: the handler thread may run while static destructors do.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

}  // namespace

RemoveOnInterrupt::RemoveOnInterrupt(std::string path) : path_(std::move(path)) {
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().paths.insert(path_);
}

RemoveOnInterrupt::~RemoveOnInterrupt() {
  if (!registered_) return;
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().paths.erase(registry().paths.find(path_));
}

void RemoveOnInterrupt::publish(const std::function<void()>& publish) {
  std::lock_guard<std::mutex> lock(registry().mutex);
  publish();
  registry().paths.erase(registry().paths.find(path_));
  registered_ = false;
}

}  // namespace io_detail

namespace {

// A normal thread, not a signal handler: it may lock, allocate and touch the
// filesystem. It holds the registry lock until the process ends, so no output
// gets published after the signal.
void wait_for_interrupt(sigset_t signals) {
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }
  auto& r = io_detail::registry();
  r.mutex.lock();
  for (const auto& path : r.paths) {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
    std::fprintf(stderr, "slidesparse: interrupted, removed %s\n", path.c_str());
  }
  std::fflush(stderr);
  _exit(128 + signal_number);
}

}  // namespace

void install_interrupt_cleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    const int rc = pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    if (rc != 0) throw IoError("cannot block SIGINT/SIGTERM: error " + std::to_string(rc));
    std::thread(wait_for_interrupt, signals).detach();
  });
}

}  // namespace slidesparse
