#include "slidesparse/pipeline/runner.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "files.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/child_process.hpp"
#include "slidesparse/pipeline/jobs.hpp"
#include "slidesparse/pipeline/probe.hpp"
#include "slidesparse/pipeline/results.hpp"
#include "slidesparse/pipeline/status.hpp"
#include "slidesparse/pipeline/verdict.hpp"

namespace slidesparse::pipeline {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

const char* kLockFile = ".pipeline.lock";

// Held for the whole run: two pipelines never write one results folder.
class FolderLock {
 public:
  explicit FolderLock(const std::string& folder)
      : fd_(::open((folder + "/" + kLockFile).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_.get() < 0) throw IoError(os_error("cannot create", folder + "/" + kLockFile));
    if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0)
      throw InvalidArgument("another pipeline is running in " + folder + " (it holds " + kLockFile +
                            ")");
  }

 private:
  FileDescriptor fd_;
};

// The run's log: the pipeline's own lines and, between them, each child's output,
// which the child writes straight into the same file (O_APPEND keeps both intact).
class RunLog {
 public:
  explicit RunLog(const std::string& path)
      : path_(path),
        fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644)) {
    if (fd_.get() < 0) throw IoError(os_error("cannot create log", path));
  }
  int fd() const { return fd_.get(); }
  // The line a section written next starts on.
  std::int64_t begin_section() {
    if (!at_line_start_) write_raw("\n");
    return lines_ + 1;
  }

  void write(const std::string& text) {
    if (!text.empty() && !at_line_start_) write_raw("\n");
    write_raw(text);
  }

  // Reads back what a child appended since `from`: counts its lines, returns its tail.
  std::string absorb(off_t from) {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) throw IoError(os_error("cannot stat", path_));
    const int in = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) throw IoError(os_error("cannot read", path_));
    const FileDescriptor reader(in);
    std::string tail;
    char buffer[1 << 16];
    for (off_t at = from; at < st.st_size;) {
      const ssize_t n = ::pread(in, buffer, sizeof buffer, at);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      count(buffer, static_cast<std::size_t>(n));
      tail.append(buffer, static_cast<std::size_t>(n));
      if (tail.size() > kTailBytes) tail.erase(0, tail.size() - kTailBytes);
      at += n;
    }
    return tail;
  }

  off_t size() const {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) throw IoError(os_error("cannot stat", path_));
    return st.st_size;
  }

 private:
  static constexpr std::size_t kTailBytes = 64 * 1024;

  void write_raw(const std::string& text) {
    const char* data = text.data();
    std::size_t left = text.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_.get(), data, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw IoError(os_error("cannot write log", path_));
      data += n;
      left -= static_cast<std::size_t>(n);
    }
    count(text.data(), text.size());
  }

  void count(const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) lines_ += data[i] == '\n';
    if (n > 0) at_line_start_ = data[n - 1] == '\n';
  }

  std::string path_;
  FileDescriptor fd_;
  std::int64_t lines_ = 0;
  bool at_line_start_ = true;
};

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

std::string shell_quote(const std::string& arg) {
  if (!arg.empty() && arg.find_first_of(" \t\n'\"\\$`;&|<>()*?") == std::string::npos) return arg;
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string seconds_text(double s) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", s);
  return buffer;
}

std::string describe_status(const std::string& status) {
  if (status == "skipped") return "was skipped";
  if (status == "pending") return "has not run";
  if (status == "interrupted") return "was interrupted";
  return status;
}

std::string counts_text(const PipelineStatus& status) {
  int done = 0;
  for (const JobRecord& r : status.jobs) done += r.done();
  return std::to_string(done) + " of " + std::to_string(status.jobs.size()) + " jobs done";
}

bool folder_is_empty_but_for_lock(const std::string& folder) {
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.path().filename() != kLockFile) return false;
  return true;
}

JobRecord new_record(const Job& job) {
  JobRecord r;
  r.id = job.id;
  r.task = task_name(job.task);
  r.kind = job.kind;
  r.model = job.model;
  r.dtype = job.dtype;
  r.backend = job.backend;
  r.argv = job.args;
  r.out_dir = job.out_dir;
  for (const Cell& c : job.cells()) r.cells.push_back({c.pattern, c.m, "pending", "", ""});
  return r;
}

class Runner {
 public:
  Runner(const Plan& plan, const PipelineOptions& options) : plan_(plan), options_(options) {
    if (options_.launcher.empty()) throw InvalidArgument("no executable to run the jobs with");
  }

