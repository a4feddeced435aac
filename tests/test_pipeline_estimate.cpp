// Projecting a plan's time from the job times earlier runs recorded.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "slidesparse/pipeline/estimate.hpp"
#include "slidesparse/pipeline/jobs.hpp"
#include "slidesparse/pipeline/plan.hpp"
#include "slidesparse/presets.hpp"

namespace slidesparse::pipeline {
namespace {

JobRecord measured(const std::string& id, const std::string& kind, const std::string& model,
                   double seconds, int cases, const std::string& status = "passed") {
  JobRecord r;
  r.id = id;
  r.kind = kind;
  r.task = kind;
  r.model = model;
  r.status = status;
  r.seconds = seconds;
  for (int i = 0; i < cases; ++i) r.cells.push_back({"2_8", 64 * (i + 1), status, "", ""});
  return r;
}

PipelineStatus run_on(const std::string& info_file, std::vector<JobRecord> jobs) {
  PipelineStatus s;
  s.hardware.gpu = true;
  s.hardware.name = info_file;
  s.hardware.compute_capability = "9.0";
  s.hardware.cuda_runtime = "13.0";
  s.jobs = std::move(jobs);
  return s;
}

// Weights of all linear layers of a preset: what the projection scales whole-model jobs by.
double linear_weights(const std::string& preset) {
  const ModelPreset& p = find_preset(preset);
  double per_layer = 0;
  for (const LinearShape& s : linear_shapes(p)) per_layer += static_cast<double>(s.n * s.k);
  return per_layer * static_cast<double>(p.layers);
}

const EstimateLine& line(const Estimate& e, const std::string& kind) {
  for (const auto& l : e.lines)
    if (l.kind == kind) return l;
  throw std::runtime_error("no line " + kind);
}

TEST(PipelineEstimate, ProjectsFromTheSameJobThenModelThenKind) {
  const Plan plan = parse_plan(
      "tasks = [\"kernel-high\", \"prefill\"]\nmodels = [\"llama3.2-1b\", \"qwen2.5-7b\"]\ndtypes "
      "= [\"int8\"]\n"
      "patterns = [\"2_8\"]\n[M]\nkernel = [64, 128]\nprefill = [512, 1024, 2048, 4096]\n",
      "p.toml", "/tmp");
  const auto jobs = expand_jobs(plan, "/r");
  // The very job, with the same cases: 100 s.
  JobRecord same_job =
      measured("kernel-high/llama3.2-1b/int8", "kernel-high", "llama3.2-1b", 100, 0);
  for (const Job& job : jobs)
    if (job.id == same_job.id)
      for (const Cell& c : job.cells())
        same_job.cells.push_back({c.pattern, c.m, "passed", "", ""});
  const PipelineStatus h100 = run_on(
      "H100",
      {same_job,
       // same kind on qwen with 2 cases: 30 s per case
       measured("kernel-high/qwen2.5-7b/int8/old", "kernel-high", "qwen2.5-7b", 60, 2),
       // prefill measured only on another model: 5 s per case
       measured("prefill/bitnet-2b/int8/dense", "prefill", "bitnet-2b", 10, 2),
       // failed jobs are no measurement
       measured("prefill/llama3.2-1b/int8/dense", "prefill", "llama3.2-1b", 1, 4, "failed")});
  const PipelineStatus a100 = run_on(
      "A100", {measured("prefill/llama3.2-1b/int8/dense", "prefill", "llama3.2-1b", 999, 4)});
  const Estimate e = estimate_plan(jobs, 0, {h100, a100}, {"h100/status.json", "a100/status.json"},
                                   h100.hardware.identity());
  const EstimateLine& kernel = line(e, "kernel-high");
  EXPECT_EQ(kernel.jobs, 2);
  EXPECT_EQ(kernel.cases, 2 * 4 * 2);  // 2 models × default high patterns × 2 M
  EXPECT_EQ(kernel.same_job, 1);
  EXPECT_EQ(kernel.same_model, 1);
  EXPECT_DOUBLE_EQ(kernel.seconds, 100 + 30.0 * 8);
  const EstimateLine& prefill = line(e, "prefill");
  EXPECT_EQ(prefill.jobs, 4);  // 2 models × (dense, 2_8)
  EXPECT_EQ(prefill.other_models, 4);
  // 5 s per case on bitnet-2b, scaled by each model's linear weights against bitnet-2b's.
  const double bitnet = linear_weights("bitnet-2b");
  const double prefill_seconds = 2 * 4 * 5.0 * linear_weights("llama3.2-1b") / bitnet +
                                 2 * 4 * 5.0 * linear_weights("qwen2.5-7b") / bitnet;
  EXPECT_NEAR(prefill.seconds, prefill_seconds, 1e-9 * prefill_seconds);
  EXPECT_GT(linear_weights("qwen2.5-7b"), 2 * bitnet);  // the 7B model is projected slower
  EXPECT_DOUBLE_EQ(e.seconds, kernel.seconds + prefill.seconds);
  EXPECT_EQ(e.unknown_jobs, 0);
  ASSERT_EQ(e.sources.size(), 1u);
  EXPECT_EQ(e.sources[0], "h100/status.json");
  const std::string table = format_estimate(e, plan.name);
  EXPECT_NE(table.find("total"), std::string::npos);
  EXPECT_NE(table.find("scaled by the size of the models' linear layers"), std::string::npos)
      << table;
  EXPECT_NE(table.find("left out 1 measured jobs of another GPU: A100, cc 9.0, CUDA 13.0"),
            std::string::npos)
      << table;
}

// Weights of one decoder layer's linears: what kernel sweeps are scaled by.
double layer_weights(const std::string& preset) {
  return linear_weights(preset) / static_cast<double>(find_preset(preset).layers);
}

// A passed record of `job` as a run measured it: its cases and its command line.
JobRecord measured_as(const Job& job, double seconds) {
  JobRecord r = measured(job.id, job.kind, job.model, seconds, 0);
  r.argv = job.args;
  for (const Cell& c : job.cells()) r.cells.push_back({c.pattern, c.m, "passed", "", ""});
  return r;
}

TEST(PipelineEstimate, CountsEveryGemmsCasesAndPrefersTimesOfTheSameGemms) {
  const std::string head =
      "models = [\"llama3.2-1b\", \"qwen2.5-7b\"]\ndtypes = [\"fp8\"]\npatterns = [\"2_8\"]\n";
  const std::string lists =
      "[M]\nprefill = [512, 1024]\nkernel = [64]\n[kernel]\nhigh = [\"2_8\"]\n";
  // What an earlier run measured: the default GEMMs on the 1B model, CUTLASS on the 7B one.
  const Plan before = parse_plan("tasks = [\"prefill\", \"kernel-high\"]\n" + head +
                                     "sparse_backends = [\"cusparselt\", \"cutlass\"]\n" + lists,
                                 "before.toml", "/tmp");
  std::map<std::string, Job> earlier;
  for (const Job& j : expand_jobs(before, "/old")) earlier[j.id] = j;
  Job old_kernel = earlier.at("kernel-high/llama3.2-1b/fp8");
  old_kernel.args = {"bench", "kernel", "--preset", "llama3.2-1b"};  // without CUTLASS
  const PipelineStatus h100 =
      run_on("H100", {measured_as(earlier.at("prefill/llama3.2-1b/fp8/2_8"), 40),
                      measured_as(earlier.at("prefill/qwen2.5-7b/fp8/2_8+cutlass"), 60),
                      measured_as(old_kernel, 100)});

  const Plan plan = parse_plan("tasks = [\"prefill\", \"kernel-high\"]\n" + head +
                                   "sparse_backends = [\"cusparselt\", \"cutlass\"]\n"
                                   "dense_gemms = [\"auto\", \"cublaslt_fused\"]\n" +
                                   lists,
                               "p.toml", "/tmp");
  const Estimate e =
      estimate_plan(expand_jobs(plan, "/r"), 0, {h100}, {"s.json"}, h100.hardware.identity());
  const double wl = linear_weights("llama3.2-1b"), wq = linear_weights("qwen2.5-7b");
  const EstimateLine& prefill = line(e, "prefill");
  // 2 models × (dense, fused dense, 2_8 on cuSPARSELt, 2_8 on CUTLASS), 2 M each.
  EXPECT_EQ(prefill.jobs, 8);
  EXPECT_EQ(prefill.cases, 16);
  EXPECT_EQ(prefill.same_job, 2);      // the two measured ones
  EXPECT_EQ(prefill.same_model, 3);    // 1B dense (20 s per case), both fused dense
  EXPECT_EQ(prefill.other_models, 3);  // 1B CUTLASS from 7B CUTLASS; 7B defaults from the 1B's
  EXPECT_EQ(prefill.other_gemms, 2);   // no fused dense was measured: any GEMM of the model
  const double expected = 40 + 60      // the same jobs
                          + 2 * 20.0 + 2 * 20.0        // 1B dense and fused dense: 1B per case
                          + 2 * 30.0                   // 7B fused dense: 7B per case (CUTLASS)
                          + 2 * 30.0 * wl / wq         // 1B CUTLASS: the 7B's, scaled
                          + 2 * (2 * 20.0 * wq / wl);  // 7B dense and 2_8: the 1B's, scaled
  EXPECT_NEAR(prefill.seconds, expected, 1e-9 * expected);
  // The kernel jobs now measure CUTLASS too: not the job measured without it.
  const EstimateLine& kernel = line(e, "kernel-high");
  EXPECT_EQ(kernel.jobs, 2);
  EXPECT_EQ(kernel.same_job, 0);
  EXPECT_EQ(kernel.same_model, 1);
  EXPECT_EQ(kernel.other_models, 1);
  EXPECT_EQ(kernel.other_gemms, 2);
  const double kernel_expected =
      100 + 100 * layer_weights("qwen2.5-7b") / layer_weights("llama3.2-1b");
  EXPECT_NEAR(kernel.seconds, kernel_expected, 1e-9 * kernel_expected);
  EXPECT_NE(format_estimate(e, plan.name)
                .find("4 of them run GEMMs (CUTLASS, a named dense GEMM, the dense fallback) that "
                      "no measured job of their kind ran"),
            std::string::npos)
      << format_estimate(e, plan.name);
}

TEST(PipelineEstimate, WithoutMeasurementsItSaysSo) {
  const Plan plan = parse_plan(
      "tasks = [\"kernel-low\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\"]\n[M]\nkernel = "
      "[64]\n",
      "p.toml", "/tmp");
  const Estimate e = estimate_plan(expand_jobs(plan, "/r"), 0, {}, {}, "no GPU");
  EXPECT_EQ(e.unknown_jobs, 1);
  EXPECT_DOUBLE_EQ(e.seconds, 0);
  EXPECT_NE(format_estimate(e, plan.name).find("1 jobs have no measurement of their kind"),
            std::string::npos);
}

TEST(PipelineEstimate, AMachineWithoutAGpuProjectsForTheMeasuredOne) {
  const Plan plan = parse_plan(
      "tasks = [\"kernel-low\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\"]\n[M]\nkernel = "
      "[64]\n",
      "p.toml", "/tmp");
  const PipelineStatus h100 =
      run_on("H100", {measured("kernel-low/llama3.2-1b/int8", "kernel-low", "llama3.2-1b", 42, 4)});
  const Estimate e = estimate_plan(expand_jobs(plan, "/r"), 0, {h100}, {"s.json"}, "no GPU");
  EXPECT_EQ(e.gpu, h100.hardware.identity());
  EXPECT_DOUBLE_EQ(e.seconds, 42);
  ASSERT_FALSE(e.notes.empty());
  EXPECT_NE(e.notes[0].find("this machine has no GPU"), std::string::npos);
}

TEST(PipelineEstimate, MeasurementsOfShallowerModelsDoNotProjectDeepOnes) {
  const Plan plan = parse_plan(
      "tasks = [\"prepare\", \"kernel-low\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\"]\n"
      "patterns = [\"2_8\"]\n[M]\nkernel = [64]\n",
      "p.toml", "/tmp");
  PipelineStatus two_layers =
      run_on("H100", {measured("prepare/make-model/llama3.2-1b", "make-model", "llama3.2-1b", 2, 1),
                      measured("kernel-low/llama3.2-1b/int8", "kernel-low", "llama3.2-1b", 40, 4)});
  two_layers.plan = {{"layers", 2}};
  const Estimate e =
      estimate_plan(expand_jobs(plan, "/r"), plan.layers, {two_layers}, {"s.json"}, "no GPU");
  EXPECT_EQ(line(e, "make-model").unknown, 1);     // the 2-layer model's time says nothing
  EXPECT_EQ(line(e, "kernel-low").same_model, 1);  // kernel sweeps take preset shapes
  EXPECT_DOUBLE_EQ(e.seconds, 40);
  EXPECT_NE(std::find(e.notes.begin(), e.notes.end(),
                      "left out 1 measured jobs of models with another number of layers"),
            e.notes.end());
}

}  // namespace
}  // namespace slidesparse::pipeline
