// File helpers of the pipeline room (private). Atomic writes come from the io room.
#pragma once

#include <string>

#include "slidesparse/file.hpp"

namespace slidesparse::pipeline {

// Owns a file descriptor (-1 for none) and closes it.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor();
  int get() const { return fd_; }

 private:
  int fd_;
};

// "<what> <path>: <strerror(errno)>".
std::string os_error(const std::string& what, const std::string& path);

// The whole file; throws IoError naming the path.
std::string read_file(const std::string& path);
// Renames `path` to the first free "<path>.attempt<k>" and returns that name.
std::string move_aside(const std::string& path);
// "2024-05-01T12:00:00Z".
std::string utc_now();

}  // namespace slidesparse::pipeline