  PipelineSummary run() {
    const Clock::time_point start = Clock::now();
    open_folder();
    const std::vector<Job> jobs = expand_jobs(plan_, root_);
    start_run(jobs);
    int index = 0;
    for (const Job& job : jobs) {
      ++index;
      if (interrupted()) break;
      run_job(job, index, static_cast<int>(jobs.size()));
    }
    RunRecord& run = status_.runs.back();
    run.finished = utc_now();
    run.interrupted = interrupted_;
    run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    run.child_seconds = child_seconds_;
    log_->write("=== run " + std::to_string(status_.runs.size()) + " " +
                (interrupted_ ? "interrupted" : "finished") + " at " + run.finished + " after " +
                seconds_text(run.seconds) + " (" + seconds_text(child_seconds_) + " in jobs)\n");
    save();

    PipelineSummary summary;
    summary.jobs = static_cast<int>(status_.jobs.size());
    for (const JobRecord& r : status_.jobs) {
      summary.passed += r.status == "passed";
      summary.failed += r.status == "failed";
      summary.skipped += r.status == "skipped";
      summary.not_run += r.status == "pending" || r.status == "interrupted";
    }
    summary.interrupted = interrupted_;
    summary.status_path = status_path_;
    summary.log_path = root_ + "/" + run.log;
    summary.seconds = run.seconds;
    summary.child_seconds = child_seconds_;
    return summary;
  }

 private:
  void open_folder() {
    std::string root = fs::absolute(options_.results_dir).lexically_normal().string();
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    root_ = root;
    status_path_ = root_ + "/" + PipelineStatus::kFileName;
    std::error_code ec;
    if (fs::exists(status_path_, ec)) {
      lock_ = std::make_unique<FolderLock>(root_);
      PipelineStatus old = PipelineStatus::load(status_path_);
      if (!options_.resume)
        throw InvalidArgument(root_ + " already holds a pipeline run of plan '" + old.plan_name +
                              "' (" + counts_text(old) +
                              "); continue it with --resume, or write to another --out");
      const std::string digest = plan_digest(plan_);
      if (old.plan_digest != digest)
        throw InvalidArgument(root_ + " holds a run of plan '" + old.plan_name + "' (" +
                              old.plan_source + ", digest " + old.plan_digest + "), not of " +
                              plan_.source + " (digest " + digest +
                              "): results of two plans are never mixed; write to another --out");
      status_ = std::move(old);
      return;
    }
    if (options_.resume)
      throw InvalidArgument("nothing to resume in " + root_ + ": it holds no " +
                            PipelineStatus::kFileName);
    if (fs::exists(root_, ec) && !folder_is_empty_but_for_lock(root_))
      throw InvalidArgument(
          root_ + " is not empty and holds no pipeline " + PipelineStatus::kFileName +
          ": results are never written among other files; choose a new or empty folder");
    fs::create_directories(root_, ec);
    if (ec) throw IoError("cannot create " + root_ + ": " + ec.message());
    lock_ = std::make_unique<FolderLock>(root_);
  }

  void start_run(const std::vector<Job>& jobs) {
    const bool resumed = !status_.runs.empty();
    // Ask for the GPU first: a resume on another GPU is refused before anything is written.
    const std::string info_path = root_ + "/hardware.txt";
    const std::string probe_path = info_path + ".new";
    const HardwareInfo hardware = detect_hardware(options_.launcher, probe_path);
    std::error_code ec;
    if (resumed && hardware.identity() != status_.hardware.identity()) {
      fs::remove(probe_path, ec);
      throw InvalidArgument(root_ + " holds results of " + status_.hardware.identity() +
                            "; this machine has " + hardware.identity() +
                            ": results of two GPUs are never mixed; write to another --out");
    }
    const bool have_info = fs::exists(probe_path, ec);
    if (have_info) {
      fs::rename(probe_path, info_path, ec);
      if (ec) throw IoError("cannot rename " + probe_path + ": " + ec.message());
    }

    fs::create_directories(root_ + "/logs", ec);
    if (ec) throw IoError("cannot create " + root_ + "/logs: " + ec.message());
    char name[32];
    std::snprintf(name, sizeof name, "logs/run-%03zu.log", status_.runs.size() + 1);
    log_ = std::make_unique<RunLog>(root_ + "/" + name);
    log_->write("=== slidesparse pipeline: plan '" + plan_.name + "' (" + plan_.source + "), " +
                std::to_string(jobs.size()) + " jobs, results in " + root_ +
                (resumed ? ", resumed" : "") + "\n");
    if (have_info) log_->write("$ slidesparse info\n" + read_file(info_path));
    log_->write("=== GPU: " + hardware.identity() +
                (hardware.gpu ? std::string() : " (" + hardware.no_gpu_reason + ")") + "\n");
    status_.hardware = hardware;
    status_.plan_name = plan_.name;
    status_.plan_source = fs::absolute(plan_.source).lexically_normal().string();
    status_.plan_digest = plan_digest(plan_);
    status_.plan = plan_to_json(plan_);
    status_.executable = join(options_.launcher, " ");

    std::vector<JobRecord> records;
    for (const Job& job : jobs) {
      const JobRecord* old = status_.find(job.id);
      records.push_back(old ? *old : new_record(job));
    }
    status_.jobs = std::move(records);
    status_.runs.push_back({utc_now(), "", resumed, false, name, 0, 0});
    save();
  }

