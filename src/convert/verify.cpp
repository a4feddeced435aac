#include "slidesparse/verify.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "release_pages.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {

namespace {
// Rows are un-slid in blocks of about this many values, to bound memory.
constexpr std::int64_t kBlockElements = std::int64_t{1} << 20;

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// The storage's sign-less value bits (slide.hpp's definition of zero) and its NaN/Inf test.
struct ElementBits {
  std::size_t size;
  std::uint32_t magnitude_mask;
  std::uint32_t special_mask;  // exponent all ones (0 for I8: every code is a value)

  std::uint32_t load(const std::uint8_t* data, std::int64_t index) const {
    std::uint32_t bits = 0;
    std::memcpy(&bits, data + static_cast<std::size_t>(index) * size, size);  // little-endian
    return bits;
  }
  bool nonzero(std::uint32_t bits) const { return (bits & magnitude_mask) != 0; }
  bool special(std::uint32_t bits) const {
    if (special_mask == 0) return false;
    if (size == 1) return (bits & 0x7Fu) == 0x7Fu;  // E4M3FN: only S.1111.111 is NaN
    return (bits & special_mask) == special_mask;
  }
};

ElementBits element_bits(DType storage) {
  switch (storage) {
    case DType::I8:
      return {1, 0xFFu, 0};
    case DType::F8_E4M3:
      return {1, 0x7Fu, 0x7Fu};
    case DType::BF16:
      return {2, 0x7FFFu, 0x7F80u};
    case DType::F16:
      return {2, 0x7FFFu, 0x7C00u};
    default:
      throw InvalidArgument(std::string("verify: no weight storage ") + dtype_name(storage));
  }
}

class LayerVerifier {
 public:
  LayerVerifier(const Checkpoint& checkpoint, const ConvertedModelInfo& info,
                const ConvertedLayerInfo& layer)
      : checkpoint_(checkpoint),
        info_(info),
        layer_(layer),
        storage_(precision_storage(info.precision)),
        bits_(element_bits(storage_)) {}

  void run() {
    const std::string weight_name = layer_.weight_name();
    const TensorInfo& weight = require_tensor(weight_name, storage_, {layer_.n, layer_.k_slide});
    const std::uint8_t* data = checkpoint_.data(weight_name);
    const std::string where = checkpoint_.shard_of(weight_name).path() + ": " + weight_name;
    check_values(data, where);
    if (auto v = find_2to4_violation(storage_, data, layer_.n, layer_.k_slide))
      throw FormatError(where + ": row " + std::to_string(v->row) + ", window " +
                        std::to_string(v->window) + " (columns " + std::to_string(4 * v->window) +
                        ".." + std::to_string(4 * v->window + 3) + ") holds " +
                        std::to_string(v->nonzeros) + " non-zeros: not 2:4");
    check_unslid(data, where);
    convert_detail::release_pages(data, weight.nbytes());
    check_scales();
  }

 private:
  const TensorInfo& require_tensor(const std::string& name, DType dtype,
                                   const std::vector<std::int64_t>& shape) {
    if (!checkpoint_.contains(name))
      throw FormatError(checkpoint_.dir() + ": converted layer " + layer_.prefix +
                        " has no tensor " + name);
    const TensorInfo& tensor = checkpoint_.info(name);
    const std::string where = checkpoint_.shard_of(name).path() + ": " + name;
    if (tensor.dtype != dtype)
      throw FormatError(where + ": dtype " + dtype_name(tensor.dtype) + ", expected " +
                        dtype_name(dtype) + " for " + precision_name(info_.precision));
    if (tensor.shape != shape)
      throw FormatError(where + ": shape " + shape_text(tensor.shape) + ", expected " +
                        shape_text(shape) + " (pattern " + info_.pattern.display_name() + ", k " +
                        std::to_string(layer_.k) + ")");
    return tensor;
  }

