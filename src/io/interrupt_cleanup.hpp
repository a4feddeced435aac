// The registry behind install_interrupt_cleanup(): paths (staging directories,
// temporary files) that the interrupt handler removes before the process ends.
// Private to src/io.
#pragma once

#include <functional>
#include <string>

namespace slidesparse::io_detail {

// Registers `path` for removal on SIGINT/SIGTERM for as long as it lives.
class RemoveOnInterrupt {
 public:
  explicit RemoveOnInterrupt(std::string path);
  RemoveOnInterrupt(const RemoveOnInterrupt&) = delete;
  RemoveOnInterrupt& operator=(const RemoveOnInterrupt&) = delete;
  ~RemoveOnInterrupt();

  // Runs `publish` (the rename that makes the output real) with the registry
  // locked, then unregisters: the handler never removes a half-published path.
  void publish(const std::function<void()>& publish);

 private:
  std::string path_;
  bool registered_ = true;
};

}  // namespace slidesparse::io_detail
