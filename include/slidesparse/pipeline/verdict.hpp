// What a child's end means for its job: passed, failed with an error class and message,
// skipped with a reason ("no CUDA device"), or interrupted.
#pragma once

#include <string>

#include "slidesparse/pipeline/child_process.hpp"

namespace slidesparse::pipeline {

struct Verdict {
  std::string status;       // "passed", "failed", "skipped", "interrupted"
  std::string error_class;  // for "failed": "crash: SIGSEGV", "timeout", "out of memory", …
  std::string message;      // the error, or why the job was skipped
};

// `output` is (the end of) what the child printed; its last "slidesparse: error: …" line
// is the message. A child that says "no CUDA device" is skipped, not failed.
Verdict judge_child(const ChildOutcome& outcome, const std::string& output, double timeout_s);

// The class of an error message, from one table of known messages ("illegal memory
// access", "out of memory", "cuSPARSELt error", "file error", …; "error" otherwise).
std::string classify_error(const std::string& message);

// Errors after which every later CUDA call of the same process fails too: the cells a
// child ran after one of these must be rerun in a fresh process to learn their own fate.
bool is_sticky_device_error(const std::string& error_class);

}  // namespace slidesparse::pipeline