  bool interrupted() {
    if (!interrupted_ && options_.interrupted && options_.interrupted()) interrupted_ = true;
    return interrupted_;
  }

  ChildOptions child_options(double timeout_s) const {
    ChildOptions o;
    o.timeout_s = timeout_s;
    o.kill_grace_s = options_.kill_grace_s;
    o.interrupted = options_.interrupted;
    return o;
  }

  std::vector<std::string> command_line(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = options_.launcher;
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  // Whether this build of the command has `command`; asked once per run.
  bool command_available(const std::vector<std::string>& command) {
    const std::string key = join(command, " ");
    const auto it = commands_.find(key);
    if (it != commands_.end()) return it->second;
    const bool present = has_command(options_.launcher, command);
    log_->write("=== probe: slidesparse " + key +
                " --help: " + (present ? "present" : "not in this build") + "\n");
    commands_[key] = present;
    return present;
  }

  // Why the job cannot run here and now ("" when it can), checked before starting it.
  std::string skip_reason(const Job& job) {
    if (!job.skip_reason.empty()) return job.skip_reason;
    if (!command_available(job.command))
      return "`slidesparse " + join(job.command, " ") + "` is not in this build";
    const HardwareInfo& hw = status_.hardware;
    if (job.needs_gpu && !hw.gpu) return hw.no_gpu_reason;
    if (job.needs_gpu) {
      const auto it = hw.precisions.find(job.dtype);
      if (it != hw.precisions.end() && !it->second.supported) return it->second.reason;
    }
    for (const std::string& need : job.needs) {
      const JobRecord* dep = status_.find(need);
      if (dep && dep->status != "passed")
        return "needs " + need + ", which " + describe_status(dep->status);
    }
    return "";
  }

  std::string result_file(const Job& job) const {
    if (job.result_csv.empty()) return "";
    const auto it = status_.hardware.precisions.find(job.dtype);
    if (it == status_.hardware.precisions.end() || it->second.folder.empty()) return "";
    return job.out_dir + "/" + it->second.folder + "/" + job.result_csv;
  }

  void run_job(const Job& job, int index, int count) {
    JobRecord& record = *status_.find(job.id);
    char prefix[64];
    std::snprintf(prefix, sizeof prefix, "[%*d/%d] ",
                  static_cast<int>(std::to_string(count).size()), index, count);
    if (record.status == "passed" || (record.status == "skipped" && record.skipped_by_child)) {
      report_progress(prefix + job.id + "  " + record.status + " earlier");
      return;
    }
    const std::string reason = skip_reason(job);
    if (!reason.empty()) {
      record.status = "skipped";
      record.error_class.clear();
      record.message = reason;
      record.skipped_by_child = false;
      record.run = static_cast<int>(status_.runs.size());
      for (CellRecord& c : record.cells) {
        c.status = "skipped";
        c.error_class.clear();
        c.message = reason;
      }
      log_->write("=== " + job.id + ": skipped: " + reason + "\n");
      save();
      report_progress(prefix + job.id + "  skipped  " + reason);
      return;
    }

    // A fresh attempt: what an earlier one left is kept aside, never overwritten.
    if (!job.out_dir.empty()) {
      const std::string out = root_ + "/" + job.out_dir;
      std::error_code ec;
      if (fs::exists(out, ec)) {
        const std::string aside = move_aside(out);
        record.earlier_outputs.push_back(aside.substr(root_.size() + 1));
        log_->write("=== " + job.id + ": earlier output moved to " + aside + "\n");
      }
    }
    record.parts.clear();
    std::vector<bool> from_rows;
    const Verdict verdict = execute(job, record, from_rows);
    if (record.status != "interrupted") {
      narrow_down(job, record, verdict, from_rows);
      conclude(record, verdict, !job.result_csv.empty());
    }
    save();
    double seconds = record.seconds;
    for (const JobRecord& part : record.parts) seconds += part.seconds;
    std::string line = prefix + job.id + "  " + record.status + "  " + seconds_text(seconds);
    if (!record.parts.empty())
      line += " (" + std::to_string(record.parts.size()) + " reruns apart)";
    if (record.status == "failed") line += "  " + record.error_class + ": " + record.message;
    report_progress(line);
  }

  // Runs the job's child and records its status and its cases'.
  Verdict execute(const Job& job, JobRecord& record, std::vector<bool>& from_rows) {
    record.argv = job.args;
    record.attempts += 1;
    record.run = static_cast<int>(status_.runs.size());
    record.log = status_.runs.back().log;
    record.log_line = log_->begin_section();
    std::vector<std::string> quoted;
    for (const auto& a : command_line(job.args)) quoted.push_back(shell_quote(a));
    log_->write("=== " + job.id + " (attempt " + std::to_string(record.attempts) + ", " +
                utc_now() + ")\n$ " + join(quoted, " ") + "\n");
    const off_t from = log_->size();
    const ChildOutcome outcome =
        run_child(command_line(job.args), log_->fd(), child_options(job.timeout_s));
    child_seconds_ += outcome.seconds;
    const std::string output = log_->absorb(from);
    const Verdict verdict = judge_child(outcome, output, job.timeout_s);
    if (verdict.status == "interrupted") interrupted_ = true;
    record.status = verdict.status;
    record.error_class = verdict.error_class;
    record.message = verdict.message;
    record.skipped_by_child = verdict.status == "skipped";
    record.seconds = outcome.seconds;
    record.result_file = result_file(job);
    from_rows = fill_cells(job, record, verdict);
    log_->write(
        "=== " + job.id + ": " + verdict.status + " after " + seconds_text(outcome.seconds) +
        (verdict.status == "failed" ? " (" + verdict.error_class + "): " + verdict.message : "") +
        "\n");
    return verdict;
  }

  // Each case's status: its rows in the result CSV where there are any, else the job's.
  // Returns, per case, whether its status came from a row.
  std::vector<bool> fill_cells(const Job& job, JobRecord& record, const Verdict& verdict) {
    std::map<std::pair<std::string, std::int64_t>, CaseResult> rows;
    std::string csv_problem;
    const bool ran = verdict.status == "passed" || verdict.status == "failed";
    if (ran && !job.result_csv.empty()) {
      const std::string path = root_ + "/" + record.result_file;
      std::error_code ec;
      if (record.result_file.empty()) {
        csv_problem = "no result folder is known for " + job.dtype + " on this GPU";
      } else if (!fs::exists(path, ec)) {
        csv_problem = "the job wrote no " + record.result_file;
      } else {
        try {
          rows = case_results(CsvFile::read(path));
        } catch (const Error& e) {
          csv_problem = e.what();
        }
      }
    }
    record.cells.clear();
    std::vector<bool> from_rows;
    for (const Cell& cell : job.cells()) {
      CellRecord c{cell.pattern, cell.m, "", "", ""};
      const auto row = rows.find({cell.pattern, cell.m});
      from_rows.push_back(row != rows.end());
      if (!ran) {
        c.status = verdict.status;
        c.message = verdict.message;
      } else if (row != rows.end()) {
        c.status = row->second.status;
        c.message = row->second.error;
        if (c.status == "failed") c.error_class = classify_error(c.message);
      } else if (verdict.status == "failed") {
        c.status = "failed";
        c.error_class = verdict.error_class;
        c.message = verdict.message;
      } else if (job.result_csv.empty()) {
        c.status = "passed";
      } else {
        c.status = "failed";
        c.error_class = "missing result";
        c.message = !csv_problem.empty()
                        ? csv_problem
                        : "no row for " + cell.pattern + " M=" + std::to_string(cell.m) + " in " +
                              record.result_file;
      }
      record.cells.push_back(c);
    }
    return from_rows;
  }

  // The cases a child could not speak for: those it never reached when it died (a signal, or
  // a CUDA error that ends the process), and those that failed only because an earlier case
  // left a sticky CUDA error behind. Indices into `cells`.
  static std::vector<std::size_t> lost_cases(const std::vector<CellRecord>& cells,
                                             const Verdict& verdict,
                                             const std::vector<bool>& from_rows) {
    const bool died =
        verdict.error_class.rfind("crash: ", 0) == 0 || is_sticky_device_error(verdict.error_class);
    std::vector<std::size_t> lost;
    bool sticky_seen = false;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (cells[i].status != "failed") continue;
      if (!from_rows[i] && died) {
        lost.push_back(i);
      } else if (from_rows[i] && is_sticky_device_error(cells[i].error_class)) {
        if (sticky_seen) lost.push_back(i);
        sticky_seen = true;
      }
    }
    return lost;
  }

