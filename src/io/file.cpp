#include "slidesparse/file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "interrupt_cleanup.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse {

namespace fs = std::filesystem;

namespace {

std::string os_error(const std::string& what, const std::string& path, int err) {
  return what + " " + path + ": " + std::strerror(err);
}

// Closes a descriptor on scope exit.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_;
};

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw IoError(os_error("cannot open", path, errno));
  FdCloser closer(fd);
  if (::fsync(fd) != 0) throw IoError(os_error("cannot fsync", path, errno));
}

void fsync_directory(const std::string& dir) { fsync_path(dir, O_RDONLY | O_DIRECTORY); }

std::string parent_directory(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// fsyncs every file and directory below `dir`, then `dir` itself.
void fsync_tree(const std::string& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec))
      fsync_directory(it->path().string());
    else if (it->is_regular_file(ec))
      fsync_path(it->path().string(), O_RDONLY);
  }
  if (ec) throw IoError("cannot list " + dir + ": " + ec.message());
  fsync_directory(dir);
}

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

const std::uint8_t kEmptyFileByte = 0;

}  // namespace

// ---- MappedFile -----------------------------------------------------------------------

MappedFile::MappedFile(std::string path, const std::uint8_t* data, std::uint64_t size, bool mapped)
    : path_(std::move(path)), data_(data), size_(size), mapped_(mapped) {}

MappedFile MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(os_error("cannot open", path, errno));
  FdCloser closer(fd);  // the mapping outlives the descriptor
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw IoError(os_error("cannot stat", path, errno));
  if (!S_ISREG(st.st_mode)) throw IoError("cannot map " + path + ": not a regular file");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size == 0) return MappedFile(path, &kEmptyFileByte, 0, false);
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) throw IoError(os_error("cannot mmap", path, errno));
  return MappedFile(path, static_cast<const std::uint8_t*>(addr), size, true);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(other.data_),
      size_(other.size_),
      mapped_(other.mapped_) {
  other.data_ = nullptr;
  other.size_ = 0;
  other.mapped_ = false;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    mapped_ = other.mapped_;
    other.data_ = nullptr;
    other.size_ = 0;
    other.mapped_ = false;
  }
  return *this;
}

MappedFile::~MappedFile() { unmap(); }

void MappedFile::unmap() noexcept {
  if (mapped_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  mapped_ = false;
}

// ---- FileWriter -----------------------------------------------------------------------

FileWriter::FileWriter(std::string path)
    : path_(std::move(path)), buffer_(new std::uint8_t[kBufferBytes]) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError(os_error("cannot create", path_, errno));
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWriter::write(const void* data, std::uint64_t nbytes) {
  if (fd_ < 0) throw IoError("cannot write " + path_ + ": file already closed");
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  written_ += nbytes;
  if (buffered_ + nbytes <= kBufferBytes) {
    if (nbytes > 0) std::memcpy(buffer_.get() + buffered_, bytes, nbytes);
    buffered_ += nbytes;
    return;
  }
  flush_buffer();
  if (nbytes >= kBufferBytes) {
    write_fd(bytes, nbytes);  // large writes skip the copy
  } else {
    std::memcpy(buffer_.get(), bytes, nbytes);
    buffered_ = nbytes;
  }
}

void FileWriter::flush_buffer() {
  write_fd(buffer_.get(), buffered_);
  buffered_ = 0;
}

void FileWriter::write_fd(const std::uint8_t* data, std::uint64_t nbytes) {
  while (nbytes > 0) {
    const std::size_t chunk = nbytes < (std::uint64_t{1} << 30) ? nbytes : (std::size_t{1} << 30);
    const ssize_t n = ::write(fd_, data, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(os_error("cannot write", path_, errno));
    }
    data += n;
    nbytes -= static_cast<std::uint64_t>(n);
  }
}

void FileWriter::sync() {
  if (fd_ < 0) throw IoError("cannot sync " + path_ + ": file already closed");
  flush_buffer();
  if (::fsync(fd_) != 0) throw IoError(os_error("cannot fsync", path_, errno));
}

void FileWriter::close() {
  sync();
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw IoError(os_error("cannot close", path_, errno));
}

// ---- atomic replacement ---------------------------------------------------------------

void rename_durable(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    throw IoError("cannot rename " + from + " to " + to + ": " + std::strerror(errno));
  fsync_directory(parent_directory(to));
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  io_detail::RemoveOnInterrupt cleanup(tmp);
  try {
    FileWriter out(tmp);
    out.write(content.data(), content.size());
    out.close();
    cleanup.publish([&] { rename_durable(tmp, path); });
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

// ---- StagingDirectory -----------------------------------------------------------------

StagingDirectory::StagingDirectory(std::string final_path, bool force)
    : final_path_(strip_trailing_slashes(std::move(final_path))), force_(force) {
  if (final_path_.empty()) throw InvalidArgument("output directory path is empty");
  std::error_code ec;
  if (fs::exists(fs::symlink_status(final_path_, ec)) && !force_)
    throw InvalidArgument("output directory " + final_path_ +
                          " exists (use --force to replace it)");
  const std::string parent = parent_directory(final_path_);
  fs::create_directories(parent, ec);
  if (ec) throw IoError("cannot create directory " + parent + ": " + ec.message());
  staging_path_ = final_path_ + ".partial." + std::to_string(::getpid());
  fs::remove_all(staging_path_, ec);  // left by an earlier process that had our pid
  cleanup_ = std::make_unique<io_detail::RemoveOnInterrupt>(staging_path_);  // before it exists
  if (::mkdir(staging_path_.c_str(), 0755) != 0)
    throw IoError(os_error("cannot create directory", staging_path_, errno));
}

StagingDirectory::~StagingDirectory() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(staging_path_, ignored);
}

void StagingDirectory::commit() {
  if (committed_)
    throw InvalidArgument("staging directory " + staging_path_ + " already committed");
  fsync_tree(staging_path_);
  cleanup_->publish([&] {
    std::error_code ec;
    const bool replacing = fs::exists(fs::symlink_status(final_path_, ec));
    if (replacing && !force_)
      throw InvalidArgument("output directory " + final_path_ +
                            " appeared while it was being written (use --force to replace it)");
    const std::string old_path = final_path_ + ".old." + std::to_string(::getpid());
    if (replacing) rename_durable(final_path_, old_path);
    try {
      rename_durable(staging_path_, final_path_);
    } catch (...) {
      if (replacing) ::rename(old_path.c_str(), final_path_.c_str());
      throw;
    }
    if (replacing) fs::remove_all(old_path, ec);
  });
  committed_ = true;
}

}  // namespace slidesparse
