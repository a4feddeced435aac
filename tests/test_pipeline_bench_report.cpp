// The report of a folder the benchmarks wrote directly, without status.json
// (tests/data/pipeline/bench_run): real rows of the first H100 run (docs/results/2026-11-23_h100)
// plus two failed rows made for the test (that run had no failure): a kernel layer that hit an
// illegal memory access and a decode case out of memory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

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

ReportOptions no_plots() {
  ReportOptions o;
  o.plots = false;
  return o;
}

// A copy of the fixture: the report writes into the folder.
class BenchReport : public ::testing::Test {
 protected:
  virtual const char* fixture() const { return "bench_run"; }
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("bench_report_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::copy(kData + "/" + fixture(), dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string report(const ReportOptions& options) {
    result_ = write_report(dir_.string(), options);
    EXPECT_FALSE(result_.pipeline);
    EXPECT_EQ(result_.markdown_path, (dir_ / "report.md").string());
    return read(dir_ / "report.md");
  }

  static ReportOptions plotting_options() {
    ReportOptions options;
    options.plot_script = kRepo + "/scripts/plot_results.py";
    return options;
  }
  static bool has_matplotlib() {
    return std::system("python3 -c 'import matplotlib' > /dev/null 2>&1") == 0;
  }

  // Reports with plots and checks that exactly `pngs` are drawn and each is embedded in *md.
  void report_with_plots(const std::vector<std::string>& pngs, std::string* md) {
    *md = report(plotting_options());
    ASSERT_EQ(result_.plots.size(), pngs.size()) << result_.plot_note;
    for (const std::string& png : pngs) {
      EXPECT_TRUE(fs::file_size(dir_ / png) > 1000) << png;
      EXPECT_TRUE(contains(*md, "](" + png + ")")) << *md;
    }
  }

  // Another GPU's kernel CSV (the pipeline fixture's A100 one) beside the H100 results.
  void add_a100_results() {
    const fs::path folder = dir_ / "kernel" / "A100_cc80_INT8_cu130_x86_64";
    fs::create_directories(folder);
    fs::copy_file(kData +
                      "/report_run/kernel-high/llama3.2-1b/int8/A100_cc80_INT8_cu130_x86_64/"
                      "kernel_bench.csv",
                  folder / "kernel_bench.csv");
  }

  fs::path dir_;
  ReportResult result_;
};

TEST_F(BenchReport, SaysItCameFromDirectRunsAndHasNoTaskTable) {
  const std::string md = report(no_plots());
  EXPECT_TRUE(contains(md, "# SlideSparse benchmark report: `" + dir_.filename().string() + "`"));
  EXPECT_TRUE(contains(md, "This folder came from direct benchmark runs")) << md;
  EXPECT_TRUE(contains(md, "not a pipeline: it has no status.json, so there is no task table"));
  EXPECT_FALSE(contains(md, "## Tasks")) << md;
  EXPECT_FALSE(contains(md, "## Pass matrices")) << md;
  EXPECT_TRUE(contains(md,
                       "- GPU: H100, cc 9.0, CUDA 13.0, x86_64 (folders "
                       "`H100_cc90_FP8E4M3_cu130_x86_64`, `H100_cc90_INT8_cu130_x86_64`)"))
      << md;
  // Cases: e2e rows; kernel (pattern, M) over the layers: INT8 2 patterns × 2 M + 2_8 at
  // 16384 (one layer failed), FP8 2_4 at 4096.
  EXPECT_TRUE(contains(md, "- prefill cases: 3 passed, 0 failed\n")) << md;
  EXPECT_TRUE(contains(md, "- decode cases: 2 passed, 1 failed\n")) << md;
  EXPECT_TRUE(contains(md, "- kernel cases: 5 passed, 1 failed\n")) << md;
  // The e2e CSVs sit outside a GPU folder: taken as this GPU's, and said so.
  EXPECT_TRUE(contains(md,
                       "taken as measured on this GPU (the only one whose results are here): "
                       "`e2e/e2e_decode.csv`, `e2e/e2e_prefill.csv`"))
      << md;
}

