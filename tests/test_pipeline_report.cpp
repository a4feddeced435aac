// The report from hand-made result files (tests/data/pipeline/report_run): its tables hold
// the fixture's numbers, a folder of another GPU stays out, plots are embedded or explained.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/report.hpp"

namespace slidesparse::pipeline {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(SLIDESPARSE_TEST_DATA_DIR) + "/pipeline";
const std::string kRepo = fs::path(SLIDESPARSE_TEST_DATA_DIR).parent_path().parent_path().string();

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A copy of the fixture: the report writes into its results folder.
class ReportFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("report_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
         "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::copy(kData + "/report_run", dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string report(const ReportOptions& options) {
    result_ = write_report(dir_.string(), options);
    EXPECT_EQ(result_.markdown_path, (dir_ / "report.md").string());
    return read(dir_ / "report.md");
  }

  static ReportOptions no_plots() {
    ReportOptions o;
    o.plots = false;
    return o;
  }

  fs::path dir_;
  ReportResult result_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(ReportFixture, TablesHoldTheNumbersOfTheResultFiles) {
  const std::string md = report(no_plots());
  // Prefill: 12,500 tok/s against 10,000 dense = 1.25x, 1.25 / (8/6) = 94% of the bound.
  EXPECT_TRUE(contains(md, "| M | dense tok/s | 6:8 (2_8) |")) << md;
  EXPECT_TRUE(contains(md, "| 512 | 10,000 | 12,500 · 1.25x · 94% |")) << md;
  EXPECT_TRUE(contains(md, "| 4096 | 40,000 | ❌ illegal memory access |")) << md;
  // Decode: 3,400 against 3,000 = 1.13x, 85%.
  EXPECT_TRUE(contains(md, "| 64 | 3,000 | 3,400 · 1.13x · 85% |")) << md;
  // Kernels, GEMM time summed over the layers: 2_4 at 4096 = 400/250 = 1.60x (80% of 2x),
  // 2_8 at 4096 = 400/320 = 1.25x (94%); at 64: 50/50 and 50/62.5.
  EXPECT_TRUE(contains(md, "| M | 2:4 (2_4) | 6:8 (2_8) |")) << md;
  EXPECT_TRUE(contains(md, "| 64 | 1.00x · 50% | 0.80x · 60% |")) << md;
  EXPECT_TRUE(contains(md, "| 4096 | 1.60x · 80% | 1.25x · 94% |")) << md;
  EXPECT_TRUE(contains(md, "| INT8 | 2:4 (2_4) | 1200 | 80% |")) << md;
  EXPECT_TRUE(contains(md, "| INT8 | 6:8 (2_8) | 1100 | 73% |")) << md;
}

TEST_F(ReportFixture, SummaryMatricesFailuresAndHardware) {
  const std::string md = report(no_plots());
  EXPECT_TRUE(contains(md, "# SlideSparse pipeline report: plan `fixture`"));
  EXPECT_TRUE(contains(md, "1 min 40 s (1 min 38 s in jobs; pipeline overhead 2.0 s = 2.0%)"))
      << md;
  // Tasks: jobs passed/failed/skipped/not run, cases passed/failed/skipped/not run, time.
  EXPECT_TRUE(contains(
      md, "| Prefill benchmark (`prefill`) | ❌ failed | 1 | 1 | 2 | 0 | 3 | 1 | 4 | 0 | 30.0 s |"))
      << md;
  EXPECT_TRUE(contains(
      md, "| Decode benchmark (`decode`) | ✅ passed | 2 | 0 | 2 | 0 | 2 | 0 | 2 | 0 | 10.0 s |"))
      << md;
  EXPECT_TRUE(contains(md, "| **all** | ❌ failed | 4 | 1 | 5 | 0 | 9 | 1 | 10 | 0 | 1 min 38 s |"))
      << md;
  // Pass matrices per model × dtype × backend.
  EXPECT_TRUE(contains(md, "| model | dense (cuBLASLt) | 6:8 (2_8) |"));
  EXPECT_TRUE(contains(md, "| llama3.2-1b INT8 | ✅ 2/2 | ❌ 1/2 |")) << md;
  EXPECT_TRUE(contains(md, "| llama3.2-1b FP8 | ⏭ skipped | ⏭ skipped |")) << md;
  EXPECT_TRUE(contains(md, "| llama3.2-1b INT8 | ✅ 2/2 | ✅ 2/2 |")) << md;  // kernels
  EXPECT_TRUE(contains(md, "- 4 cases: no FP8 on cc 8.0 (needs 8.9 or newer)")) << md;
  // The failure, with its class and where its log is.
  EXPECT_TRUE(contains(
      md,
      "| `prefill/llama3.2-1b/int8/2_8` | 2_8 M=4096 | illegal memory access | cuSPARSELt: CUDA "
      "error: an illegal memory access was encountered | `logs/run-001.log:31` |"))
      << md;
  // Hardware notes.
  EXPECT_TRUE(contains(md, "| GPU | NVIDIA A100-SXM4-80GB |"));
  EXPECT_TRUE(contains(md, "| compute capability | 8.0 (108 SMs, 1410 MHz max) |"));
  EXPECT_TRUE(contains(md, "| cuSPARSELt | 800 |"));
  EXPECT_TRUE(contains(md, "| FP8 | **not supported**: no FP8 on cc 8.0 (needs 8.9 or newer) |"))
      << md;
  EXPECT_TRUE(contains(md, "| INT8 | supported, results in `A100_cc80_INT8_cu130_x86_64/` |"));
}

TEST_F(ReportFixture, AFolderOfAnotherGpuNeverEntersTheReport) {
  const std::string md = report(no_plots());
  EXPECT_FALSE(contains(md, "9.99")) << md;
  EXPECT_FALSE(contains(md, "99.9")) << md;
  const std::string other =
      "kernel-high/llama3.2-1b/int8/H100_cc90_INT8_cu130_x86_64/kernel_bench.csv";
  ASSERT_EQ(result_.ignored.size(), 1u);
  EXPECT_EQ(result_.ignored[0].first, other);
  EXPECT_TRUE(contains(result_.ignored[0].second, "from another GPU"));
  EXPECT_TRUE(contains(md, "- `" + other +
                               "`: from another GPU or setup (folder H100_cc90_INT8_cu130_x86_64; "
                               "this run's GPU is NVIDIA A100-SXM4-80GB, cc 8.0, CUDA 13.0)"))
      << md;
  EXPECT_TRUE(contains(md, "- kernel-high results: 1 CSV file under `kernel-high/`")) << md;
}

TEST_F(ReportFixture, WithoutMatplotlibTheReportSaysSo) {
  ReportOptions options;
  options.python = {"/bin/sh", "-c", "echo 'matplotlib is not installed for python3' >&2; exit 3"};
  options.plot_script = kRepo + "/scripts/plot_results.py";
  const std::string md = report(options);
  EXPECT_TRUE(result_.plots.empty());
  EXPECT_TRUE(contains(
      md,
      "No plots: matplotlib is not installed (matplotlib is not installed for python3); the "
      "data is in plots/plot_data.csv."))
      << md;
  // The data it would have drawn: one row per passed case with its speedup and bound.
  const std::string data = read(dir_ / "plots" / "plot_data.csv");
  EXPECT_TRUE(contains(data, "prefill,int8,llama3.2-1b,2_8,512,1.2500,1.3333\n")) << data;
  EXPECT_TRUE(contains(data, "kernel,int8,llama3.2-1b,2_4,4096,1.6000,2.0000\n")) << data;
  EXPECT_FALSE(contains(data, "prefill,int8,llama3.2-1b,2_8,4096")) << data;  // failed
}

TEST_F(ReportFixture, PlotsAreDrawnAndEmbedded) {
  if (std::system("python3 -c 'import matplotlib' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 has no matplotlib here";
  ReportOptions options;
  options.plot_script = kRepo + "/scripts/plot_results.py";
  const std::string md = report(options);
  ASSERT_EQ(result_.plots.size(), 3u) << result_.plot_note;
  for (const char* png :
       {"plots/prefill_int8.png", "plots/decode_int8.png", "plots/kernel_int8.png"}) {
    EXPECT_TRUE(fs::file_size(dir_ / png) > 1000) << png;
    EXPECT_TRUE(contains(md, std::string("](") + png + ")")) << md;
  }
  EXPECT_TRUE(contains(md, "![Kernel GEMM speedup against M, INT8](plots/kernel_int8.png)"));
}

TEST(PipelineReport, NeedsAStatusFile) {
  const fs::path empty = fs::temp_directory_path() / ("report_empty_" + std::to_string(::getpid()));
  fs::create_directories(empty);
  EXPECT_THROW(write_report(empty.string(), {}), InvalidArgument);
  fs::remove_all(empty);
}

TEST(PipelineReport, FindsTheProjectsFiles) {
  EXPECT_EQ(find_project_file("scripts/plot_results.py", kRepo + "/build/slidesparse"),
            kRepo + "/scripts/plot_results.py");
  EXPECT_EQ(find_project_file("no/such/file", kRepo + "/build/slidesparse"), "");
}

}  // namespace
}  // namespace slidesparse::pipeline
