// The safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {str: str}}, then the data buffer (offsets relative to it).
// Validation follows the reference Rust crate: the tensors, sorted by offset,
// must cover the data buffer exactly (no overlap, no hole, no trailing bytes).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "slidesparse/dtype.hpp"
#include "slidesparse/file.hpp"

namespace slidesparse {

// One tensor of a safetensors header.
struct TensorInfo {
  std::string name;
  DType dtype = DType::BF16;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range in the data buffer

  std::int64_t numel() const;
  std::uint64_t nbytes() const { return end - begin; }
};

// A validated safetensors file. open() memory-maps it: only the pages of the
// tensors actually read are ever loaded.
class SafetensorsFile {
 public:
  // Headers larger than this are rejected (the reference crate's limit).
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

  // Throws IoError if the file cannot be read, FormatError naming the file
  // and the defect if it is not a valid safetensors file.
  static SafetensorsFile open(const std::string& path);
  // Parses bytes the caller keeps alive for the lifetime of the result;
  // `label` names them in error messages.
  static SafetensorsFile parse(const std::uint8_t* data, std::uint64_t size,
                               const std::string& label);

  // In file order (increasing data offsets).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  // Throws FormatError naming the file and the tensor if absent.
  const TensorInfo& at(const std::string& name) const;
  const std::uint8_t* data(const TensorInfo& tensor) const { return buffer_ + tensor.begin; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  // The JSON header's length N (the data buffer starts at 8 + N).
  std::uint64_t header_length() const { return header_length_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  std::shared_ptr<const MappedFile> file_;  // empty for parse()
  const std::uint8_t* buffer_ = nullptr;
  std::uint64_t header_length_ = 0;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// What the writer needs to know about a tensor before its bytes arrive.
struct TensorSpec {
  std::string name;
  DType dtype = DType::BF16;
  std::vector<std::int64_t> shape;

  std::int64_t numel() const;
  std::uint64_t nbytes() const;
};

// Streams a safetensors file to disk. The header is written first (offsets
// follow the spec order), then each tensor's bytes in spec order, whole or in
// chunks. finish() syncs and renames `<path>.tmp.<pid>` into place; without
// finish() the temporary file is removed.
class SafetensorsWriter {
 public:
  // Throws InvalidArgument on duplicate names, negative dimensions or an
  // oversized header.
  SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                    std::map<std::string, std::string> metadata = {});
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();

  // The next tensor in spec order, whole: begin_tensor + write_chunk + end.
  void write(const std::string& name, const void* data, std::uint64_t nbytes);
  // Starts the next tensor in spec order; its bytes follow in write_chunk calls.
  void begin_tensor(const std::string& name);
  void write_chunk(const void* data, std::uint64_t nbytes);
  // Every tensor written in full; syncs, renames into place.
  void finish();

  const std::string& path() const { return path_; }
  // Header + data: the final file size.
  std::uint64_t total_bytes() const { return total_bytes_; }

 private:
  void end_current_tensor();

  std::string path_;
  std::string tmp_path_;
  std::vector<TensorSpec> specs_;
  std::unique_ptr<io_detail::RemoveOnInterrupt> cleanup_;
  std::unique_ptr<FileWriter> out_;
  std::uint64_t total_bytes_ = 0;
  std::size_t next_ = 0;                // index of the next tensor to begin
  std::optional<std::size_t> current_;  // tensor being written
  std::uint64_t current_written_ = 0;
  bool finished_ = false;
};

// The header bytes (length prefix, JSON, space padding to 8 bytes) for tensors
// laid out contiguously in `specs` order.
std::string safetensors_header(const std::vector<TensorSpec>& specs,
                               const std::map<std::string, std::string>& metadata);

}  // namespace slidesparse