TEST_F(BenchReport, TablesHoldTheNumbersOfTheCsvs) {
  const std::string md = report(no_plots());
  // Prefill: 178,297.8 / 185,548.8 = 0.96x, 48% of 2x; 156,693.5 / 185,548.8 = 0.84x, 63%.
  EXPECT_TRUE(contains(md, "| M | dense tok/s | 2:4 (2_4) | 6:8 (2_8) |")) << md;
  EXPECT_TRUE(contains(md, "| 4096 | 185,549 | 178,298 · 0.96x · 48% | 156,694 · 0.84x · 63% |"))
      << md;
  // Decode: 18,360 / 31,640.1 = 0.58x, 44% of 1.33x; the failed 2_4 case shows its class.
  EXPECT_TRUE(contains(md, "| 64 | 31,640 | ❌ out of memory | 18,360 · 0.58x · 44% |")) << md;
  // Kernel GEMM, qkv + o: 2_4 M=64 (12.03+17.12)/(9.60+13.41) = 1.27x (63%); M=4096
  // 167.78/151.46 = 1.11x (55%); 2_8 M=64 23.81/22.05 = 1.08x (81%), M=4096 171.07/206.43 =
  // 0.83x (62%); 2_8 M=16384 has a failed layer.
  EXPECT_TRUE(contains(md, "**qwen2.5-7b, INT8**\n\n| M | 2:4 (2_4) | 6:8 (2_8) |")) << md;
  EXPECT_TRUE(contains(md, "| 64 | 1.27x · 63% | 1.08x · 81% |")) << md;
  EXPECT_TRUE(contains(md, "| 4096 | 1.11x · 55% | 0.83x · 62% |")) << md;
  EXPECT_TRUE(contains(md, "| 16384 |  | ❌ illegal memory access |")) << md;
  // The whole layer, plain dense layer (no fused one in this run) over sparse, qkv + o: 2_4
  // M=64 (22.98+28.35)/(19.87+22.69) = 1.21x (60%), M=4096 282.97/266.85 = 1.06x (53%); 2_8
  // M=64 40.67/40.61 = 1.00x (75%), M=4096 284.38/330.88 = 0.86x (64%).
  EXPECT_TRUE(contains(md,
                       "| 64 | 1.21x · 60% | 1.00x · 75% |\n| 4096 | 1.06x · 53% | 0.86x · "
                       "64% |\n| 16384 |  | ❌ illegal memory access |\n\nDense baseline: the "
                       "plain layer"))
      << md;
  // FP8 in its own table: (106.98+87.20)/(82.27+68.35) = 1.29x, 64%.
  EXPECT_TRUE(
      contains(md, "**qwen2.5-7b, FP8**\n\n| M | 2:4 (2_4) |\n|---|---|\n| 4096 | 1.29x · 64% |"))
      << md;
  // Quantize + lift, FP8 2_4: median of 2454.1 and 2458.5 GB/s, of 0.823 and 0.824 of copy.
  EXPECT_TRUE(contains(md, "| FP8 | 2:4 (2_4) | 2456 | 82% |")) << md;
  // INT8 before FP8 in the kernel tables.
  EXPECT_LT(md.find("**qwen2.5-7b, INT8**"), md.find("**qwen2.5-7b, FP8**"));
}

TEST_F(BenchReport, FailedRowsAreListedWithTheirError) {
  const std::string md = report(no_plots());
  EXPECT_TRUE(contains(md, "| benchmark | file | model | cases | error class | error |")) << md;
  EXPECT_TRUE(contains(md,
                       "| kernel | `kernel/H100_cc90_INT8_cu130_x86_64/kernel_bench.csv` | "
                       "qwen2.5-7b INT8 | 2_8 M=16384 (qkv) | illegal memory access | cuSPARSELt: "
                       "CUDA error: an illegal memory access was encountered |"))
      << md;
  EXPECT_TRUE(contains(md,
                       "| decode | `e2e/e2e_decode.csv` | llama3.2-1b INT8 | 2_4 M=64 | out of "
                       "memory | out of memory: cudaMalloc of 4096 MiB failed |"))
      << md;
}