  void check_values(const std::uint8_t* data, const std::string& where) const {
    if (bits_.special_mask == 0) return;
    const std::int64_t count = layer_.n * layer_.k_slide;
    for (std::int64_t i = 0; i < count; ++i)
      if (bits_.special(bits_.load(data, i)))
        throw FormatError(where + ": row " + std::to_string(i / layer_.k_slide) + ", column " +
                          std::to_string(i % layer_.k_slide) + " holds NaN or Inf");
  }

  // Un-slides block by block: every slot must map to a column of its own. The groups of the
  // result then obey the pattern by construction: group g's columns are filled only from
  // group g's N-1 windows, each holding at most 2 non-zeros (checked above), so at most
  // 2(N-1) = L-2.
  void check_unslid(const std::uint8_t* data, const std::string& where) const {
    const std::int64_t k = layer_.k, k_slide = layer_.k_slide;
    const std::int64_t block_rows = std::max<std::int64_t>(1, kBlockElements / k_slide);
    std::vector<std::uint8_t> dense(static_cast<std::size_t>(std::min(block_rows, layer_.n) * k) *
                                    bits_.size);
    for (std::int64_t row = 0; row < layer_.n; row += block_rows) {
      const std::int64_t rows = std::min(block_rows, layer_.n - row);
      const std::uint8_t* slid = data + static_cast<std::size_t>(row * k_slide) * bits_.size;
      try {
        unslide_rows(storage_, slid, rows, k, info_.pattern, dense.data());
      } catch (const InvalidArgument&) {
        throw_unslide_error(slid, row, rows, where);
      }
    }
  }

  // Names the exact row: the block's message counts rows from the block's start.
  [[noreturn]] void throw_unslide_error(const std::uint8_t* slid, std::int64_t first_row,
                                        std::int64_t rows, const std::string& where) const {
    std::vector<std::uint8_t> dense(static_cast<std::size_t>(layer_.k) * bits_.size);
    for (std::int64_t r = 0; r < rows; ++r) {
      try {
        unslide_rows(storage_, slid + static_cast<std::size_t>(r * layer_.k_slide) * bits_.size, 1,
                     layer_.k, info_.pattern, dense.data());
      } catch (const InvalidArgument& e) {
        throw FormatError(where + ": row " + std::to_string(first_row + r) +
                          " cannot be un-slid: " + e.what());
      }
    }
    throw FormatError(where + ": rows " + std::to_string(first_row) + ".." +
                      std::to_string(first_row + rows - 1) + " cannot be un-slid");
  }

  void check_scales() {
    const std::string name = layer_.scale_name();
    require_tensor(name, DType::F32, {layer_.n});
    const std::uint8_t* data = checkpoint_.data(name);
    for (std::int64_t i = 0; i < layer_.n; ++i) {
      float scale;
      std::memcpy(&scale, data + 4 * i, 4);
      if (!std::isfinite(scale) || scale <= 0.0f)
        throw FormatError(checkpoint_.shard_of(name).path() + ": " + name + ": row " +
                          std::to_string(i) + " has scale " + std::to_string(scale) +
                          " (scales must be finite and positive)");
    }
  }

  const Checkpoint& checkpoint_;
  const ConvertedModelInfo& info_;
  const ConvertedLayerInfo& layer_;
  DType storage_;
  ElementBits bits_;
};
}  // namespace

VerifyReport verify_checkpoint(const std::string& dir, const VerifyProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  const Checkpoint checkpoint = Checkpoint::open(dir);
  VerifyReport report;
  report.info = read_converted_info(checkpoint.config(), checkpoint.config_path());
  report.tensors = static_cast<std::int64_t>(checkpoint.tensor_names().size());
  const std::size_t element = dtype_size(precision_storage(report.info.precision));
  std::uint64_t total = 0;
  for (const auto& layer : report.info.layers)
    total += static_cast<std::uint64_t>(layer.n * layer.k_slide) * element;
  for (const auto& layer : report.info.layers) {
    LayerVerifier(checkpoint, report.info, layer).run();
    ++report.layers_checked;
    report.weight_bytes += static_cast<std::uint64_t>(layer.n * layer.k_slide) * element;
    if (progress) progress(report.weight_bytes, total);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace slidesparse
