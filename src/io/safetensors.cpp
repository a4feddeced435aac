#include "slidesparse/safetensors.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_set>

#include "interrupt_cleanup.hpp"
#include "json_excerpt.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {

constexpr std::uint64_t kLengthPrefixBytes = 8;
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kSupportedDTypes = "BF16, F16, F32, I8, U8, I32, I64, F8_E4M3";

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string offsets_string(const TensorInfo& t) {
  return "[" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
}

// Element count of `shape`, or nullopt if a dimension is negative or the
// product overflows int64.
std::optional<std::int64_t> checked_numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (const std::int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d) return std::nullopt;
    n *= d;
  }
  return n;
}

// numel * dtype size, or nullopt on overflow.
std::optional<std::uint64_t> checked_nbytes(const std::vector<std::int64_t>& shape, DType dtype) {
  const auto numel = checked_numel(shape);
  if (!numel) return std::nullopt;
  const auto n = static_cast<std::uint64_t>(*numel);
  const std::uint64_t size = dtype_size(dtype);
  if (n > std::numeric_limits<std::uint64_t>::max() / size) return std::nullopt;
  return n * size;
}

std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

// Reads one header entry; every defect names the file and the tensor.
class HeaderReader {
 public:
  explicit HeaderReader(const std::string& label) : label_(label) {}

  [[noreturn]] void fail(const std::string& what) const { throw FormatError(label_ + ": " + what); }
  [[noreturn]] void fail(const std::string& tensor, const std::string& what) const {
    fail("tensor '" + tensor + "': " + what);
  }

  std::map<std::string, std::string> metadata(const nlohmann::json& j) const {
    if (!j.is_object()) fail(std::string(kMetadataKey) + " is not an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : j.items()) {
      if (!value.is_string())
        fail(std::string(kMetadataKey) + " value of '" + key + "' is not a string");
      out.emplace(key, value.get<std::string>());
    }
    return out;
  }

  TensorInfo tensor(const std::string& name, const nlohmann::json& j) const {
    if (!j.is_object()) fail(name, "entry is not an object");
    TensorInfo t;
    t.name = name;
    t.dtype = dtype(name, field(name, j, "dtype"));
    t.shape = shape(name, field(name, j, "shape"));
    const auto& offsets = field(name, j, "data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      fail(name, "\"data_offsets\" must be [begin, end], two non-negative integers");
    t.begin = offsets[0].get<std::uint64_t>();
    t.end = offsets[1].get<std::uint64_t>();
    if (t.begin > t.end) fail(name, "data_offsets " + offsets_string(t) + " have begin > end");
    const auto nbytes = checked_nbytes(t.shape, t.dtype);
    if (!nbytes) fail(name, "shape " + shape_string(t.shape) + " overflows the 64-bit byte count");
    if (*nbytes != t.end - t.begin)
      fail(name, std::string(dtype_name(t.dtype)) + " shape " + shape_string(t.shape) + " needs " +
                     std::to_string(*nbytes) + " bytes but data_offsets " + offsets_string(t) +
                     " hold " + std::to_string(t.end - t.begin));
    return t;
  }

 private:
  const nlohmann::json& field(const std::string& name, const nlohmann::json& j,
                              const char* key) const {
    const auto it = j.find(key);
    if (it == j.end()) fail(name, std::string("missing \"") + key + "\"");
    return *it;
  }

  DType dtype(const std::string& name, const nlohmann::json& j) const {
    if (!j.is_string()) fail(name, "\"dtype\" is not a string");
    const auto& s = j.get_ref<const std::string&>();
    try {
      return parse_dtype(s);
    } catch (const FormatError&) {
      fail(name, "unsupported dtype '" + s + "' (supported: " + kSupportedDTypes + ")");
    }
  }

  std::vector<std::int64_t> shape(const std::string& name, const nlohmann::json& j) const {
    if (!j.is_array()) fail(name, "\"shape\" is not an array");
    std::vector<std::int64_t> dims;
    dims.reserve(j.size());
    for (const auto& d : j) {
      if (d.is_number_integer() && !d.is_number_unsigned())
        fail(name, "\"shape\" has a negative dimension " + io_detail::json_excerpt(d));
      if (!d.is_number_unsigned())
        fail(name, "\"shape\" has a non-integer dimension " + io_detail::json_excerpt(d));
      const auto v = d.get<std::uint64_t>();
      if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        fail(name, "\"shape\" dimension " + std::to_string(v) + " is too large");
      dims.push_back(static_cast<std::int64_t>(v));
    }
    return dims;
  }

