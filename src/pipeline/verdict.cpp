#include "slidesparse/pipeline/verdict.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <vector>

namespace slidesparse::pipeline {

namespace {

struct ErrorPattern {
  const char* needle;  // lower case
  const char* error_class;
  bool sticky;
};

// First match wins: the specific CUDA failures before the library names before "cuda".
const ErrorPattern kErrorPatterns[] = {
    {"illegal memory access", "illegal memory access", true},
    {"illegal address", "illegal memory access", true},
    {"misaligned address", "misaligned address", true},
    {"unspecified launch failure", "launch failure", true},
    {"out of memory", "out of memory", false},
    {"cudaerrormemoryallocation", "out of memory", false},
    {"alloc_failed", "out of memory", false},
    {"not supported", "not supported", false},
    {"unsupported", "not supported", false},
    {"cusparselt", "cuSPARSELt error", false},
    {"cublas", "cuBLASLt error", false},
    {"cutlass", "CUTLASS error", false},
    {"cuda", "CUDA error", false},
    {"cannot open", "file error", false},
    {"cannot read", "file error", false},
    {"cannot create", "file error", false},
    {"cannot write", "file error", false},
    {"no such file", "file error", false},
    {"no space left", "file error", false},
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// The text after the last line that starts with `prefix`, or "".
std::string last_line_after(const std::vector<std::string>& lines, const std::string& prefix) {
  for (auto it = lines.rbegin(); it != lines.rend(); ++it)
    if (it->rfind(prefix, 0) == 0) return it->substr(prefix.size());
  return "";
}

const char* kErrorPrefix = "slidesparse: error: ";
const char* kInternalPrefix = "slidesparse: internal error: ";

}  // namespace

std::string classify_error(const std::string& message) {
  const std::string m = lower(message);
  for (const ErrorPattern& p : kErrorPatterns)
    if (m.find(p.needle) != std::string::npos) return p.error_class;
  return "error";
}

bool is_sticky_device_error(const std::string& error_class) {
  return std::any_of(
      std::begin(kErrorPatterns), std::end(kErrorPatterns),
      [&](const ErrorPattern& p) { return p.sticky && error_class == p.error_class; });
}

Verdict judge_child(const ChildOutcome& outcome, const std::string& output, double timeout_s) {
  const std::vector<std::string> lines = lines_of(output);
  const std::string error = last_line_after(lines, kErrorPrefix);
  const std::string internal = last_line_after(lines, kInternalPrefix);
  const std::string said = !error.empty() ? error : internal;
  using End = ChildOutcome::End;
  switch (outcome.end) {
    case End::SpawnFailed:
      return {"failed", "cannot start", outcome.spawn_error};
    case End::Interrupted:
      return {"interrupted", "", "stopped by an interrupt (Ctrl-C); --resume runs it again"};
    case End::TimedOut: {
      std::ostringstream m;
      m << "still running after the " << timeout_s << " s limit: stopped";
      if (!said.empty()) m << " (last error: " << said << ")";
      return {"failed", "timeout", m.str()};
    }
    case End::Signaled: {
      const std::string sig = signal_name(outcome.signal);
      return {"failed", "crash: " + sig, said.empty() ? "killed by " + sig : said};
    }
    case End::Exited:
      break;
  }
  if (outcome.exit_code == 0) return {"passed", "", ""};
  if (!error.empty()) {
    if (lower(error).find("no cuda device") != std::string::npos) return {"skipped", "", error};
    return {"failed", classify_error(error), error};
  }
  if (!internal.empty()) return {"failed", "internal error", internal};
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (lines[i].find("Run with --help") != std::string::npos)
      return {"failed", "usage error", i > 0 ? lines[i - 1] : lines[i]};
  return {"failed", "exit " + std::to_string(outcome.exit_code),
          lines.empty() ? "exited with code " + std::to_string(outcome.exit_code) : lines.back()};
}

}  // namespace slidesparse::pipeline
