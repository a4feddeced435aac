#include "slidesparse/pipeline/probe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "files.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/child_process.hpp"
#include "slidesparse/pipeline/verdict.hpp"

namespace slidesparse::pipeline {

namespace {

const double kProbeTimeoutS = 120;

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

ChildOptions probe_options() {
  ChildOptions o;
  o.timeout_s = kProbeTimeoutS;
  o.kill_grace_s = 2;
  return o;
}

}  // namespace

bool has_command(const std::vector<std::string>& launcher, const std::vector<std::string>& command) {
  const FileDescriptor null_output(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  if (null_output.get() < 0) throw IoError(std::string("cannot open /dev/null: ") + std::strerror(errno));
  const ChildOutcome o = run_child(concat(concat(launcher, command), {"--help"}), null_output.get(), probe_options());
  return o.end == ChildOutcome::End::Exited && o.exit_code == 0;
}

HardwareInfo detect_hardware(const std::vector<std::string>& launcher, const std::string& output_path) {
  if (!has_command(launcher, {"info"}))
    return no_gpu("`slidesparse info` is not in this build (built without CUDA)");
  ChildOutcome outcome;
  {
    const FileDescriptor out(::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out.get() < 0) throw IoError("cannot create " + output_path + ": " + std::strerror(errno));
    outcome = run_child(concat(launcher, {"info"}), out.get(), probe_options());
  }
  const std::string text = read_file(output_path);
  const Verdict verdict = judge_child(outcome, text, kProbeTimeoutS);
  if (verdict.status == "skipped") return no_gpu(verdict.message);
  if (verdict.status != "passed")
    return no_gpu("`slidesparse info` " + verdict.status + " (" + verdict.error_class + "): " + verdict.message);
  try {
    return parse_info_output(text);
  } catch (const FormatError& e) {
    return no_gpu(std::string("cannot read what `slidesparse info` printed: ") + e.what());
  }
}

}  // namespace slidesparse::pipeline
