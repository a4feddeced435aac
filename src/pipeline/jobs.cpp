#include "slidesparse/pipeline/jobs.hpp"

#include "slidesparse/error.hpp"

namespace slidesparse::pipeline {

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
  return out;
}

std::string join(const std::vector<std::int64_t>& items) {
  std::string out;
  for (std::int64_t i : items) out += (out.empty() ? "" : ",") + std::to_string(i);
  return out;
}

std::vector<std::string> zeros_names(const std::vector<Pattern>& patterns) {
  std::vector<std::string> out;
  for (const Pattern& p : patterns) out.push_back(p.zeros_name());
  return out;
}

std::string model_dir(const std::string& model) { return "models/" + model; }
std::string converted_dir(const std::string& model, const std::string& pattern,
                          const std::string& dtype) {
  return "models/" + model + "-" + pattern + "-" + dtype;
}

// Coarse tuning searches the dense GEMM; the tune command always pairs it with a sparse
// pattern, and the native 2:4 control is the one the report needs anyway.
const char* kCoarseTunePattern = "2_4";

// The command line of a job, from its fields.
std::vector<std::string> arguments(const Job& job, const std::string& root, std::int64_t layers) {
  const std::string out = root + "/" + job.out_dir;
  if (job.kind == "make-model") {
    std::vector<std::string> a = {"make-model", "--preset", job.model};
    if (layers > 0) a.insert(a.end(), {"--layers", std::to_string(layers)});
    a.push_back(out);
    return a;
  }
  if (job.kind == "convert")
    return {"convert", job.input_dir, out, "--pattern", job.patterns[0], "--dtype", job.dtype};
  if (job.kind == "verify") return {"verify", job.input_dir};
  // The sweeps (tuning, kernel benchmark) name their sparse backend last, when not the default.
  const auto sweep = [&job](std::vector<std::string> a) {
    if (!job.sparse_backend.empty()) a.insert(a.end(), {"--sparse-backend", job.sparse_backend});
    return a;
  };
  if (job.task == Task::TuneCoarse || job.task == Task::TuneFine) {
    const std::string pattern = job.task == Task::TuneCoarse ? kCoarseTunePattern : job.patterns[0];
    return sweep({"tune", "--preset", job.model, "--dtype", job.dtype, "--pattern", pattern, "--M",
                  join(job.ms), "--db", root + "/tuning.json"});
  }
  if (job.task == Task::KernelHigh || job.task == Task::KernelLow)
    return sweep({"bench", "kernel", "--preset", job.model, "--dtype", job.dtype, "--pattern",
                  join(job.patterns), "--M", join(job.ms), "--out", out});
  // End-to-end: check, prefill, decode.
  const bool dense = job.patterns[0] == "dense";
  std::vector<std::string> a = {"bench",
                                "e2e",
                                job.input_dir,
                                "--stage",
                                job.task == Task::Decode ? "decode" : "prefill",
                                "--M",
                                join(job.ms),
                                "--backend",
                                dense ? "dense" : "sparse"};
  if (!dense) a.insert(a.end(), {"--pattern", job.patterns[0]});
  if (!job.dense_gemm.empty()) a.insert(a.end(), {"--dense-gemm", job.dense_gemm});
  if (job.dense_fallback) a.push_back("--dense-fallback");
  if (!job.sparse_backend.empty()) a.insert(a.end(), {"--sparse-backend", job.sparse_backend});
  a.insert(a.end(), {"--dtype", job.dtype, "--out", out, "--tuning", root + "/tuning.json"});
  return a;
}

// The GEMM choice of one end-to-end case.
struct EndToEndGemm {
  GemmSide side;
  std::string name;  // a plan name (plan_gemms.hpp)
  bool dense_fallback;
};

class Expander {
 public:
  Expander(const Plan& plan, std::string root) : plan_(plan), root_(std::move(root)) {}

  std::vector<Job> run() {
    for (Task task : plan_.tasks) {
      for (const PlanModel& model : plan_.models) {
        if (task == Task::Prepare) {
          prepare(model);
          continue;
        }
        for (Precision precision : plan_.dtypes) {
          switch (task) {
            case Task::TuneCoarse:
              tune(task, model, precision, {"dense"});
              break;
            case Task::TuneFine:
              for (const Pattern& p : plan_.patterns)
                if (!(plan_.has(Task::TuneCoarse) && p.zeros_name() == kCoarseTunePattern))
                  tune(task, model, precision, {p.zeros_name()});
              break;
            case Task::Check:
            case Task::Prefill:
            case Task::Decode:
              end_to_end_cases(task, model, precision);
              break;
            case Task::KernelHigh:
            case Task::KernelLow:
              kernel(task, model, precision);
              break;
            case Task::Prepare:
              break;
          }
        }
      }
    }
    return jobs_;
  }

