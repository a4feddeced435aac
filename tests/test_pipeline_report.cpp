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
#include "report_fixtures.hpp"
#include "slidesparse/pipeline/report.hpp"

namespace slidesparse::pipeline {
namespace {

namespace fs = std::filesystem;

using test::contains;
using test::kData;
using test::kRepo;
using test::read;

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
  ASSERT_EQ(result_.plots.size(), 4u) << result_.plot_note;
  for (const char* png : {"plots/prefill_int8.png", "plots/decode_int8.png",
                          "plots/kernel_int8.png", "plots/layer_int8.png"}) {
    EXPECT_TRUE(fs::file_size(dir_ / png) > 1000) << png;
    EXPECT_TRUE(contains(md, std::string("](") + png + ")")) << md;
  }
  EXPECT_TRUE(contains(md, "![Kernel GEMM speedup against M, INT8](plots/kernel_int8.png)"));
  EXPECT_TRUE(contains(md,
                       "![Whole-layer speedup (over the faster dense layer) against M, "
                       "INT8](plots/layer_int8.png)"));
}

TEST_F(ReportFixture, LayerTableOfCsvsWithoutTheNewColumns) {
  const std::string md = report(no_plots());
  // Σ dense_layer / Σ sparse_layer (no fused dense layer in these files): 2_4 M=64
  // (25+35)/(31+31) = 0.97x (48%), M=4096 410/262 = 1.56x (78%); 2_8 M=64 60/74.5 = 0.81x (60%),
  // M=4096 410/332 = 1.23x (93%).
  EXPECT_TRUE(contains(md,
                       "### Layer speedup (whole linear layer)\n\nThe whole sparse layer "
                       "(quantize + lift, sparse GEMM, dequantization) against the faster dense "
                       "layer of the same run"))
      << md;
  EXPECT_TRUE(contains(md,
                       "| M | 2:4 (2_4) | 6:8 (2_8) |\n|---|---|---|\n| 64 | 0.97x · 48% | 0.81x "
                       "· 60% |\n| 4096 | 1.56x · 78% | 1.23x · 93% |\n\nDense baseline: the plain "
                       "layer (no fused dense layer was measured here).\n"))
      << md;
  EXPECT_FALSE(contains(md, "### Our CUTLASS kernel")) << md;  // no CUTLASS columns
  EXPECT_TRUE(contains(md, "Sparse GEMM (cuSPARSELt on the slid weights) against")) << md;
}

// The kernel job's CSV in today's columns, with the CUTLASS ones of --sparse-backend both.
// Hand-made: the times of the fixture's file plus CUTLASS times no GPU measured (an A100 cannot
// run the sm_90a kernel at all; its 2_4 rows at M=64 say so as the sweep would). The report
// reads the columns and does not judge the GPU.
const char* const kKernelCsvWithCutlass =
    "model,layer,N,K,M,dtype,pattern,pattern_paper,gamma,bound,dense_gemm_us,sparse_gemm_us,"
    "speedup_gemm,efficiency_bound,efficiency_vs_2_4,dense_layer_us,dense_fused_layer_us,"
    "sparse_layer_us,speedup_layer,layer_overhead,auto_path,speedup_auto,dense_fallback_MB,"
    "quant_lift_us,quant_lift_GBps,quant_lift_vs_copy,copy_GBps,dense_algo,sparse_algo,"
    "dense_candidates,sparse_candidates,dense_fused_gemm_us,dense_fused_algo,sparse_backend,"
    "cutlass_gemm_epilogue_us,speedup_cutlass_gemm,cutlass_algo,cutlass_dense_epilogue_us,"
    "speedup_cutlass_vs_cutlass_dense,cutlass_layer_us,speedup_cutlass_layer,status,error\n"
    "llama3.2-1b,qkv,3072,2048,64,int8,2_4,2:4,1.000,2.000,20,25,0.800,0.400,,25,,31,0.806,0.240,"
    "dense,1.000,6.3,4.0,1200.0,0.8,1500.0,{},{},12,8,,,cusparselt,,,,,,,,passed,\"cutlass: not "
    "supported: the CUTLASS GEMMs run on cc 9.0 only, this GPU is cc 8.0\"\n"
    "llama3.2-1b,o,2048,2048,64,int8,2_4,2:4,1.000,2.000,30,25,1.200,0.600,,35,,31,1.129,0.240,"
    "sparse,1.129,4.2,4.0,1200.0,0.8,1500.0,{},{},12,8,,,cusparselt,,,,,,,,passed,\"cutlass: not "
    "supported: the CUTLASS GEMMs run on cc 9.0 only, this GPU is cc 8.0\"\n"
    "llama3.2-1b,qkv,3072,2048,4096,int8,2_4,2:4,1.000,2.000,100,62.5,1.600,0.800,,105,,68.5,"
    "1.533,0.096,sparse,1.533,6.3,4.0,1200.0,0.8,1500.0,{},{},12,8,,,cusparselt,50,2.000,{},90,"
    "1.800,58,1.810,passed,\n"
    "llama3.2-1b,o,2048,2048,4096,int8,2_4,2:4,1.000,2.000,300,187.5,1.600,0.800,,305,,193.5,"
    "1.576,0.032,sparse,1.576,4.2,4.0,1200.0,0.8,1500.0,{},{},12,8,,,cusparselt,150,2.000,{},282,"
    "1.880,170,1.794,passed,\n"
    "llama3.2-1b,qkv,3072,2048,64,int8,2_8,6:8,1.500,1.333,20,25,0.800,0.600,,25,,31,0.806,0.240,"
    "dense,1.000,6.3,4.0,1100.0,0.733,1500.0,{},{},12,8,,,cusparselt,18,1.111,{},22,1.222,24,"
    "1.042,passed,\n"
    "llama3.2-1b,o,2048,2048,64,int8,2_8,6:8,1.500,1.333,30,37.5,0.800,0.600,,35,,43.5,0.805,0.160,"
    "dense,1.000,4.2,4.0,1100.0,0.733,1500.0,{},{},12,8,,,cusparselt,27,1.111,{},33,1.222,35,"
    "1.000,passed,\n"
    "llama3.2-1b,qkv,3072,2048,4096,int8,2_8,6:8,1.500,1.333,100,80,1.250,0.938,,105,,86,1.221,"
    "0.075,sparse,1.221,6.3,4.0,1100.0,0.733,1500.0,{},{},12,8,,,cusparselt,75,1.333,{},98,1.307,"
    "81,1.296,passed,\n"
    "llama3.2-1b,o,2048,2048,4096,int8,2_8,6:8,1.500,1.333,300,240,1.250,0.938,,305,,246,1.240,"
    "0.025,sparse,1.240,4.2,4.0,1100.0,0.733,1500.0,{},{},12,8,,,cusparselt,225,1.333,{},295,"
    "1.311,231,1.320,passed,\n";

const char* const kKernelCsv =
    "kernel-high/llama3.2-1b/int8/A100_cc80_INT8_cu130_x86_64/kernel_bench.csv";

TEST_F(ReportFixture, CutlassColumnsOfAKernelJob) {
  std::ofstream(dir_ / kKernelCsv) << kKernelCsvWithCutlass;
  ReportOptions options;
  options.python = {"/bin/sh", "-c", "exit 3"};  // no matplotlib: plot_data.csv is still written
  options.plot_script = kRepo + "/scripts/plot_results.py";
  const std::string md = report(options);
  // The tables of the library path keep their numbers.
  EXPECT_TRUE(contains(md, "| 4096 | 1.60x · 80% | 1.25x · 94% |")) << md;
  EXPECT_TRUE(contains(md, "| 4096 | 1.56x · 78% | 1.23x · 93% |")) << md;
  // Σ cutlass_dense / Σ cutlass_gemm, Σ dense layer / Σ cutlass_layer: 2_4 M=4096 (90+282)/
  // (50+150) = 1.86x (93%), 410/(58+170) = 1.80x (90%); 2_8 M=64 (22+33)/(18+27) = 1.22x (92%),
  // 60/(24+35) = 1.02x (76%); M=4096 (98+295)/(75+225) = 1.31x (98%), 410/(81+231) = 1.31x (99%).
  EXPECT_TRUE(contains(md,
                       "**llama3.2-1b, INT8**\n\n| pattern | M | GEMM: CUTLASS / CUTLASS dense | "
                       "CUTLASS layer | cuSPARSELt layer |\n|---|---|---|---|---|\n"
                       "| 2:4 (2_4) | 64 | ❌ not supported | ❌ not supported | 0.97x · 48% |\n"
                       "| 2:4 (2_4) | 4096 | 1.86x · 93% | 1.80x · 90% | 1.56x · 78% |\n"
                       "| 6:8 (2_8) | 64 | 1.22x · 92% | 1.02x · 76% | 0.81x · 60% |\n"
                       "| 6:8 (2_8) | 4096 | 1.31x · 98% | 1.31x · 99% | 1.23x · 93% |\n"))
      << md;
  EXPECT_TRUE(contains(md,
                       "- 2:4 (2_4) M=64 (o): cutlass: not supported: the CUTLASS GEMMs run on "
                       "cc 9.0 only, this GPU is cc 8.0\n"))
      << md;
  // The FP8 job was skipped: no CUTLASS table for it.
  EXPECT_FALSE(contains(md, "**llama3.2-1b, FP8**\n\n| pattern |")) << md;
  const std::string data = read(dir_ / "plots" / "plot_data.csv");
  EXPECT_TRUE(contains(data, "layer,int8,llama3.2-1b,2_8+cutlass,4096,1.3141,1.3333\n")) << data;
  EXPECT_TRUE(contains(data, "layer,int8,llama3.2-1b,2_4,64,0.9677,2.0000\n")) << data;
  EXPECT_TRUE(contains(data, "kernel_cutlass,int8,llama3.2-1b,2_4+cutlass,4096,1.8600,2.0000\n"))
      << data;
  EXPECT_FALSE(contains(data, "kernel_cutlass,int8,llama3.2-1b,2_4+cutlass,64")) << data;
}

TEST_F(ReportFixture, AKernelJobOnTheCutlassBackendIsLabelledSo) {
  // The same file as if the job had run --sparse-backend cutlass: its sparse_* columns are our
  // kernel's (hand-made: the fixture's cuSPARSELt times under the CUTLASS name).
  std::string csv = kKernelCsvWithCutlass;
  for (std::size_t at; (at = csv.find(",cusparselt,")) != std::string::npos;)
    csv.replace(at, 12, ",cutlass,");
  std::ofstream(dir_ / kKernelCsv) << csv;
  const std::string md = report(no_plots());
  EXPECT_TRUE(contains(md,
                       "Sparse GEMM (our CUTLASS kernel of a `--sparse-backend cutlass` run, whose "
                       "time includes the dequantizing epilogue that the dense time lacks, on the "
                       "slid weights)"))
      << md;
  EXPECT_TRUE(contains(md,
                       "**llama3.2-1b, INT8**\n\n| M | 2:4 (2_4) CUTLASS | 6:8 (2_8) CUTLASS "
                       "|\n|---|---|---|\n| 64 | 1.00x · 50% | 0.80x · 60% |\n| 4096 | 1.60x · 80% "
                       "| 1.25x · 94% |\n"))
      << md;
  // The skipped FP8 job's cases keep the plan's names: nothing of it ran on CUTLASS.
  EXPECT_TRUE(contains(md, "**llama3.2-1b, FP8**\n\n| M | 2:4 (2_4) | 6:8 (2_8) |")) << md;
  // The pass matrix names the plan's cases.
  EXPECT_TRUE(contains(md, "| llama3.2-1b INT8 | ✅ 2/2 | ✅ 2/2 |")) << md;
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