TEST_F(BenchReport, HardwareNotesComeFromTheFolderTheInfoOutputAndTheTuningDatabase) {
  const std::string md = report(no_plots());
  EXPECT_TRUE(contains(md, "| GPU | NVIDIA H100 80GB HBM3 |")) << md;
  EXPECT_TRUE(contains(md, "| compute capability | 9.0 (132 SMs, 1980 MHz max) |")) << md;
  EXPECT_TRUE(contains(md, "| cuBLASLt | 130100 |")) << md;
  EXPECT_TRUE(contains(md, "| cuSPARSELt | 800 |")) << md;
  EXPECT_TRUE(contains(md, "| CPU architecture | x86_64 |")) << md;
  EXPECT_TRUE(contains(md,
                       "| device-to-device copy | 2982 GB/s (read + write), measured by the "
                       "kernel benchmark |"))
      << md;
  EXPECT_TRUE(contains(md, "| INT8 | supported, results in `H100_cc90_INT8_cu130_x86_64/` |"));
  EXPECT_TRUE(contains(md, "| FP8 | supported, results in `H100_cc90_FP8E4M3_cu130_x86_64/` |"));
  EXPECT_FALSE(contains(md, "| BF16 |")) << md;  // info lists it, but nothing was measured
  EXPECT_TRUE(contains(md,
                       "- tuning database `kernel/tuning.json`: made on NVIDIA H100 80GB "
                       "HBM3 (cc 9.0), driver 13000, CUDA runtime 13000, cuBLASLt 130100, "
                       "cuSPARSELt 800"))
      << md;

  // Without the info output: the tuning database's key names the GPU, driver and libraries.
  fs::remove(dir_ / "environment.txt");
  const std::string without = report(no_plots());
  EXPECT_TRUE(contains(without, "| GPU | NVIDIA H100 80GB HBM3 |")) << without;
  EXPECT_TRUE(contains(without, "| compute capability | 9.0 |")) << without;
  EXPECT_TRUE(contains(without, "| driver | 13000 (CUDA 13.0) |")) << without;
  EXPECT_TRUE(contains(without, "| cuBLASLt | 130100 |")) << without;
  EXPECT_FALSE(contains(without, "| memory |")) << without;

  // Nor a tuning database: the folder names alone.
  fs::remove(dir_ / "kernel" / "tuning.json");
  const std::string bare = report(no_plots());
  EXPECT_TRUE(contains(bare, "| GPU | H100 |")) << bare;
  EXPECT_TRUE(contains(bare, "| CUDA runtime | 13.0 |")) << bare;
  EXPECT_FALSE(contains(bare, "| cuBLASLt |")) << bare;
}

TEST_F(BenchReport, OtherCsvsAreLeftOutWithTheReason) {
  const std::string md = report(no_plots());
  ASSERT_EQ(result_.ignored.size(), 1u);
  EXPECT_EQ(result_.ignored[0].first, "notes.csv");
  EXPECT_TRUE(contains(md,
                       "- `notes.csv`: not a result file of `slidesparse bench kernel` or "
                       "`bench e2e`"))
      << md;
}

