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

namespace {

void fsync_fd_of(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw IoError(os_error("cannot open", path));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) throw IoError(os_error("cannot fsync", path));
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(os_error("cannot create", tmp));
  const char* data = content.data();
  std::size_t left = content.size();
  bool ok = true;
  while (left > 0 && ok) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) {
      data += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    errno = saved;
    throw IoError(os_error("cannot write", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string message = os_error("cannot rename " + tmp + " to", path);
    ::unlink(tmp.c_str());
    throw IoError(message);
  }
  const fs::path parent = fs::path(path).parent_path();
  fsync_fd_of(parent.empty() ? "." : parent.string(), O_RDONLY | O_DIRECTORY);
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