  const std::string& label_;
};

}  // namespace

// ---- TensorInfo / TensorSpec ----------------------------------------------------------

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (const std::int64_t d : shape) n *= d;
  return n;
}

std::int64_t TensorSpec::numel() const {
  const auto n = checked_numel(shape);
  if (!n) throw InvalidArgument("tensor '" + name + "': invalid shape " + shape_string(shape));
  return *n;
}

std::uint64_t TensorSpec::nbytes() const {
  const auto n = checked_nbytes(shape, dtype);
  if (!n) throw InvalidArgument("tensor '" + name + "': invalid shape " + shape_string(shape));
  return *n;
}

// ---- SafetensorsFile ------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto file = std::make_shared<const MappedFile>(MappedFile::open(path));
  SafetensorsFile st = parse(file->data(), file->size(), path);
  st.file_ = std::move(file);
  return st;
}

SafetensorsFile SafetensorsFile::parse(const std::uint8_t* data, std::uint64_t size,
                                       const std::string& label) {
  const HeaderReader reader(label);
  if (size < kLengthPrefixBytes)
    reader.fail("truncated file: " + std::to_string(size) +
                " bytes, shorter than the 8-byte header length");
  const std::uint64_t n = read_u64_le(data);
  if (n > kMaxHeaderBytes)
    reader.fail("header length " + std::to_string(n) + " exceeds the limit of " +
                std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file?)");
  if (n > size - kLengthPrefixBytes)
    reader.fail("header length " + std::to_string(n) + " runs past the end of the file (" +
                std::to_string(size) + " bytes): truncated file");

  nlohmann::json header;
  try {
    const char* text = reinterpret_cast<const char*>(data + kLengthPrefixBytes);
    header = nlohmann::json::parse(text, text + n);
  } catch (const nlohmann::json::exception& e) {
    reader.fail(std::string("invalid JSON header: ") + e.what());
  }
  if (!header.is_object()) reader.fail("header is not a JSON object");

  SafetensorsFile st;
  st.path_ = label;
  st.header_length_ = n;
  st.buffer_ = data + kLengthPrefixBytes + n;
  const std::uint64_t buffer_size = size - kLengthPrefixBytes - n;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey)
      st.metadata_ = reader.metadata(value);
    else
      st.tensors_.push_back(reader.tensor(key, value));
  }

  // Sorted by offset, the tensors must tile the data buffer exactly.
  std::sort(st.tensors_.begin(), st.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const auto& t : st.tensors_) {
    if (t.end > buffer_size)
      reader.fail(t.name, "data_offsets " + offsets_string(t) +
                              " run past the end of the data buffer (" +
                              std::to_string(buffer_size) + " bytes)");
    if (t.begin < covered)
      reader.fail(t.name, "data_offsets " + offsets_string(t) + " overlap tensor '" +
                              previous->name + "' " + offsets_string(*previous));
    if (t.begin > covered)
      reader.fail(t.name, "data_offsets " + offsets_string(t) + " leave a hole of " +
                              std::to_string(t.begin - covered) + " bytes " +
                              (previous ? "after tensor '" + previous->name + "'"
                                        : std::string("at the start of the data buffer")));
    covered = t.end;
    previous = &t;
  }
  if (covered != buffer_size)
    reader.fail(std::to_string(buffer_size - covered) +
                " trailing bytes after the last tensor (data buffer " +
                std::to_string(buffer_size) + " bytes, tensors cover " + std::to_string(covered) +
                ")");

  st.index_.reserve(st.tensors_.size());
  for (std::size_t i = 0; i < st.tensors_.size(); ++i) st.index_.emplace(st.tensors_[i].name, i);
  return st;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw FormatError(path_ + ": no tensor '" + name + "'");
  return *t;
}

// ---- writing --------------------------------------------------------------------------

