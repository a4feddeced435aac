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
  if (job.task == Task::TuneCoarse || job.task == Task::TuneFine) {
    const std::string pattern = job.task == Task::TuneCoarse ? kCoarseTunePattern : job.patterns[0];
    return {"tune",
            "--preset",
            job.model,
            "--dtype",
            job.dtype,
            "--pattern",
            pattern,
            "--M",
            join(job.ms),
            "--db",
            root + "/tuning.json"};
  }
  if (job.task == Task::KernelHigh || job.task == Task::KernelLow)
    return {"bench",     "kernel",           "--preset", job.model,    "--dtype", job.dtype,
            "--pattern", join(job.patterns), "--M",      join(job.ms), "--out",   out};
  // End-to-end: check, prefill, decode.
  std::vector<std::string> a = {"bench",
                                "e2e",
                                job.input_dir,
                                "--stage",
                                job.task == Task::Decode ? "decode" : "prefill",
                                "--M",
                                join(job.ms),
                                "--backend",
                                job.backend};
  if (job.backend == "sparse") a.insert(a.end(), {"--pattern", job.patterns[0]});
  a.insert(a.end(), {"--dtype", job.dtype, "--out", out, "--tuning", root + "/tuning.json"});
  return a;
}

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
          const std::string dtype = precision_name(precision);
          switch (task) {
            case Task::TuneCoarse:
              tune(task, model, dtype, {"dense"});
              break;
            case Task::TuneFine:
              for (const Pattern& p : plan_.patterns)
                if (!(plan_.has(Task::TuneCoarse) && p.zeros_name() == kCoarseTunePattern))
                  tune(task, model, dtype, {p.zeros_name()});
              break;
            case Task::Check:
            case Task::Prefill:
            case Task::Decode:
              end_to_end(task, model, dtype, "dense");
              for (const Pattern& p : plan_.patterns)
                end_to_end(task, model, dtype, p.zeros_name());
              break;
            case Task::KernelHigh:
            case Task::KernelLow:
              kernel(task, model, dtype);
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

  void tune(Task task, const PlanModel& model, const std::string& dtype,
            const std::vector<std::string>& patterns) {
    Job job = base(task, task_name(task), model, dtype);
    job.id = task_name(task) + "/" + model.name + "/" + dtype +
             (task == Task::TuneFine ? "/" + patterns[0] : "");
    job.command = {"tune"};
    job.patterns = patterns;
    job.ms = plan_.m.tune;
    if (!model.is_preset())
      job.skip_reason = "tuning sweeps preset shapes; '" + model.name + "' is a checkpoint folder";
    add(job);
  }

  void end_to_end(Task task, const PlanModel& model, const std::string& dtype,
                  const std::string& pattern) {
    const bool dense = pattern == "dense";
    Job job = base(task, task_name(task), model, dtype);
    job.id = task_name(task) + "/" + model.name + "/" + dtype + "/" + pattern;
    job.command = {"bench", "e2e"};
    job.backend = dense ? "dense" : "sparse";
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

  void kernel(Task task, const PlanModel& model, const std::string& dtype) {
    Job job = base(task, task_name(task), model, dtype);
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
    if (ms.empty()) out.push_back({p, 0});
    for (std::int64_t m : ms) out.push_back({p, m});
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
  Job part = job;
  part.id = job.id + "/" + pattern + "/M" + ms_id;
  part.patterns = {pattern};
  part.ms = ms;
  if (!job.out_dir.empty())
    part.out_dir = job.out_dir + "/cells/" + pattern + "_M" + ms_dir.substr(1);
  part.needs.clear();
  // Layers only matter to make-model, which has no cases to run apart.
  part.args = arguments(part, results_dir, 0);
  return part;
}

}  // namespace slidesparse::pipeline