TEST_F(BenchReport, TwoGpusAreNeverMixed) {
  add_a100_results();
  const std::string md = report(no_plots());
  // The H100 (two files in GPU folders) is reported; the A100's rows (llama3.2-1b kernels) stay
  // out.
  EXPECT_TRUE(contains(md, "- GPU: H100, cc 9.0, CUDA 13.0, x86_64")) << md;
  EXPECT_FALSE(contains(md, "**llama3.2-1b, INT8**\n\n| M | 2:4 (2_4) | 6:8 (2_8) |")) << md;
  EXPECT_FALSE(contains(md, "1.60x")) << md;  // the A100's 2_4 at 4096
  EXPECT_TRUE(contains(md,
                       "- `kernel/A100_cc80_INT8_cu130_x86_64/kernel_bench.csv`: from another "
                       "GPU or setup (folder A100_cc80_INT8_cu130_x86_64; this report covers "
                       "H100_cc90_cu130_x86_64)"))
      << md;
  EXPECT_TRUE(contains(md,
                       "Results of other GPUs in this folder, left out (never mixed with "
                       "these): A100_cc80_cu130_x86_64 (1 file)"))
      << md;
  // The e2e CSVs outside a GPU folder can no longer be told apart: left out.
  EXPECT_FALSE(contains(md, "### Prefill throughput")) << md;
  EXPECT_TRUE(contains(md,
                       "- `e2e/e2e_prefill.csv`: not in a GPU folder, and this folder holds "
                       "results of 2 GPUs"))
      << md;

  // --gpu picks the other one, alone.
  ReportOptions a100 = no_plots();
  a100.gpu = "A100_cc80_cu130_x86_64";
  const std::string other = report(a100);
  EXPECT_TRUE(contains(other, "- GPU: A100, cc 8.0, CUDA 13.0, x86_64")) << other;
  EXPECT_TRUE(contains(other, "| 4096 | 1.60x · 80% | 1.25x · 94% |")) << other;
  EXPECT_FALSE(contains(other, "qwen2.5-7b")) << other;
  EXPECT_FALSE(contains(other, "| GPU | NVIDIA H100 80GB HBM3 |")) << other;  // not its info
  EXPECT_TRUE(contains(other,
                       "tuning database `kernel/tuning.json`: made on NVIDIA H100 80GB "
                       "HBM3 (cc 9.0), driver 13000, CUDA runtime 13000, cuBLASLt 130100, "
                       "cuSPARSELt 800, not this GPU"))
      << other;

  ReportOptions unknown = no_plots();
  unknown.gpu = "B200_cc100_cu130_x86_64";
  try {
    write_report(dir_.string(), unknown);
    ADD_FAILURE() << "an unknown --gpu was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_TRUE(contains(e.what(), "A100_cc80_cu130_x86_64, H100_cc90_cu130_x86_64")) << e.what();
  }
}

TEST_F(BenchReport, CutlassRowsAndConvertedModelNamesKeepTheirPlace) {
  // A sparse-cutlass row of a converted model folder (llama3.2-1b-2_8-int8): its own column
  // beside cuSPARSELt's 2_8, in the table of the original model. 170,000 / 185,548.8 = 0.92x.
  std::ofstream(dir_ / "e2e" / "e2e_prefill.csv", std::ios::app)
      << "llama3.2-1b-2_8-int8,prefill,sparse-cutlass,2_8,int8,4096,166.0,170000.0,14.0,8.8,"
         "1.9,passed,\n";
  ReportOptions options;
  options.python = {"/bin/sh", "-c", "exit 3"};  // no matplotlib: plot_data.csv is still written
  options.plot_script = kRepo + "/scripts/plot_results.py";
  const std::string md = report(options);
  EXPECT_TRUE(contains(md, "| M | dense tok/s | 2:4 (2_4) | 6:8 (2_8) | 6:8 (2_8) CUTLASS |"))
      << md;
  EXPECT_TRUE(contains(md, "| 156,694 · 0.84x · 63% | 170,000 · 0.92x · 69% |")) << md;
  const std::string data = read(dir_ / "plots" / "plot_data.csv");
  EXPECT_TRUE(contains(data, "prefill,int8,llama3.2-1b,2_8+cutlass,4096,0.9162,1.3333\n")) << data;
  EXPECT_TRUE(contains(data, "kernel,fp8,qwen2.5-7b,2_4,4096,1.2892,2.0000\n")) << data;
  EXPECT_FALSE(contains(data, "kernel,int8,qwen2.5-7b,2_8,16384")) << data;  // failed
}