std::string safetensors_header(const std::vector<TensorSpec>& specs,
                               const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the offsets in file order, which makes headers readable.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::unordered_set<std::string> names;
  std::uint64_t offset = 0;
  for (const auto& spec : specs) {
    if (spec.name == kMetadataKey) throw InvalidArgument("tensor name '__metadata__' is reserved");
    if (!names.insert(spec.name).second)
      throw InvalidArgument("tensor '" + spec.name + "' appears twice");
    const std::uint64_t nbytes = spec.nbytes();
    header[spec.name] = {{"dtype", dtype_name(spec.dtype)},
                         {"shape", spec.shape},
                         {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string json = header.dump();
  // The reference writer pads the header with spaces to a multiple of 8 bytes
  // so the data buffer starts aligned.
  json.resize((json.size() + 7) / 8 * 8, ' ');
  if (json.size() > SafetensorsFile::kMaxHeaderBytes)
    throw InvalidArgument("safetensors header of " + std::to_string(json.size()) +
                          " bytes exceeds the 100 MB limit");
  std::string out(kLengthPrefixBytes, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((json.size() >> (8 * i)) & 0xFF);
  return out + json;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                                     std::map<std::string, std::string> metadata)
    : path_(std::move(path)),
      tmp_path_(path_ + ".tmp." + std::to_string(::getpid())),
      specs_(std::move(specs)) {
  const std::string header = safetensors_header(specs_, metadata);
  total_bytes_ = header.size();
  for (const auto& spec : specs_) total_bytes_ += spec.nbytes();
  cleanup_ = std::make_unique<io_detail::RemoveOnInterrupt>(tmp_path_);
  out_ = std::make_unique<FileWriter>(tmp_path_);
  out_->write(header.data(), header.size());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (finished_) return;
  out_.reset();
  std::error_code ignored;
  std::filesystem::remove(tmp_path_, ignored);
}

void SafetensorsWriter::begin_tensor(const std::string& name) {
  if (finished_) throw InvalidArgument(path_ + ": tensor '" + name + "' written after finish()");
  if (current_) end_current_tensor();
  if (next_ >= specs_.size())
    throw InvalidArgument(path_ + ": tensor '" + name + "' is not in the header (all " +
                          std::to_string(specs_.size()) + " tensors already written)");
  if (specs_[next_].name != name)
    throw InvalidArgument(path_ + ": expected tensor '" + specs_[next_].name + "' next, got '" +
                          name + "'");
  current_ = next_++;
  current_written_ = 0;
}

void SafetensorsWriter::write_chunk(const void* data, std::uint64_t nbytes) {
  if (!current_) throw InvalidArgument(path_ + ": write_chunk() without begin_tensor()");
  const TensorSpec& spec = specs_[*current_];
  if (nbytes > spec.nbytes() - current_written_)
    throw InvalidArgument(path_ + ": tensor '" + spec.name + "' holds " +
                          std::to_string(spec.nbytes()) + " bytes, got " +
                          std::to_string(current_written_ + nbytes));
  out_->write(data, nbytes);
  current_written_ += nbytes;
}

void SafetensorsWriter::write(const std::string& name, const void* data, std::uint64_t nbytes) {
  begin_tensor(name);
  const TensorSpec& spec = specs_[*current_];
  if (nbytes != spec.nbytes())
    throw InvalidArgument(path_ + ": tensor '" + name + "' holds " + std::to_string(spec.nbytes()) +
                          " bytes, got " + std::to_string(nbytes));
  write_chunk(data, nbytes);
  end_current_tensor();
}

void SafetensorsWriter::end_current_tensor() {
  const TensorSpec& spec = specs_[*current_];
  if (current_written_ != spec.nbytes())
    throw InvalidArgument(path_ + ": tensor '" + spec.name + "' got " +
                          std::to_string(current_written_) + " of its " +
                          std::to_string(spec.nbytes()) + " bytes");
  current_.reset();
}

void SafetensorsWriter::finish() {
  if (finished_) throw InvalidArgument(path_ + ": finish() called twice");
  if (current_) end_current_tensor();
  if (next_ != specs_.size())
    throw InvalidArgument(path_ + ": finish() with " + std::to_string(specs_.size() - next_) +
                          " tensors not written, the first '" + specs_[next_].name + "'");
  out_->close();
  cleanup_->publish([&] { rename_durable(tmp_path_, path_); });
  finished_ = true;
}

}  // namespace slidesparse