  void narrow_down(const Job& job, JobRecord& record, const Verdict& verdict,
                   const std::vector<bool>& from_rows) {
    if (job.ms.empty() || record.cells.size() < 2) return;
    rerun_apart(job, record, lost_cases(record.cells, verdict, from_rows));
  }

  // Runs `lost` cases again in fresh processes: the first alone (the likely culprit), the
  // rest one process per pattern; a process that loses cases again is narrowed down alike.
  void rerun_apart(const Job& job, JobRecord& record, const std::vector<std::size_t>& lost) {
    if (lost.empty()) return;
    const std::vector<Cell> cells = job.cells();
    std::vector<std::vector<std::size_t>> groups = {{lost.front()}};
    std::map<std::string, std::size_t> group_of_pattern;
    for (std::size_t k = 1; k < lost.size(); ++k) {
      const std::string& pattern = cells[lost[k]].pattern;
      const auto it = group_of_pattern.find(pattern);
      if (it != group_of_pattern.end()) {
        groups[it->second].push_back(lost[k]);
      } else {
        group_of_pattern[pattern] = groups.size();
        groups.push_back({lost[k]});
      }
    }
    for (const auto& group : groups) {
      if (interrupted()) return;
      std::vector<std::int64_t> ms;
      for (std::size_t i : group) ms.push_back(cells[i].m);
      const Job part_job = subset_job(job, cells[group.front()].pattern, ms, root_);
      JobRecord part = new_record(part_job);
      std::vector<bool> part_rows;
      const Verdict verdict = execute(part_job, part, part_rows);
      for (std::size_t k = 0; k < group.size(); ++k) record.cells[group[k]] = part.cells[k];
      std::vector<std::size_t> lost_again;
      if (group.size() > 1)
        for (std::size_t k : lost_cases(part.cells, verdict, part_rows))
          lost_again.push_back(group[k]);
      record.parts.push_back(std::move(part));
      save();
      rerun_apart(job, record, lost_again);
    }
  }