TEST_F(BenchReport, TheDenseBaselineIsTheFastestDenseGemmAndEachSeriesHasItsColumn) {
  // Hand-made rows: a faster dense GEMM (--dense-gemm cublaslt_fused) becomes the baseline and
  // is named; a slower one (cutlass_dense) does not replace it. The dense fallback and the auto
  // backend get columns of their own beside cuSPARSELt's 2_8.
  // 156,694 / 200,000 = 0.78x; 190,000 / 200,000 = 0.95x; 180,000 / 200,000 = 0.90x.
  std::ofstream(dir_ / "e2e" / "e2e_prefill.csv", std::ios::app)
      << "llama3.2-1b,prefill,dense-cublaslt_fused,dense,int8,4096,195.3,200000.0,11.0,8.6,1.8,"
         "passed,\n"
      << "llama3.2-1b,prefill,dense-cutlass_dense,dense,int8,4096,170.0,174000.0,12.0,8.6,1.8,"
         "passed,\n"
      << "llama3.2-1b,prefill,sparse-fallback,2_8,int8,4096,185.5,190000.0,11.5,8.6,1.8,passed,\n"
      << "llama3.2-1b,prefill,sparse-auto,2_8,int8,4096,175.8,180000.0,11.5,8.6,1.8,passed,\n";
  const std::string md = report(no_plots());
  EXPECT_TRUE(contains(md, "| M | dense tok/s | 2:4 (2_4) | 6:8 (2_8) | 6:8 (2_8) + dense fallback "
                           "| 6:8 (2_8) auto backend |"))
      << md;
  EXPECT_TRUE(contains(md, "| 4096 | 200,000 (cublaslt_fused) | 178,298 · 0.89x · 45% | "
                           "156,694 · 0.78x · 59% | 190,000 · 0.95x · 71% | "
                           "180,000 · 0.90x · 68% |"))
      << md;
}

TEST_F(BenchReport, PlotsAreDrawnAndEmbedded) {
  if (!has_matplotlib()) GTEST_SKIP() << "python3 has no matplotlib here";
  std::string md;
  ASSERT_NO_FATAL_FAILURE(report_with_plots(
      {"plots/prefill_int8.png", "plots/decode_int8.png", "plots/kernel_int8.png",
       "plots/kernel_fp8.png", "plots/layer_int8.png", "plots/layer_fp8.png"},
      &md));
  // A second report does not read its own plot data back as a result file.
  report(plotting_options());
  EXPECT_EQ(result_.ignored.size(), 1u);
}

// tests/data/pipeline/bench_cutlass: hand-made rows (no GPU run made them) in the columns of
// today's kernel sweep, llama3.2-1b's qkv and o layers:
// - kernel/…FP8…: --sparse-backend both on FP8, so also the fused dense layer; 2_8 at 4096 has
//   a layer whose CUTLASS GEMM and fused dense layer failed (the row still passed);
// - kernel/…INT8…: --sparse-backend all on INT8 (no fused dense layer for INT8; the layer on
//   the CUTLASS GEMM that lifts its input);
// - kernel_cutlass/…FP8…: --sparse-backend cutlass, so sparse_* is our CUTLASS kernel.
class CutlassBenchReport : public BenchReport {
 protected:
  const char* fixture() const override { return "bench_cutlass"; }
};

TEST_F(CutlassBenchReport, GemmTablesNameTheBackendOfTheSparseColumns) {
  const std::string md = report(no_plots());
  EXPECT_TRUE(contains(md,
                       "Sparse GEMM (cuSPARSELt on the slid weights; in the columns marked "
                       "CUTLASS, our CUTLASS kernel of a `--sparse-backend cutlass` run, whose "
                       "time includes the dequantizing epilogue that the dense time lacks) "
                       "against tuned dense cuBLASLt"))
      << md;
  // FP8, Σ dense_gemm / Σ sparse_gemm: 2_4 M=64 (20+30)/(16+23) = 1.28x (64%), M=4096
  // 400/270 = 1.48x (74%); 2_8 M=64 50/52 = 0.96x (72%), M=4096 400/430 = 0.93x (70%); the
  // CUTLASS run's 2_8 at 4096 400/305 = 1.31x (98%), not measured at 64.
  EXPECT_TRUE(contains(md,
                       "**llama3.2-1b, FP8**\n\n| M | 2:4 (2_4) | 6:8 (2_8) | 6:8 (2_8) CUTLASS "
                       "|\n|---|---|---|---|\n| 64 | 1.28x · 64% | 0.96x · 72% |  |\n| 4096 | "
                       "1.48x · 74% | 0.93x · 70% | 1.31x · 98% |\n"))
      << md;
  // INT8: 360/390 = 0.92x (69%).
  EXPECT_TRUE(contains(md,
                       "**llama3.2-1b, INT8**\n\n| M | 6:8 (2_8) |\n|---|---|\n| 4096 | "
                       "0.92x · 69% |\n"))
      << md;
  // The CUTLASS run's rows are their own cases: nothing of cuSPARSELt's 2_8 was replaced.
  EXPECT_FALSE(contains(md, "replaces")) << md;
  EXPECT_TRUE(contains(md, "- kernel cases: 6 passed, 0 failed\n")) << md;
}

