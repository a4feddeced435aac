// A progress bar for long jobs (conversion, synthetic models): percentage, MB/s and ETA on
// stderr, redrawn at most ~10 times a second and only when stderr is a terminal, so logs
// and pipes get the final summary line alone.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace slidesparse {

class ProgressBar {
 public:
  // `label` starts every line ("convert"); `total_bytes` is the 100% mark.
  ProgressBar(std::string label, std::uint64_t total_bytes, std::FILE* stream = stderr);
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Records progress; redraws when the stream is a terminal and >= 100 ms passed.
  void update(std::uint64_t done_bytes, std::uint64_t total_bytes);
  // Prints the summary line ("convert: 1234.5 MB in 6.2 s, 199.1 MB/s"), always.
  void finish();

  double elapsed_seconds() const;

  // The line a redraw prints, without the leading carriage return (for tests).
  static std::string format_line(const std::string& label, std::uint64_t done, std::uint64_t total,
                                 double seconds);
  static std::string format_summary(const std::string& label, std::uint64_t done, double seconds);

 private:
  using Clock = std::chrono::steady_clock;

  std::string label_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  std::FILE* stream_;
  bool interactive_;
  bool drawn_ = false;
  bool finished_ = false;
  Clock::time_point start_;
  Clock::time_point last_draw_;
};

}  // namespace slidesparse