 private:
  Job base(Task task, const std::string& kind, const PlanModel& model, const std::string& dtype) {
    Job job;
    job.task = task;
    job.kind = kind;
    job.model = model.name;
    job.dtype = dtype;
    job.timeout_s = plan_.timeout_for(task);
    job.needs_gpu = task != Task::Prepare;
    return job;
  }

  void add(Job job) {
    job.args = arguments(job, root_, plan_.layers);
    jobs_.push_back(std::move(job));
  }

  std::string original_input(const PlanModel& model) const {
    return model.is_preset() ? root_ + "/" + model_dir(model.name) : model.checkpoint;
  }
  std::string make_model_id(const PlanModel& model) const {
    return "prepare/make-model/" + model.name;
  }
  std::string verify_id(const PlanModel& model, const std::string& dtype,
                        const std::string& pattern) const {
    return "prepare/verify/" + model.name + "/" + dtype + "/" + pattern;
  }

  void prepare(const PlanModel& model) {
    const bool make = model.is_preset();
    if (make) {
      Job job = base(Task::Prepare, "make-model", model, "");
      job.id = make_model_id(model);
      job.command = {"make-model"};
      job.out_dir = model_dir(model.name);
      add(job);
    }
    for (Precision precision : plan_.dtypes) {
      const std::string dtype = precision_name(precision);
      for (const Pattern& p : plan_.patterns) {
        const std::string pattern = p.zeros_name();
        Job convert = base(Task::Prepare, "convert", model, dtype);
        convert.id = "prepare/convert/" + model.name + "/" + dtype + "/" + pattern;
        convert.command = {"convert"};
        convert.patterns = {pattern};
        convert.input_dir = original_input(model);
        convert.out_dir = converted_dir(model.name, pattern, dtype);
        if (make) convert.needs = {make_model_id(model)};
        const std::string convert_id = convert.id;
        add(convert);

        Job verify = base(Task::Prepare, "verify", model, dtype);
        verify.id = verify_id(model, dtype, pattern);
        verify.command = {"verify"};
        verify.patterns = {pattern};
        verify.input_dir = root_ + "/" + converted_dir(model.name, pattern, dtype);
        verify.needs = {convert_id};
        add(verify);
      }
    }
  }

  // --sparse-backend of the kernel and tuning jobs: both where the plan runs CUTLASS GEMMs,
  // so their times and tuning entries are there for the end-to-end cases and the report.
  std::string sweep_backend(Precision precision) const {
    return plan_.measures_cutlass(precision) ? "both" : "";
  }

  void tune(Task task, const PlanModel& model, Precision precision,
            const std::vector<std::string>& patterns) {
    const std::string dtype = precision_name(precision);
    Job job = base(task, task_name(task), model, dtype);
    job.sparse_backend = sweep_backend(precision);
    job.id = task_name(task) + "/" + model.name + "/" + dtype +
             (task == Task::TuneFine ? "/" + patterns[0] : "");
    job.command = {"tune"};
    job.patterns = patterns;
    job.ms = plan_.m.tune;
    if (!model.is_preset())
      job.skip_reason = "tuning sweeps preset shapes; '" + model.name + "' is a checkpoint folder";
    add(job);
  }

  // The dense cases (one per dense GEMM), then per pattern one per sparse backend, and as
  // many again with the dense fallback; each GEMM only for the dtypes it runs.
  void end_to_end_cases(Task task, const PlanModel& model, Precision precision) {
    for (const std::string& g : plan_.dense_gemms)
      if (gemm_dtype_conflict(GemmSide::Dense, g, precision).empty())
        end_to_end(task, model, precision, "dense", {GemmSide::Dense, g, false});
    std::vector<bool> fallbacks = {false};
    if (plan_.dense_fallback) fallbacks.push_back(true);
    for (const Pattern& p : plan_.patterns)
      for (bool fallback : fallbacks)
        for (const std::string& b : plan_.sparse_backends)
          if (gemm_dtype_conflict(GemmSide::Sparse, b, precision).empty())
            end_to_end(task, model, precision, p.zeros_name(), {GemmSide::Sparse, b, fallback});
  }

