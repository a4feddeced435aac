// Files on disk: read-only memory maps, buffered writes, atomic replacement,
// and output directories that appear only when complete.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace slidesparse {

namespace io_detail {
class RemoveOnInterrupt;
}

// A whole file mapped read-only. Checkpoints are tens of GB: nothing is read
// until a page is touched. An empty file maps fine (size 0).
class MappedFile {
 public:
  // Throws IoError naming the path and the OS error.
  static MappedFile open(const std::string& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::uint8_t* data() const { return data_; }
  std::uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const std::uint8_t* data, std::uint64_t size, bool mapped);
  void unmap() noexcept;

  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::uint64_t size_ = 0;
  bool mapped_ = false;  // false for an empty file: data_ points at a static byte
};

// A file opened for writing (created or truncated), written through a large
// buffer: the converter streams GBs through here. Every failure is an IoError
// naming the path.
class FileWriter {
 public:
  static constexpr std::size_t kBufferBytes = std::size_t{8} << 20;

  explicit FileWriter(std::string path);
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  ~FileWriter();  // closes without syncing; the caller decides what a partial file means

  void write(const void* data, std::uint64_t nbytes);
  // Flushes the buffer and fsyncs: the bytes are on disk when this returns.
  void sync();
  // sync() then close; further writes are an error.
  void close();

  std::uint64_t bytes_written() const { return written_; }
  const std::string& path() const { return path_; }

 private:
  void flush_buffer();
  void write_fd(const std::uint8_t* data, std::uint64_t nbytes);

  std::string path_;
  int fd_ = -1;
  std::unique_ptr<std::uint8_t[]> buffer_;
  std::size_t buffered_ = 0;
  std::uint64_t written_ = 0;
};

// Writes `path.tmp.<pid>`, fsyncs, then renames over `path`: readers see the
// old file or the new one, never half of one.
void write_file_atomic(const std::string& path, const std::string& content);

// Renames `from` to `to` and fsyncs the directory of `to` so the rename survives a crash.
void rename_durable(const std::string& from, const std::string& to);

// An output directory built aside (`<final>.partial.<pid>`) and renamed into
// place by commit(). Until then no output directory exists under the final
// name; a failed or interrupted run removes the staging directory.
class StagingDirectory {
 public:
  // Throws InvalidArgument if final_path exists and !force. Creates missing parents.
  StagingDirectory(std::string final_path, bool force);
  StagingDirectory(const StagingDirectory&) = delete;
  StagingDirectory& operator=(const StagingDirectory&) = delete;
  ~StagingDirectory();  // removes the staging directory unless committed

  // Where to write the contents.
  const std::string& path() const { return staging_path_; }
  const std::string& final_path() const { return final_path_; }

  // fsyncs the directory and renames it to final_path. With force, an existing
  // final_path is moved aside first and removed only after the rename succeeded.
  void commit();
  bool committed() const { return committed_; }

 private:
  std::string final_path_;
  std::string staging_path_;
  bool force_;
  bool committed_ = false;
  std::unique_ptr<io_detail::RemoveOnInterrupt> cleanup_;
};

// Makes SIGINT/SIGTERM remove every live staging directory and temporary
// output file, then end the process with 128 + signal (130 for Ctrl-C).
// Call it first thing in main(), before any thread starts: it blocks the
// signals in the calling thread (threads created later inherit that) and
// waits for them in a dedicated thread. Calling it again does nothing.
void install_interrupt_cleanup();

}  // namespace slidesparse