TEST_F(CutlassBenchReport, LayerTableTakesTheFasterDenseLayerAndSaysWhichWon) {
  const std::string md = report(no_plots());
  // Faster dense layer per row, FP8: M=64 qkv fused 26 < 30, o plain 40 < 44 (both patterns);
  // M=4096 fused 120 and 350 (2_4 and the CUTLASS run's 2_8), but 2_8's o has no fused time:
  // plain 380. Σ faster dense / Σ sparse layer: 2_4 M=64 (26+40)/(24+33) = 1.16x (58%),
  // M=4096 470/390 = 1.21x (60%); 2_8 M=64 66/73 = 0.90x (68%), M=4096 (120+380)/540 = 0.93x
  // (69%); CUTLASS 2_8 M=4096 470/380 = 1.24x (93%).
  EXPECT_TRUE(contains(md,
                       "| M | 2:4 (2_4) | 6:8 (2_8) | 6:8 (2_8) CUTLASS | faster dense layer "
                       "|\n|---|---|---|---|---|\n| 64 | 1.16x · 58% | 0.90x · 68% |  | fused 2/4, "
                       "plain 2/4 |\n| 4096 | 1.21x · 60% | 0.93x · 69% | 1.24x · 93% | fused 5/5 "
                       "|\n"))
      << md;
  EXPECT_TRUE(contains(md, "the fused one was the faster in 7 of 9, the plain one in 2.")) << md;
  // INT8 has no fused dense layer: (120+350)/(130+371) = 0.94x (70%).
  EXPECT_TRUE(contains(md,
                       "| M | 6:8 (2_8) |\n|---|---|\n| 4096 | 0.94x · 70% |\n\nDense "
                       "baseline: the plain layer (no fused dense layer was measured here)."))
      << md;
}

TEST_F(CutlassBenchReport, CutlassTableHasTheFairRatioAndBothLayerSpeedups) {
  const std::string md = report(no_plots());
  EXPECT_TRUE(contains(md, "### Our CUTLASS kernel (`--sparse-backend both`)")) << md;
  // Per case: Σ cutlass_dense / Σ cutlass_gemm; Σ faster dense layer / Σ cutlass_layer; and
  // the cuSPARSELt layer of the table above. FP8 2_4 M=64: (21+29)/(14+19) = 1.52x (76%),
  // 66/(22+29) = 1.29x (65%); M=4096: 415/230 = 1.80x (90%), 470/350 = 1.34x (67%);
  // 2_8 M=64: 50/39 = 1.28x (96%), 66/58 = 1.14x (85%); 2_8 M=4096: o's CUTLASS GEMM failed.
  EXPECT_TRUE(contains(md,
                       "| pattern | M | GEMM: CUTLASS / CUTLASS dense | CUTLASS layer | "
                       "cuSPARSELt layer |\n|---|---|---|---|---|\n"
                       "| 2:4 (2_4) | 64 | 1.52x · 76% | 1.29x · 65% | 1.16x · 58% |\n"
                       "| 2:4 (2_4) | 4096 | 1.80x · 90% | 1.34x · 67% | 1.21x · 60% |\n"
                       "| 6:8 (2_8) | 64 | 1.28x · 96% | 1.14x · 85% | 0.90x · 68% |\n"
                       "| 6:8 (2_8) | 4096 | ❌ CUTLASS error | ❌ CUTLASS error | 0.93x · 69% |\n"))
      << md;
  // Its error names the CUTLASS part, not the cuBLASLt fused part joined to it.
  EXPECT_TRUE(contains(md,
                       "- 6:8 (2_8) M=4096 (o): cutlass: CUTLASS: no algorithm ran: Error "
                       "Internal\n"))
      << md;
  // INT8 (a --sparse-backend all run: also the layer on the GEMM that lifts its input) 2_8
  // M=4096: (90+265)/(70+210) = 1.27x (95%), (120+350)/(100+290) = 1.21x (90%), lift in the
  // GEMM (120+350)/(95+285) = 1.24x (93%).
  EXPECT_TRUE(contains(md,
                       "| pattern | M | GEMM: CUTLASS / CUTLASS dense | CUTLASS layer | CUTLASS "
                       "layer, lift in the GEMM | cuSPARSELt layer |\n|---|---|---|---|---|---|\n"
                       "| 6:8 (2_8) | 4096 | 1.27x · 95% | 1.21x · 90% | 1.24x · 93% | 0.94x · 70% |"))
      << md;
  // The CUTLASS run (no columns of both) has no row here.
  EXPECT_FALSE(contains(md, "| 6:8 (2_8) CUTLASS | 4096 |")) << md;
}

