// Expanding plans into jobs and cases: counts, order, dependencies, command lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/jobs.hpp"
#include "slidesparse/pipeline/plan.hpp"
#include "slidesparse/pipeline/results.hpp"

namespace slidesparse::pipeline {
namespace {

namespace fs = std::filesystem;

const std::string kRepo = fs::path(SLIDESPARSE_TEST_DATA_DIR).parent_path().parent_path().string();

std::map<std::string, std::size_t> jobs_per_kind(const std::vector<Job>& jobs) {
  std::map<std::string, std::size_t> out;
  for (const Job& j : jobs) ++out[j.kind];
  return out;
}

std::map<std::string, std::size_t> cases_per_kind(const std::vector<Job>& jobs) {
  std::map<std::string, std::size_t> out;
  for (const Job& j : jobs) out[j.kind] += j.cells().size();
  return out;
}

TEST(PipelineJobs, TheDefaultPlanExpandsToTheSeedsCases) {
  const auto jobs = expand_jobs(load_plan(kRepo + "/plans/default.toml"), "/r");
  // 5 models × 2 dtypes × 4 patterns. End to end per model: INT8 the dense baseline and
  // 4 patterns × (cuSPARSELt, CUTLASS); FP8 the same and the fused cuBLASLt dense: 19.
  const auto jobs_of = jobs_per_kind(jobs);
  EXPECT_EQ(jobs_of.at("make-model"), 5u);
  EXPECT_EQ(jobs_of.at("convert"), 40u);
  EXPECT_EQ(jobs_of.at("verify"), 40u);
  EXPECT_EQ(jobs_of.at("tune-coarse"), 10u);
  EXPECT_EQ(jobs_of.at("tune-fine"), 30u);  // 2_4 comes with coarse tuning
  EXPECT_EQ(jobs_of.at("check"), 95u);
  EXPECT_EQ(jobs_of.at("prefill"), 95u);
  EXPECT_EQ(jobs_of.at("decode"), 95u);
  EXPECT_EQ(jobs_of.at("kernel-high"), 10u);
  EXPECT_EQ(jobs_of.at("kernel-low"), 10u);
  EXPECT_EQ(jobs.size(), 430u);
  const auto cases = cases_per_kind(jobs);
  EXPECT_EQ(cases.at("prefill"), 95u * 8);
  EXPECT_EQ(cases.at("decode"), 95u * 4);
  EXPECT_EQ(cases.at("kernel-high"), 10u * 4 * 9);
  EXPECT_EQ(cases.at("kernel-low"), 10u * 4 * 9);
  EXPECT_EQ(cases.at("tune-coarse"), 10u * 9);
  EXPECT_EQ(cases.at("convert"), 40u);
}

TEST(PipelineJobs, IdsAreUniqueAndDependenciesComeFirst) {
  const auto jobs = expand_jobs(load_plan(kRepo + "/plans/default.toml"), "/r");
  std::map<std::string, std::size_t> position;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_TRUE(position.emplace(jobs[i].id, i).second) << "duplicate id " << jobs[i].id;
    for (const auto& need : jobs[i].needs) {
      ASSERT_TRUE(position.count(need)) << jobs[i].id << " needs " << need << " which comes later";
    }
  }
  // Pipeline order: every task's jobs after the previous task's.
  for (std::size_t i = 1; i < jobs.size(); ++i) EXPECT_LE(jobs[i - 1].task, jobs[i].task);
}

TEST(PipelineJobs, CommandLinesNameTheCommandsFlags) {
  const Plan plan = parse_plan(
      "tasks = [\"prepare\", \"tune-fine\", \"decode\", \"kernel-low\"]\nmodels = "
      "[\"llama3.2-1b\"]\n"
      "dtypes = [\"fp8\"]\npatterns = [\"2_8\"]\nlayers = 2\n[M]\ntune = [64, 128]\ndecode = [64]\n"
      "kernel = [256]\n[kernel]\nlow = [\"2_12\", \"2_inf\"]\n",
      "p.toml", "/tmp");
  const auto jobs = expand_jobs(plan, "/r");
  std::map<std::string, Job> by_id;
  for (const Job& j : jobs) by_id[j.id] = j;
  using V = std::vector<std::string>;
  EXPECT_EQ(by_id.at("prepare/make-model/llama3.2-1b").args,
            (V{"make-model", "--preset", "llama3.2-1b", "--layers", "2", "/r/models/llama3.2-1b"}));
  EXPECT_EQ(by_id.at("prepare/convert/llama3.2-1b/fp8/2_8").args,
            (V{"convert", "/r/models/llama3.2-1b", "/r/models/llama3.2-1b-2_8-fp8", "--pattern",
               "2_8", "--dtype", "fp8"}));
  EXPECT_EQ(by_id.at("prepare/verify/llama3.2-1b/fp8/2_8").args,
            (V{"verify", "/r/models/llama3.2-1b-2_8-fp8"}));
  // Without coarse tuning in the plan, fine tuning covers every pattern.
  EXPECT_EQ(by_id.at("tune-fine/llama3.2-1b/fp8/2_8").args,
            (V{"tune", "--preset", "llama3.2-1b", "--dtype", "fp8", "--pattern", "2_8", "--M",
               "64,128", "--db", "/r/tuning.json"}));
  const Job& sparse = by_id.at("decode/llama3.2-1b/fp8/2_8");
  EXPECT_EQ(sparse.args,
            (V{"bench", "e2e", "/r/models/llama3.2-1b-2_8-fp8", "--stage", "decode", "--M", "64",
               "--backend", "sparse", "--pattern", "2_8", "--dtype", "fp8", "--out",
               "/r/decode/llama3.2-1b/fp8/2_8", "--tuning", "/r/tuning.json"}));
  EXPECT_EQ(sparse.needs, (V{"prepare/verify/llama3.2-1b/fp8/2_8"}));
  const Job& dense = by_id.at("decode/llama3.2-1b/fp8/dense");
  EXPECT_EQ(dense.args[2], "/r/models/llama3.2-1b");
  EXPECT_EQ(dense.needs, (V{"prepare/make-model/llama3.2-1b"}));
  EXPECT_EQ(by_id.at("kernel-low/llama3.2-1b/fp8").args,
            (V{"bench", "kernel", "--preset", "llama3.2-1b", "--dtype", "fp8", "--pattern",
               "2_12,2_inf", "--M", "256", "--out", "/r/kernel-low/llama3.2-1b/fp8"}));
  EXPECT_FALSE(by_id.at("prepare/make-model/llama3.2-1b").needs_gpu);
  EXPECT_TRUE(dense.needs_gpu);
}

TEST(PipelineJobs, EachGemmOfThePlanIsACaseOfItsOwn) {
  const Plan plan = parse_plan(
      "tasks = [\"tune-coarse\", \"prefill\", \"kernel-high\"]\nmodels = [\"llama3.2-1b\"]\n"
      "dtypes = [\"int8\", \"fp8\"]\npatterns = [\"2_8\"]\n"
      "sparse_backends = [\"cusparselt\", \"cutlass\"]\n"
      "dense_gemms = [\"cublaslt\", \"cublaslt_fused\"]\n"
      "[M]\ntune = [64]\nprefill = [512, 4096]\nkernel = [256]\n[kernel]\nhigh = [\"2_8\"]\n",
      "p.toml", "/tmp");
  const auto jobs = expand_jobs(plan, "/r");
  using V = std::vector<std::string>;
  V ids;
  for (const Job& j : jobs) ids.push_back(j.id);
  // cublaslt_fused takes FP8 only: INT8 has one dense case.
  EXPECT_EQ(ids,
            (V{"tune-coarse/llama3.2-1b/int8", "tune-coarse/llama3.2-1b/fp8",
               "prefill/llama3.2-1b/int8/dense+cublaslt", "prefill/llama3.2-1b/int8/2_8",
               "prefill/llama3.2-1b/int8/2_8+cutlass", "prefill/llama3.2-1b/fp8/dense+cublaslt",
               "prefill/llama3.2-1b/fp8/dense+cublaslt_fused", "prefill/llama3.2-1b/fp8/2_8",
               "prefill/llama3.2-1b/fp8/2_8+cutlass", "kernel-high/llama3.2-1b/int8",
               "kernel-high/llama3.2-1b/fp8"}));
  std::map<std::string, Job> by_id;
  for (const Job& j : jobs) by_id[j.id] = j;
  // The tuning and kernel jobs measure the CUTLASS GEMMs beside cuSPARSELt.
  EXPECT_EQ(by_id.at("tune-coarse/llama3.2-1b/fp8").args,
            (V{"tune", "--preset", "llama3.2-1b", "--dtype", "fp8", "--pattern", "2_4", "--M", "64",
               "--db", "/r/tuning.json", "--sparse-backend", "both"}));
  EXPECT_EQ(
      by_id.at("kernel-high/llama3.2-1b/int8").args,
      (V{"bench", "kernel", "--preset", "llama3.2-1b", "--dtype", "int8", "--pattern", "2_8", "--M",
         "256", "--out", "/r/kernel-high/llama3.2-1b/int8", "--sparse-backend", "both"}));
  // End to end: each GEMM in a folder of its own, named in the CSV's backend column.
  const Job& cusparselt = by_id.at("prefill/llama3.2-1b/fp8/2_8");
  EXPECT_EQ(cusparselt.args,
            (V{"bench", "e2e", "/r/models/llama3.2-1b-2_8-fp8", "--stage", "prefill", "--M",
               "512,4096", "--backend", "sparse", "--pattern", "2_8", "--dtype", "fp8", "--out",
               "/r/prefill/llama3.2-1b/fp8/2_8", "--tuning", "/r/tuning.json"}));
  EXPECT_EQ(cusparselt.backend, "sparse");
  const Job& cutlass = by_id.at("prefill/llama3.2-1b/fp8/2_8+cutlass");
  EXPECT_EQ(
      cutlass.args,
      (V{"bench", "e2e", "/r/models/llama3.2-1b-2_8-fp8", "--stage", "prefill", "--M", "512,4096",
         "--backend", "sparse", "--pattern", "2_8", "--sparse-backend", "cutlass", "--dtype", "fp8",
         "--out", "/r/prefill/llama3.2-1b/fp8/2_8+cutlass", "--tuning", "/r/tuning.json"}));
  EXPECT_EQ(cutlass.backend, "sparse-cutlass");
  EXPECT_EQ(cutlass.out_dir, "prefill/llama3.2-1b/fp8/2_8+cutlass");
  EXPECT_EQ(cutlass.result_csv, "e2e_prefill.csv");
  // Its cases carry the series, as the report's columns and case_results' keys do.
  EXPECT_EQ(cutlass.cells(), (std::vector<Cell>{{"2_8+cutlass", 512}, {"2_8+cutlass", 4096}}));
  const Job& plain = by_id.at("prefill/llama3.2-1b/fp8/dense+cublaslt");
  EXPECT_EQ(plain.args,
            (V{"bench", "e2e", "/r/models/llama3.2-1b", "--stage", "prefill", "--M", "512,4096",
               "--backend", "dense", "--dense-gemm", "cublaslt", "--dtype", "fp8", "--out",
               "/r/prefill/llama3.2-1b/fp8/dense+cublaslt", "--tuning", "/r/tuning.json"}));
  EXPECT_EQ(plain.backend, "dense-cublaslt");
  const Job& fused = by_id.at("prefill/llama3.2-1b/fp8/dense+cublaslt_fused");
  EXPECT_EQ(fused.args,
            (V{"bench", "e2e", "/r/models/llama3.2-1b", "--stage", "prefill", "--M", "512,4096",
               "--backend", "dense", "--dense-gemm", "cublaslt_fused", "--dtype", "fp8", "--out",
               "/r/prefill/llama3.2-1b/fp8/dense+cublaslt_fused", "--tuning", "/r/tuning.json"}));
  EXPECT_EQ(fused.backend, "dense-cublaslt_fused");
  EXPECT_EQ(fused.cells(), (std::vector<Cell>{{"dense", 512}, {"dense", 4096}}));
  // No two jobs write one folder, and none writes inside another's (a rerun moves a job's
  // folder aside whole).
  const auto holds = [](const std::string& outer, const std::string& inner) {
    return inner.rfind(outer, 0) == 0 &&
           (inner.size() == outer.size() || inner[outer.size()] == '/');
  };
  for (const Job& a : jobs)
    for (const Job& b : jobs) {
      if (&a == &b || a.out_dir.empty() || b.out_dir.empty()) continue;
      EXPECT_FALSE(holds(a.out_dir, b.out_dir)) << a.out_dir << " holds " << b.out_dir;
    }
  // A case rerun apart keeps its GEMM.
  const Job part = subset_job(cutlass, "2_8+cutlass", {4096}, "/r");
  EXPECT_EQ(part.id, "prefill/llama3.2-1b/fp8/2_8+cutlass/2_8+cutlass/M4096");
  EXPECT_EQ(part.out_dir, "prefill/llama3.2-1b/fp8/2_8+cutlass/cells/2_8+cutlass_M4096");
  EXPECT_EQ(part.cells(), (std::vector<Cell>{{"2_8+cutlass", 4096}}));
  EXPECT_EQ(part.args,
            (V{"bench", "e2e", "/r/models/llama3.2-1b-2_8-fp8", "--stage", "prefill", "--M", "4096",
               "--backend", "sparse", "--pattern", "2_8", "--sparse-backend", "cutlass", "--dtype",
               "fp8", "--out", "/r/prefill/llama3.2-1b/fp8/2_8+cutlass/cells/2_8+cutlass_M4096",
               "--tuning", "/r/tuning.json"}));
  EXPECT_THROW(subset_job(cutlass, "2_8", {4096}, "/r"), InvalidArgument);
}

TEST(PipelineJobs, TheDenseFallbackRunsEverySparseCaseOnceMore) {
  const Plan plan = parse_plan(
      "tasks = [\"decode\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"int8\", \"bf16\"]\n"
      "patterns = [\"2_4\", \"2_8\"]\nsparse_backends = [\"cusparselt\", \"cutlass\"]\n"
      "dense_fallback = true\n[M]\ndecode = [64]\n",
      "p.toml", "/tmp");
  using V = std::vector<std::string>;
  V ids, labels;
  for (const Job& j : expand_jobs(plan, "/r")) {
    ids.push_back(j.id.substr(std::string("decode/llama3.2-1b/").size()));
    labels.push_back(j.backend);
  }
  // BF16 has no CUTLASS GEMM: its sparse cases run on cuSPARSELt only.
  EXPECT_EQ(ids, (V{"int8/dense", "int8/2_4", "int8/2_4+cutlass", "int8/2_4+fallback",
                    "int8/2_4+cutlass+fallback", "int8/2_8", "int8/2_8+cutlass",
                    "int8/2_8+fallback", "int8/2_8+cutlass+fallback", "bf16/dense", "bf16/2_4",
                    "bf16/2_4+fallback", "bf16/2_8", "bf16/2_8+fallback"}));
  EXPECT_EQ(labels[4], "sparse-cutlass-fallback");
  EXPECT_EQ(labels[11], "sparse-fallback");
  const auto jobs = expand_jobs(plan, "/r");
  EXPECT_EQ(jobs[4].args, (V{"bench",
                             "e2e",
                             "/r/models/llama3.2-1b-2_4-int8",
                             "--stage",
                             "decode",
                             "--M",
                             "64",
                             "--backend",
                             "sparse",
                             "--pattern",
                             "2_4",
                             "--dense-fallback",
                             "--sparse-backend",
                             "cutlass",
                             "--dtype",
                             "int8",
                             "--out",
                             "/r/decode/llama3.2-1b/int8/2_4+cutlass+fallback",
                             "--tuning",
                             "/r/tuning.json"}));
  // Auto is passed through (the command checks it); it may pick CUTLASS, so the sweeps
  // measure it.
  const Plan automatic = parse_plan(
      "tasks = [\"decode\", \"kernel-low\"]\nmodels = [\"llama3.2-1b\"]\ndtypes = [\"fp8\"]\n"
      "patterns = [\"2_8\"]\nsparse_backends = [\"auto\"]\n[M]\ndecode = [64]\nkernel = [64]\n",
      "p.toml", "/tmp");
  const auto auto_jobs = expand_jobs(automatic, "/r");
  ASSERT_EQ(auto_jobs.size(), 3u);
  EXPECT_EQ(auto_jobs[1].id, "decode/llama3.2-1b/fp8/2_8+auto");
  EXPECT_EQ(auto_jobs[1].backend, "sparse-auto");
  EXPECT_EQ(gemm_flags(auto_jobs[1].args), "--sparse-backend auto");
  EXPECT_EQ(gemm_flags(auto_jobs[2].args), "--sparse-backend both");
}

TEST(PipelineJobs, ResultRowsNameTheirCaseByPatternAndSeries) {
  EXPECT_EQ(e2e_series("sparse"), "");
  EXPECT_EQ(e2e_series("sparse-cutlass"), "+cutlass");
  EXPECT_EQ(e2e_series("sparse-cutlass-fallback"), "+cutlass+fallback");
  EXPECT_EQ(e2e_series("sparse-auto"), "+auto");
  EXPECT_EQ(e2e_series("dense-cublaslt_fused"), "");  // one dense baseline
  const auto rows =
      case_results(CsvFile::parse("model,backend,pattern,M,status,error\n"
                                  "m,sparse-cutlass,2_8,512,passed,\n"
                                  "m,sparse-cutlass-fallback,2_8,512,failed,out of memory\n"
                                  "m,dense-cublaslt_fused,dense,512,passed,\n",
                                  "e2e_prefill.csv"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows.at({"2_8+cutlass", 512}).status, "passed");
  EXPECT_EQ(rows.at({"2_8+cutlass+fallback", 512}).error, "out of memory");
  EXPECT_EQ(rows.at({"dense", 512}).status, "passed");
  // Kernel rows have no backend column: their pattern alone.
  const auto kernel =
      case_results(CsvFile::parse("layer,pattern,M,status,error\nqkv,2_8,64,passed,\n"
                                  "o,2_8,64,failed,x\n",
                                  "kernel_bench.csv"));
  EXPECT_EQ(kernel.at({"2_8", 64}).status, "failed");
}

TEST(PipelineJobs, ASubsetJobRunsOnlyItsCasesInItsOwnFolder) {
  const Plan plan = parse_plan(
      "tasks = [\"kernel-high\"]\nmodels = [\"qwen2.5-7b\"]\ndtypes = [\"int8\"]\n[M]\n"
      "kernel = [64, 65536]\n",
      "p.toml", "/tmp");
  const auto jobs = expand_jobs(plan, "/r");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].cells().size(), 8u);  // 4 default high patterns × 2 M
  const Job one = subset_job(jobs[0], "2_8", {65536}, "/r");
  EXPECT_EQ(one.id, "kernel-high/qwen2.5-7b/int8/2_8/M65536");
  EXPECT_EQ(one.out_dir, "kernel-high/qwen2.5-7b/int8/cells/2_8_M65536");
  ASSERT_EQ(one.cells().size(), 1u);
  const auto& a = one.args;
  EXPECT_EQ(a[std::find(a.begin(), a.end(), "--pattern") - a.begin() + 1], "2_8");
  EXPECT_EQ(a[std::find(a.begin(), a.end(), "--M") - a.begin() + 1], "65536");
  EXPECT_EQ(a.back(), "/r/kernel-high/qwen2.5-7b/int8/cells/2_8_M65536");
  const Job two = subset_job(jobs[0], "2_6", {64, 65536}, "/r");
  EXPECT_EQ(two.id, "kernel-high/qwen2.5-7b/int8/2_6/M64,65536");
  EXPECT_EQ(two.out_dir, "kernel-high/qwen2.5-7b/int8/cells/2_6_M64_65536");
  EXPECT_EQ(two.cells(), (std::vector<Cell>{{"2_6", 64}, {"2_6", 65536}}));
}

}  // namespace
}  // namespace slidesparse::pipeline
