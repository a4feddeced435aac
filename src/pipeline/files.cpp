#include "files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "slidesparse/error.hpp"

namespace slidesparse::pipeline {

namespace fs = std::filesystem;

std::string os_error(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(os_error("cannot read", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string move_aside(const std::string& path) {
  for (int k = 1;; ++k) {
    const std::string target = path + ".attempt" + std::to_string(k);
    std::error_code ec;
    if (fs::exists(target, ec)) continue;
    if (::rename(path.c_str(), target.c_str()) != 0)
      throw IoError(os_error("cannot move aside", path));
    return target;
  }
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

}  // namespace slidesparse::pipeline
