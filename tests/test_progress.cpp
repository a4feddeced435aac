#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "slidesparse/progress.hpp"

namespace slidesparse {
namespace {

TEST(ProgressBar, LineShowsPercentRateAndEta) {
  EXPECT_EQ(ProgressBar::format_line("convert", 50'000'000, 100'000'000, 2.0),
            "convert: [###############...............]  50.0%  50/100 MB  25.0 MB/s  ETA 2s");
  EXPECT_EQ(ProgressBar::format_line("convert", 1'000'000, 400'000'000, 1.0),
            "convert: [..............................]   0.2%  1/400 MB  1.0 MB/s  ETA 6m39s");
  // Nothing done yet: no rate, no estimate.
  EXPECT_EQ(ProgressBar::format_line("x", 0, 10'000'000, 0.0),
            "x: [..............................]   0.0%  0/10 MB  0.0 MB/s  ETA --");
  EXPECT_EQ(ProgressBar::format_line("x", 10'000'000, 10'000'000, 4.0),
            "x: [##############################] 100.0%  10/10 MB  2.5 MB/s  ETA --");
}

TEST(ProgressBar, SummaryLine) {
  EXPECT_EQ(ProgressBar::format_summary("convert", 4'044'500'000, 16.09),
            "convert: 4044.5 MB in 16.09 s, 251.4 MB/s");
}

// Not a terminal: no bar, only the summary, once.
TEST(ProgressBar, PrintsOnlyTheSummaryWhenNotATerminal) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    ProgressBar quiet("convert", 100, file);
    for (std::uint64_t done = 0; done <= 100; done += 10) quiet.update(done, 100);
    quiet.finish();
    quiet.finish();
  }
  std::rewind(file);
  char buffer[256] = {};
  const std::size_t size = std::fread(buffer, 1, sizeof buffer - 1, file);
  std::fclose(file);
  const std::string text(buffer, size);
  EXPECT_EQ(text.rfind("convert: 0.0 MB in ", 0), 0u) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos) << text;
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;
}

}  // namespace
}  // namespace slidesparse