  void end_to_end(Task task, const PlanModel& model, Precision precision,
                  const std::string& pattern, const EndToEndGemm& gemm) {
    const std::string dtype = precision_name(precision);
    const bool dense = pattern == "dense";
    const bool named = gemm.name != default_gemm(gemm.side);
    Job job = base(task, task_name(task), model, dtype);
    job.backend = e2e_backend_label(gemm.side, gemm.name, gemm.dense_fallback);
    // Sparse cases carry their series ("2_8+cutlass+fallback", the report's spelling); the
    // dense GEMMs are one baseline (dense cases), their jobs apart by name. The default GEMMs
    // keep the plain pattern, as before.
    job.series = e2e_series(job.backend);
    job.id = task_name(task) + "/" + model.name + "/" + dtype + "/" + pattern + job.series +
             (dense && named ? "+" + gemm.name : "");
    job.command = {"bench", "e2e"};
    if (named) (gemm.side == GemmSide::Dense ? job.dense_gemm : job.sparse_backend) = gemm.name;
    job.dense_fallback = gemm.dense_fallback;
    job.patterns = {pattern};
    job.ms = task == Task::Check    ? plan_.m.check
             : task == Task::Decode ? plan_.m.decode
                                    : plan_.m.prefill;
    job.out_dir = job.id;
    job.result_csv = task == Task::Decode ? "e2e_decode.csv" : "e2e_prefill.csv";
    job.input_dir =
        dense ? original_input(model) : root_ + "/" + converted_dir(model.name, pattern, dtype);
    if (plan_.has(Task::Prepare)) {
      if (!dense)
        job.needs = {verify_id(model, dtype, pattern)};
      else if (model.is_preset())
        job.needs = {make_model_id(model)};
    }
    add(job);
  }

  void kernel(Task task, const PlanModel& model, Precision precision) {
    const std::string dtype = precision_name(precision);
    Job job = base(task, task_name(task), model, dtype);
    job.sparse_backend = sweep_backend(precision);
    job.id = task_name(task) + "/" + model.name + "/" + dtype;
    job.command = {"bench", "kernel"};
    job.patterns = zeros_names(task == Task::KernelHigh ? plan_.kernel_high : plan_.kernel_low);
    job.ms = plan_.m.kernel;
    job.out_dir = job.id;
    job.result_csv = "kernel_bench.csv";
    if (!model.is_preset())
      job.skip_reason =
          "kernel sweeps use preset shapes; '" + model.name + "' is a checkpoint folder";
    add(job);
  }

  const Plan& plan_;
  std::string root_;
  std::vector<Job> jobs_;
};

}  // namespace

std::vector<Cell> Job::cells() const {
  std::vector<Cell> out;
  const std::vector<std::string> ps = patterns.empty() ? std::vector<std::string>{""} : patterns;
  for (const auto& p : ps) {
    if (ms.empty()) out.push_back({p + series, 0});
    for (std::int64_t m : ms) out.push_back({p + series, m});
  }
  return out;
}

std::vector<Job> expand_jobs(const Plan& plan, const std::string& results_dir) {
  return Expander(plan, results_dir).run();
}

Job subset_job(const Job& job, const std::string& pattern, const std::vector<std::int64_t>& ms,
               const std::string& results_dir) {
  if (job.ms.empty() || ms.empty())
    throw InvalidArgument("job " + job.id + " has no cases to run apart");
  std::string ms_id, ms_dir;
  for (std::int64_t m : ms) {
    ms_id += (ms_id.empty() ? "" : ",") + std::to_string(m);
    ms_dir += "_" + std::to_string(m);
  }
  const bool has_series =
      !job.series.empty() && pattern.size() > job.series.size() &&
      pattern.compare(pattern.size() - job.series.size(), job.series.size(), job.series) == 0;
  if (!job.series.empty() && !has_series)
    throw InvalidArgument("job " + job.id + " has no case pattern '" + pattern + "'");
  Job part = job;
  part.id = job.id + "/" + pattern + "/M" + ms_id;
  part.patterns = {pattern.substr(0, pattern.size() - job.series.size())};
  part.ms = ms;
  if (!job.out_dir.empty())
    part.out_dir = job.out_dir + "/cells/" + pattern + "_M" + ms_dir.substr(1);
  part.needs.clear();
  // Layers only matter to make-model, which has no cases to run apart.
  part.args = arguments(part, results_dir, 0);
  return part;
}

}  // namespace slidesparse::pipeline
