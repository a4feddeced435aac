#include "slidesparse/pipeline/probe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "files.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/child_process.hpp"
#include "slidesparse/pipeline/verdict.hpp"

namespace slidesparse::pipeline {

namespace {

const double kProbeTimeoutS = 120;
const std::size_t kProbeOutputBytes = 64 * 1024;

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

bool has_command(const std::vector<std::string>& launcher,
                 const std::vector<std::string>& command) {
  // A command without the subcommand answers --help with its own help, so the exit code
  // alone says nothing: the subcommand's help names it in its "Usage:" line.
  const char* tmp = std::getenv("TMPDIR");
  std::string name = std::string(tmp && *tmp ? tmp : "/tmp") + "/slidesparse-probe-XXXXXX";
  const FileDescriptor output(::mkstemp(name.data()));
  if (output.get() < 0) throw IoError("cannot create " + name + ": " + std::strerror(errno));
  ::unlink(name.c_str());
  const ChildOutcome o =
      run_child(concat(concat(launcher, command), {"--help"}), output.get(), probe_options());
  if (o.end != ChildOutcome::End::Exited || o.exit_code != 0) return false;
  std::string text(kProbeOutputBytes, '\0');
  const ssize_t n = ::pread(output.get(), text.data(), text.size(), 0);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  std::string path;
  for (const auto& c : command) path += " " + c;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Usage:", 0) != 0) continue;
    line += " ";
    return line.find(path + " ") != std::string::npos;
  }
  return false;
}

HardwareInfo detect_hardware(const std::vector<std::string>& launcher,
                             const std::string& output_path) {
  if (!has_command(launcher, {"info"}))
    return no_gpu("`slidesparse info` is not in this build (built without CUDA)");
  ChildOutcome outcome;
  {
    const FileDescriptor out(
        ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out.get() < 0) throw IoError("cannot create " + output_path + ": " + std::strerror(errno));
    outcome = run_child(concat(launcher, {"info"}), out.get(), probe_options());
  }
  const std::string text = read_file(output_path);
  const Verdict verdict = judge_child(outcome, text, kProbeTimeoutS);
  if (verdict.status == "skipped") return no_gpu(verdict.message);
  if (verdict.status != "passed")
    return no_gpu("`slidesparse info` " + verdict.status + " (" + verdict.error_class +
                  "): " + verdict.message);
  try {
    return parse_info_output(text);
  } catch (const FormatError& e) {
    return no_gpu(std::string("cannot read what `slidesparse info` printed: ") + e.what());
  }
}

}  // namespace slidesparse::pipeline
