#include "slidesparse/pipeline/estimate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "slidesparse/pipeline/plan_gemms.hpp"
#include "slidesparse/presets.hpp"

namespace slidesparse::pipeline {

namespace {

// Mean seconds per job and per case over the measured jobs of one key; per case and unit of
// model work (model_work) over the jobs whose model's size is known.
struct Timing {
  double seconds = 0;
  long cases = 0;
  int jobs = 0;
  double sized_seconds = 0, sized_work = 0;
  double per_case() const { return cases > 0 ? seconds / static_cast<double>(cases) : 0; }
  void add(double s, long c, double work) {
    seconds += s;
    cases += c;
    ++jobs;
    if (work > 0) {
      sized_seconds += s;
      sized_work += work * static_cast<double>(c);
    }
  }
  // Seconds for `c` cases of a model of `work`: scaled by size when both sides know theirs.
  double project(long c, double work) const {
    if (work > 0 && sized_work > 0)
      return sized_seconds / sized_work * work * static_cast<double>(c);
    return per_case() * static_cast<double>(c);
  }
};

std::string duration_text(double s) {
  char buffer[48];
  const long total = std::lround(s);
  if (total < 60)
    std::snprintf(buffer, sizeof buffer, "%ld s", total);
  else if (total < 3600)
    std::snprintf(buffer, sizeof buffer, "%ld min %02ld s", total / 60, total % 60);
  else
    std::snprintf(buffer, sizeof buffer, "%ld h %02ld min", total / 3600, (total % 3600) / 60);
  return buffer;
}

// Kinds whose time grows with the number of decoder layers of the made models.
bool depends_on_depth(const std::string& kind) {
  return kind == "make-model" || kind == "convert" || kind == "verify" || kind == "check" ||
         kind == "prefill" || kind == "decode";
}

// How much a job of `kind` on `model` weighs against another model's: the weights of one
// decoder layer's linears (what a case of tuning or of a kernel sweep multiplies), times the
// decoder layers for the jobs that make, convert or run the whole model (`layers` when the plan
// cuts the models, else the preset's). 0 for a model that is not a preset (a checkpoint folder):
// its jobs are projected per case, unscaled.
double model_work(const std::string& kind, const std::string& model, std::int64_t layers) {
  const ModelPreset* preset = nullptr;
  for (const ModelPreset& p : model_presets())
    if (p.name == model) preset = &p;
  if (!preset) return 0;
  double per_layer = 0;
  for (const LinearShape& shape : linear_shapes(*preset))
    per_layer += static_cast<double>(shape.n) * static_cast<double>(shape.k);
  if (!depends_on_depth(kind)) return per_layer;
  return per_layer * static_cast<double>(layers > 0 ? layers : preset->layers);
}

// The same cases (pattern and M) on the same GEMMs as `job`: then its time is that job's time.
bool same_cases(const JobRecord& r, const Job& job) {
  const std::vector<Cell> cells = job.cells();
  if (r.cells.size() != cells.size() || gemm_flags(r.argv) != gemm_flags(job.args)) return false;
  for (std::size_t i = 0; i < cells.size(); ++i)
    if (r.cells[i].pattern != cells[i].pattern || r.cells[i].m != cells[i].m) return false;
  return true;
}

}  // namespace

Estimate estimate_plan(const std::vector<Job>& jobs, std::int64_t layers,
                       const std::vector<PipelineStatus>& measured,
                       const std::vector<std::string>& measured_paths,
                       const std::string& gpu_identity) {
  Estimate e;
  std::map<std::string, int> jobs_per_gpu;
  for (const PipelineStatus& s : measured)
    for (const JobRecord& r : s.jobs) jobs_per_gpu[s.hardware.identity()] += r.status == "passed";
  e.gpu = gpu_identity;
  if (!jobs_per_gpu.count(gpu_identity) && gpu_identity == "no GPU" && !jobs_per_gpu.empty()) {
    const auto most =
        std::max_element(jobs_per_gpu.begin(), jobs_per_gpu.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    e.gpu = most->first;
    e.notes.push_back("this machine has no GPU: projected for " + e.gpu +
                      ", where the most jobs were measured");
  }
  for (const auto& [gpu, count] : jobs_per_gpu)
    if (gpu != e.gpu)
      e.notes.push_back("left out " + std::to_string(count) +
                        " measured jobs of another GPU: " + gpu);

  // Keys: kind, then GEMM flags ("" for the defaults), then model; "*" for any GEMM flags.
  std::map<std::string, const JobRecord*> by_id;
  std::map<std::string, Timing> by_kind_model, by_kind;
  const auto key = [](const std::string& kind, const std::string& flags) {
    return kind + "\n" + flags;
  };
  int other_depth = 0;
  for (std::size_t i = 0; i < measured.size(); ++i) {
    const PipelineStatus& s = measured[i];
    if (s.hardware.identity() != e.gpu) continue;
    if (i < measured_paths.size()) e.sources.push_back(measured_paths[i]);
    const std::int64_t measured_layers =
        s.plan.is_object() ? s.plan.value("layers", std::int64_t{0}) : 0;
    for (const JobRecord& r : s.jobs) {
      if (r.status != "passed" || r.seconds <= 0) continue;
      // Made models of another depth say nothing about the time of jobs that run them.
      if (measured_layers != layers && depends_on_depth(r.kind)) {
        ++other_depth;
        continue;
      }
      const long cases = static_cast<long>(std::max<std::size_t>(1, r.cells.size()));
      by_id[r.id] = &r;
      const double work = model_work(r.kind, r.model, layers);
      for (const std::string& flags : {gemm_flags(r.argv), std::string("*")}) {
        by_kind_model[key(r.kind, flags) + "\n" + r.model].add(r.seconds, cases, work);
        by_kind[key(r.kind, flags)].add(r.seconds, cases, work);
      }
    }
  }
  if (other_depth > 0)
    e.notes.push_back("left out " + std::to_string(other_depth) +
                      " measured jobs of models with another number of layers");

  for (const Job& job : jobs) {
    auto line = std::find_if(e.lines.begin(), e.lines.end(),
                             [&](const EstimateLine& l) { return l.kind == job.kind; });
    if (line == e.lines.end()) {
      e.lines.push_back({job.kind});
      line = e.lines.end() - 1;
    }
    const long cases = static_cast<long>(job.cells().size());
    line->jobs += 1;
    line->cases += cases;
    double seconds = 0;
    const auto same = by_id.find(job.id);
    if (same != by_id.end() && same_cases(*same->second, job)) {
      seconds = same->second->seconds;
      ++line->same_job;
    } else {
      const std::string own = key(job.kind, gemm_flags(job.args));
      const std::string any = key(job.kind, "*");
      const bool gemms_measured = by_kind.count(own) > 0;
      const std::string& k = gemms_measured ? own : any;
      if (const auto km = by_kind_model.find(k + "\n" + job.model); km != by_kind_model.end()) {
        seconds = km->second.per_case() * static_cast<double>(cases);
        ++line->same_model;
      } else if (const auto kk = by_kind.find(k); kk != by_kind.end()) {
        seconds = kk->second.project(cases, model_work(job.kind, job.model, layers));
        ++line->other_models;
      } else {
        ++line->unknown;
        ++e.unknown_jobs;
      }
      if (!gemms_measured && by_kind.count(any)) ++line->other_gemms;
    }
    line->seconds += seconds;
    e.seconds += seconds;
  }
  if (e.sources.empty())
    e.notes.push_back("no measured jobs of " + e.gpu + ": nothing to project from");
  return e;
}

std::string format_estimate(const Estimate& e, const std::string& plan_name) {
  std::string out = "Projected time of plan '" + plan_name + "' on " + e.gpu + "\n";
  for (const auto& s : e.sources) out += "  measured in " + s + "\n";
  for (const auto& n : e.notes) out += "  note: " + n + "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-12s %6s %7s %9s %10s %12s %8s %12s\n", "kind", "jobs",
                "cases", "same job", "same model", "other models", "no data", "projected");
  out += line;
  int jobs = 0;
  long cases = 0;
  for (const EstimateLine& l : e.lines) {
    std::snprintf(line, sizeof line, "%-12s %6d %7ld %9d %10d %12d %8d %12s\n", l.kind.c_str(),
                  l.jobs, l.cases, l.same_job, l.same_model, l.other_models, l.unknown,
                  duration_text(l.seconds).c_str());
    out += line;
    jobs += l.jobs;
    cases += l.cases;
  }
  std::snprintf(line, sizeof line, "%-12s %6d %7ld %9s %10s %12s %8d %12s\n", "total", jobs, cases,
                "", "", "", e.unknown_jobs, duration_text(e.seconds).c_str());
  out += line;
  int borrowed = 0;
  for (const EstimateLine& l : e.lines) borrowed += l.same_model + l.other_models;
  if (borrowed > 0)
    out += "  " + std::to_string(borrowed) +
           " jobs are projected from the seconds per case of other jobs of their kind, scaled "
           "by the size of the models' linear layers; time per case also grows with M, which "
           "this leaves out, so these are rough\n";
  int other_gemms = 0;
  for (const EstimateLine& l : e.lines) other_gemms += l.other_gemms;
  if (other_gemms > 0)
    out += "  " + std::to_string(other_gemms) +
           " of them run GEMMs (CUTLASS, a named dense GEMM, the dense fallback) that no measured "
           "job of their kind ran: projected from their kind on other GEMMs\n";
  if (e.unknown_jobs > 0)
    out += "  " + std::to_string(e.unknown_jobs) +
           " jobs have no measurement of their kind: the total leaves them out (run a short plan "
           "first)\n";
  return out;
}

}  // namespace slidesparse::pipeline
