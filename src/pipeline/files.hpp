// File helpers of the pipeline room (private). write_file_atomic mirrors the io room's
// (src/io/file.cpp) and can give way to it once both rooms share a library.
#pragma once

#include <string>

namespace slidesparse::pipeline {

// Writes `path.tmp.<pid>`, fsyncs, renames over `path`, fsyncs the folder.
void write_file_atomic(const std::string& path, const std::string& content);
// The whole file; throws IoError naming the path.
std::string read_file(const std::string& path);
// Renames `path` to the first free "<path>.attempt<k>" and returns that name.
std::string move_aside(const std::string& path);
// "2024-05-01T12:00:00Z".
std::string utc_now();

}  // namespace slidesparse::pipeline