TEST_F(CutlassBenchReport, OneBackendAloneIsNamedAlone) {
  const fs::path cutlass_run = dir_ / "kernel_cutlass";
  fs::rename(cutlass_run, dir_.parent_path() / (dir_.filename().string() + "_cutlass_run"));
  const std::string both = report(no_plots());
  EXPECT_TRUE(contains(both, "Sparse GEMM (cuSPARSELt on the slid weights) against")) << both;
  EXPECT_FALSE(contains(both, "CUTLASS |")) << both;  // no CUTLASS column in the GEMM table

  fs::remove_all(dir_);
  fs::create_directories(dir_);
  fs::rename(dir_.parent_path() / (dir_.filename().string() + "_cutlass_run"), cutlass_run);
  const std::string cutlass = report(no_plots());
  EXPECT_TRUE(contains(cutlass,
                       "Sparse GEMM (our CUTLASS kernel of a `--sparse-backend cutlass` run, "
                       "whose time includes the dequantizing epilogue that the dense time lacks, "
                       "on the slid weights) against"))
      << cutlass;
  EXPECT_TRUE(contains(cutlass, "| M | 6:8 (2_8) CUTLASS |\n|---|---|\n| 4096 | 1.31x · 98% |"))
      << cutlass;
  EXPECT_FALSE(contains(cutlass, "### Our CUTLASS kernel")) << cutlass;
}

TEST_F(CutlassBenchReport, PlotDataHasTheLayerAndCutlassSeries) {
  ReportOptions options;
  options.python = {"/bin/sh", "-c", "exit 3"};  // no matplotlib: plot_data.csv is still written
  options.plot_script = kRepo + "/scripts/plot_results.py";
  report(options);
  const std::string data = read(dir_ / "plots" / "plot_data.csv");
  EXPECT_TRUE(contains(data, "kernel,fp8,llama3.2-1b,2_8+cutlass,4096,1.3115,1.3333\n")) << data;
  EXPECT_TRUE(contains(data, "layer,fp8,llama3.2-1b,2_4,64,1.1579,2.0000\n")) << data;
  // --sparse-backend both's CUTLASS layer: 2_4 at 64 66/51; 2_8 at 64 66/58. At 4096 the
  // CUTLASS run's own 2_8 layer (470/380) is the series; both's is broken there anyway.
  EXPECT_TRUE(contains(data, "layer,fp8,llama3.2-1b,2_4+cutlass,64,1.2941,2.0000\n")) << data;
  EXPECT_TRUE(contains(data, "layer,fp8,llama3.2-1b,2_8+cutlass,64,1.1379,1.3333\n")) << data;
  EXPECT_TRUE(contains(data, "layer,fp8,llama3.2-1b,2_8+cutlass,4096,1.2368,1.3333\n")) << data;
  EXPECT_TRUE(contains(data, "kernel_cutlass,fp8,llama3.2-1b,2_4+cutlass,4096,1.8043,2.0000\n"))
      << data;
  EXPECT_TRUE(contains(data, "kernel_cutlass,int8,llama3.2-1b,2_8+cutlass,4096,1.2679,1.3333\n"))
      << data;
  EXPECT_FALSE(contains(data, "kernel_cutlass,fp8,llama3.2-1b,2_8+cutlass,4096")) << data;
}