  // The job's own status from its child's verdict and its cases.
  void conclude(JobRecord& record, const Verdict& verdict, bool has_rows) {
    for (const JobRecord& part : record.parts)
      if (part.status == "interrupted") {
        record.status = "interrupted";
        return;
      }
    if (verdict.status != "passed") return;
    int failed = 0, skipped = 0;
    const CellRecord* first_failed = nullptr;
    for (const CellRecord& c : record.cells) {
      if (c.status == "failed" && !first_failed) first_failed = &c;
      failed += c.status == "failed";
      skipped += c.status == "skipped";
    }
    if (first_failed) {
      record.status = "failed";
      record.error_class = first_failed->error_class;
      record.message = std::to_string(failed) + " of " + std::to_string(record.cells.size()) +
                       " cases failed; first: " + first_failed->message;
    } else if (has_rows && skipped == static_cast<int>(record.cells.size())) {
      record.status = "skipped";
      record.skipped_by_child = true;
      record.message = record.cells.front().message;
    }
  }

  void report_progress(const std::string& line) const {
    if (options_.progress) options_.progress(line);
  }

  void save() { status_.save(status_path_); }

  const Plan& plan_;
  PipelineOptions options_;
  std::string root_, status_path_;
  PipelineStatus status_;
  std::unique_ptr<FolderLock> lock_;
  std::unique_ptr<RunLog> log_;
  std::map<std::string, bool> commands_;
  double child_seconds_ = 0;
  bool interrupted_ = false;
};

}  // namespace

PipelineSummary run_pipeline(const Plan& plan, const PipelineOptions& options) {
  return Runner(plan, options).run();
}

}  // namespace slidesparse::pipeline
