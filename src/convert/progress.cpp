#include "slidesparse/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace slidesparse {

namespace {
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
constexpr int kBarWidth = 30;

double megabytes(std::uint64_t bytes) { return static_cast<double>(bytes) / 1e6; }

std::string format_duration(double seconds) {
  const auto total = static_cast<std::int64_t>(std::llround(std::max(0.0, seconds)));
  if (total >= 3600) return fmt::format("{}h{:02}m", total / 3600, total / 60 % 60);
  if (total >= 60) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}
}  // namespace

ProgressBar::ProgressBar(std::string label, std::uint64_t total_bytes, std::FILE* stream)
    : label_(std::move(label)),
      total_(total_bytes),
      stream_(stream),
      interactive_(isatty(fileno(stream)) != 0),
      start_(Clock::now()),
      last_draw_(start_ - kRedrawInterval) {}

std::string ProgressBar::format_line(const std::string& label, std::uint64_t done,
                                     std::uint64_t total, double seconds) {
  const double fraction =
      total == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  const int filled = static_cast<int>(fraction * kBarWidth);
  const double rate = seconds > 0 ? megabytes(done) / seconds : 0.0;
  std::string eta = "--";
  if (rate > 0 && done < total) eta = format_duration(megabytes(total - done) / rate);
  return fmt::format("{}: [{}{}] {:5.1f}%  {:.0f}/{:.0f} MB  {:.1f} MB/s  ETA {}", label,
                     std::string(static_cast<std::size_t>(filled), '#'),
                     std::string(static_cast<std::size_t>(kBarWidth - filled), '.'),
                     100.0 * fraction, megabytes(done), megabytes(total), rate, eta);
}

std::string ProgressBar::format_summary(const std::string& label, std::uint64_t done,
                                        double seconds) {
  const double rate = seconds > 0 ? megabytes(done) / seconds : 0.0;
  return fmt::format("{}: {:.1f} MB in {:.2f} s, {:.1f} MB/s", label, megabytes(done), seconds,
                     rate);
}

void ProgressBar::update(std::uint64_t done_bytes, std::uint64_t total_bytes) {
  done_ = done_bytes;
  total_ = total_bytes;
  if (!interactive_) return;
  const auto now = Clock::now();
  if (now - last_draw_ < kRedrawInterval && done_ < total_) return;
  last_draw_ = now;
  // \x1b[K clears what a longer previous line left behind.
  fmt::print(stream_, "\r{}\x1b[K", format_line(label_, done_, total_, elapsed_seconds()));
  std::fflush(stream_);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (drawn_) fmt::print(stream_, "\r\x1b[K");
  fmt::print(stream_, "{}\n", format_summary(label_, done_, elapsed_seconds()));
  std::fflush(stream_);
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

}  // namespace slidesparse