TEST_F(CutlassBenchReport, PlotsAreDrawnAndEmbedded) {
  if (!has_matplotlib()) GTEST_SKIP() << "python3 has no matplotlib here";
  std::string md;
  ASSERT_NO_FATAL_FAILURE(report_with_plots(
      {"plots/kernel_int8.png", "plots/kernel_fp8.png", "plots/layer_int8.png",
       "plots/layer_fp8.png", "plots/kernel_cutlass_int8.png", "plots/kernel_cutlass_fp8.png"},
      &md));
  EXPECT_TRUE(contains(md,
                       "![CUTLASS GEMM speedup (over the CUTLASS dense GEMM) against M, "
                       "FP8](plots/kernel_cutlass_fp8.png)"))
      << md;
}

// The committed report of the first H100 run (CSVs without the columns above) is what this
// code makes of its CSVs: the same text but the date, the same plotted data. The plot script
// is not run (its PNGs are committed beside the report).
TEST(BenchReportFolder, TheCommittedH100ReportIsUpToDate) {
  const fs::path committed = fs::path(kRepo) / "docs" / "results" / "2026-11-23_h100";
  const fs::path work =
      fs::temp_directory_path() / ("bench_report_committed_" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work / "docs" / "results");
  fs::copy(committed, work / "docs" / "results" / "2026-11-23_h100", fs::copy_options::recursive);
  const fs::path cwd = fs::current_path();
  fs::current_path(work);  // the report names the folder as given, relative to the repository
  ReportOptions options;
  options.python = {"/bin/sh", "-c", "exit 0"};
  options.plot_script = kRepo + "/scripts/plot_results.py";
  write_report("docs/results/2026-11-23_h100", options);
  fs::current_path(cwd);
  // The first line that differs (the date line left out), or "".
  const auto difference = [](const fs::path& a, const fs::path& b) {
    std::istringstream in_a(read(a)), in_b(read(b));
    std::string line_a, line_b;
    for (int line = 1;; ++line) {
      const bool more_a = static_cast<bool>(std::getline(in_a, line_a));
      const bool more_b = static_cast<bool>(std::getline(in_b, line_b));
      if (!more_a && !more_b) return std::string();
      if (line_a.rfind("Generated by `slidesparse report` on ", 0) == 0 &&
          line_b.rfind("Generated by `slidesparse report` on ", 0) == 0)
        continue;
      if (more_a != more_b || line_a != line_b)
        return "line " + std::to_string(line) + ": made '" + (more_a ? line_a : "(end)") +
               "', committed '" + (more_b ? line_b : "(end)") + "'";
    }
  };
  const fs::path made = work / "docs" / "results" / "2026-11-23_h100";
  EXPECT_EQ(difference(made / "report.md", committed / "report.md"), "")
      << "regenerate it: slidesparse report docs/results/2026-11-23_h100";
  EXPECT_EQ(difference(made / "plots" / "plot_data.csv", committed / "plots" / "plot_data.csv"),
            "");
  fs::remove_all(work);
}

TEST(BenchReportFolder, AFolderWithoutResultsIsAnErrorNamingIt) {
  const fs::path empty =
      fs::temp_directory_path() / ("bench_report_empty_" + std::to_string(::getpid()));
  fs::create_directories(empty / "logs");
  std::ofstream(empty / "logs" / "run.log") << "nothing measured\n";
  try {
    write_report(empty.string(), {});
    ADD_FAILURE() << "a folder without results was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_TRUE(contains(e.what(), empty.string())) << e.what();
    EXPECT_TRUE(contains(e.what(), "no status.json and no benchmark result CSV")) << e.what();
  }
  EXPECT_FALSE(fs::exists(empty / "report.md"));
  fs::remove_all(empty);
}

TEST(BenchReportFolder, APipelineFolderRefusesGpu) {
  const fs::path dir =
      fs::temp_directory_path() / ("bench_report_gpu_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(kData + "/report_run", dir, fs::copy_options::recursive);
  ReportOptions options = no_plots();
  options.gpu = "H100_cc90_cu130_x86_64";
  EXPECT_THROW(write_report(dir.string(), options), InvalidArgument);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace slidesparse::pipeline
