// cuDNN's fused SDPA for the runner's prefill (runner/attention_cudnn.hpp). The one translation
// unit that includes the cuDNN frontend, a heavy header: keep it that way.
#include "slidesparse/runner/attention_cudnn.hpp"

#include <cmath>
#include <map>
#include <tuple>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/error.hpp"

#ifdef SLIDESPARSE_HAVE_CUDNN
#include <cudnn.h>
#include <cudnn_frontend.h>
#endif

namespace slidesparse::runner {

bool SdpaShape::operator<(const SdpaShape& o) const {
  return std::tie(sequences, max_seqlen, heads, kv_heads, head_dim) <
         std::tie(o.sequences, o.max_seqlen, o.heads, o.kv_heads, o.head_dim);
}

std::string SdpaShape::describe() const {
  return std::to_string(sequences) + " sequences up to " + std::to_string(max_seqlen) +
         " tokens, " + std::to_string(heads) + "/" + std::to_string(kv_heads) + " heads of " +
         std::to_string(head_dim);
}

SdpaShape sdpa_shape(std::int64_t sequences, std::int64_t max_seqlen, std::int64_t heads,
                     std::int64_t kv_heads, std::int64_t head_dim) {
  SLIDESPARSE_REQUIRE(sequences > 0 && max_seqlen > 0 && heads > 0 && kv_heads > 0 && head_dim > 0,
                      InvalidArgument,
                      "cuDNN attention: sequences, max_seqlen, heads, kv_heads and head_dim must "
                      "be positive (got " +
                          std::to_string(sequences) + ", " + std::to_string(max_seqlen) + ", " +
                          std::to_string(heads) + ", " + std::to_string(kv_heads) + ", " +
                          std::to_string(head_dim) + ")");
  // A power of two (at least one 64-row tile): batches of similar lengths share one graph, and
  // the padding mask keeps the unused part of the bucket out of the result.
  std::int64_t bucket = 64;
  while (bucket < max_seqlen) bucket *= 2;
  return SdpaShape{sequences, bucket, heads, kv_heads, head_dim};
}

std::vector<std::int64_t> packed_sequence_offsets(const std::vector<int>& cu_seqlens,
                                                  std::int64_t row_elements) {
  std::vector<std::int64_t> offsets(cu_seqlens.size());
  for (std::size_t i = 0; i < cu_seqlens.size(); ++i)
    offsets[i] = static_cast<std::int64_t>(cu_seqlens[i]) * row_elements;
  return offsets;
}

#ifdef SLIDESPARSE_HAVE_CUDNN

namespace fe = cudnn_frontend;

namespace {

// The tensors of a graph, by uid in its variant pack.
enum Uid : std::int64_t {
  kQ = 1,
  kK,
  kV,
  kO,
  kSeqLenQ,
  kSeqLenKv,
  kRaggedQ,
  kRaggedK,
  kRaggedV,
  kRaggedO,
};

// cuDNN's own status calls, in the style of the project's SLIDESPARSE_CHECK_* family (kept in this
// file: it is the only one that sees cudnn.h).
void check_cudnn(cudnnStatus_t status, const char* expr, const char* file, int line) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw DeviceError(detail::where(file, line) + ": " + expr + ": " + cudnnGetErrorString(status));
}
#define SLIDESPARSE_CHECK_CUDNN(expr) check_cudnn((expr), #expr, __FILE__, __LINE__)

// "" for success, else the frontend's message.
std::string failure(fe::error_t status) { return status.is_good() ? "" : status.get_message(); }

std::string version_text(std::size_t version) {
  return std::to_string(version / 10000) + "." + std::to_string(version % 10000 / 100) + "." +
         std::to_string(version % 100);
}

// The SDPA graph of one shape. Q, K and V are [sequence, head, token, element] views of the fused
// q|k|v rows: a token is a row (row stride qkv_row elements), a head head_dim elements within it;
// O likewise over the out rows. The sequence stride is that of a padded layout; cuDNN takes each
// sequence's first element from the ragged offsets instead, and its length from seq_len with the
// padding mask. Causal with the diagonal at the top left: query i sees keys 0..i of its sequence.
std::shared_ptr<fe::graph::Graph> describe_graph(const SdpaShape& s) {
  const std::int64_t b = s.sequences, tokens = s.max_seqlen, d = s.head_dim;
  const std::int64_t qkv_row = (s.heads + 2 * s.kv_heads) * d;
  const std::int64_t out_row = s.heads * d;
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  const auto per_sequence = [&](const char* name, Uid uid, std::int64_t count,
                                fe::DataType_t type) {
    return graph->tensor(fe::graph::Tensor_attributes()
                             .set_name(name)
                             .set_uid(uid)
                             .set_dim({count, 1, 1, 1})
                             .set_stride({1, 1, 1, 1})
                             .set_data_type(type));
  };
  const auto rows = [&](const char* name, Uid uid, std::int64_t heads, Uid ragged,
                        const char* ragged_name) {
    auto tensor = graph->tensor(fe::graph::Tensor_attributes()
                                    .set_name(name)
                                    .set_uid(uid)
                                    .set_dim({b, heads, tokens, d})
                                    .set_stride({tokens * qkv_row, d, qkv_row, 1}));
    tensor->set_ragged_offset(per_sequence(ragged_name, ragged, b + 1, fe::DataType_t::INT64));
    return tensor;
  };
  auto q = rows("q", kQ, s.heads, kRaggedQ, "ragged_q");
  auto k = rows("k", kK, s.kv_heads, kRaggedK, "ragged_k");
  auto v = rows("v", kV, s.kv_heads, kRaggedV, "ragged_v");
  auto options =
      fe::graph::SDPA_attributes()
          .set_name("prefill_attention")
          .set_generate_stats(false)
          .set_attn_scale(1.0f / std::sqrt(static_cast<float>(d)))
          .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
          .set_diagonal_band_right_bound(0)
          .set_padding_mask(true)
          .set_seq_len_q(per_sequence("seq_len_q", kSeqLenQ, b, fe::DataType_t::INT32))
          .set_seq_len_kv(per_sequence("seq_len_kv", kSeqLenKv, b, fe::DataType_t::INT32));
  const auto outputs = graph->sdpa(q, k, v, options);
  const std::shared_ptr<fe::graph::Tensor_attributes>& o = outputs[0];
  o->set_output(true)
      .set_uid(kO)
      .set_dim({b, s.heads, tokens, d})
      .set_stride({tokens * out_row, d, out_row, 1});
  o->set_ragged_offset(per_sequence("ragged_o", kRaggedO, b + 1, fe::DataType_t::INT64));
  return graph;
}

// Lowers, plans and builds: the support checks cuDNN makes for this shape on this GPU.
std::string build(fe::graph::Graph& graph, cudnnHandle_t handle) {
  try {
    std::string why = failure(graph.validate());
    if (why.empty()) why = failure(graph.build_operation_graph(handle));
    if (why.empty()) why = failure(graph.create_execution_plans({fe::HeurMode_t::A}));
    if (why.empty()) why = failure(graph.check_support(handle));
    if (why.empty()) why = failure(graph.build_plans(handle));
    return why;
  } catch (const std::exception& e) {  // some frontend paths throw instead of returning
    return e.what();
  }
}

}  // namespace

struct CudnnPrefillAttention::Impl {
  struct Entry {
    std::shared_ptr<fe::graph::Graph> graph;  // null when refused
    std::string refusal;
    std::unordered_map<std::int64_t, void*> variant_pack;  // every uid present: run only assigns
  };
  cudnnHandle_t handle = nullptr;
  std::map<SdpaShape, Entry> entries;
  DeviceBuffer<std::uint8_t> workspace;
  std::size_t built = 0;

  ~Impl() {
    if (handle) cudnnDestroy(handle);
  }
};

bool cudnn_attention_built() { return true; }

std::string cudnn_attention_description() {
  return "cuDNN " + version_text(cudnnGetVersion()) + " (built against " +
         version_text(CUDNN_VERSION) + "), frontend " +
         std::to_string(CUDNN_FRONTEND_MAJOR_VERSION) + "." +
         std::to_string(CUDNN_FRONTEND_MINOR_VERSION) + "." +
         std::to_string(CUDNN_FRONTEND_PATCH_VERSION);
}

CudnnPrefillAttention::CudnnPrefillAttention() : impl_(std::make_unique<Impl>()) {
  SLIDESPARSE_CHECK_CUDNN(cudnnCreate(&impl_->handle));
}

CudnnPrefillAttention::~CudnnPrefillAttention() = default;

std::string CudnnPrefillAttention::prepare(const SdpaShape& shape) {
  Impl& m = *impl_;
  auto found = m.entries.find(shape);
  if (found != m.entries.end()) return found->second.refusal;
  Impl::Entry entry;
  // Ragged offsets as int64 (TransformerEngine does the same from 9.5 on).
  if (cudnnGetVersion() < 90500) {
    entry.refusal = "cuDNN " + version_text(cudnnGetVersion()) +
                    " is older than 9.5 (64-bit ragged offsets of the packed layout)";
  } else {
    entry.graph = describe_graph(shape);
    entry.refusal = build(*entry.graph, m.handle);
  }
  if (entry.refusal.empty()) {
    std::int64_t bytes = 0;
    entry.refusal = failure(entry.graph->get_workspace_size(bytes));
    if (entry.refusal.empty() && static_cast<std::size_t>(bytes) > m.workspace.size())
      m.workspace = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(bytes));
  }
  if (entry.refusal.empty()) {
    for (const Uid uid :
         {kQ, kK, kV, kO, kSeqLenQ, kSeqLenKv, kRaggedQ, kRaggedK, kRaggedV, kRaggedO})
      entry.variant_pack.emplace(uid, nullptr);
    ++m.built;
  } else {
    entry.graph.reset();
  }
  return m.entries.emplace(shape, std::move(entry)).first->second.refusal;
}

bool CudnnPrefillAttention::ready(const SdpaShape& shape) const {
  const auto found = impl_->entries.find(shape);
  return found != impl_->entries.end() && found->second.graph != nullptr;
}

void CudnnPrefillAttention::run(bf16* out, bf16* qkv, std::int64_t rows,
                                const PackedSequences& sequences, const SdpaShape& shape,
                                cudaStream_t stream) {
  Impl& m = *impl_;
  const auto found = m.entries.find(shape);
  SLIDESPARSE_REQUIRE(found != m.entries.end() && found->second.graph != nullptr, InvalidArgument,
                      "cuDNN attention: no graph prepared for " + shape.describe());
  Impl::Entry& entry = found->second;
  const std::int64_t d = shape.head_dim;
  const std::int64_t qkv_row = (shape.heads + 2 * shape.kv_heads) * d;
  // Rows past the last sequence that a tile reads are masked, but still multiplied: keep them 0.
  SLIDESPARSE_CHECK_CUDA(
      cudaMemsetAsync(qkv + rows * qkv_row, 0,
                      static_cast<std::size_t>(kTailRows * qkv_row) * sizeof(bf16), stream));
  SLIDESPARSE_CHECK_CUDNN(cudnnSetStream(m.handle, stream));
  auto& pack = entry.variant_pack;
  pack.at(kQ) = qkv;
  pack.at(kK) = qkv + shape.heads * d;
  pack.at(kV) = qkv + (shape.heads + shape.kv_heads) * d;
  pack.at(kO) = out;
  pack.at(kSeqLenQ) = const_cast<int*>(sequences.lengths);
  pack.at(kSeqLenKv) = const_cast<int*>(sequences.lengths);
  for (const Uid uid : {kRaggedQ, kRaggedK, kRaggedV})
    pack.at(uid) = const_cast<std::int64_t*>(sequences.qkv_offsets);
  pack.at(kRaggedO) = const_cast<std::int64_t*>(sequences.out_offsets);
  const std::string why = failure(
      entry.graph->execute(m.handle, pack, m.workspace.empty() ? nullptr : m.workspace.get()));
  SLIDESPARSE_REQUIRE(why.empty(), DeviceError,
                      "cuDNN attention (" + shape.describe() + ") failed to execute: " + why);
}

std::size_t CudnnPrefillAttention::graphs_built() const { return impl_->built; }
std::size_t CudnnPrefillAttention::workspace_bytes() const { return impl_->workspace.size(); }

#else  // no cuDNN in this build: the runner keeps its own kernel

struct CudnnPrefillAttention::Impl {};

bool cudnn_attention_built() { return false; }

std::string cudnn_attention_description() {
  return "not built (no cuDNN 9 or no cuDNN C++ frontend headers at configure time)";
}

CudnnPrefillAttention::CudnnPrefillAttention() {
  throw DeviceError(
      "cuDNN attention: this build has no cuDNN (configure found no cuDNN 9 or no frontend "
      "headers: pip install nvidia-cudnn-frontend)");
}

CudnnPrefillAttention::~CudnnPrefillAttention() = default;

std::string CudnnPrefillAttention::prepare(const SdpaShape&) { return "this build has no cuDNN"; }

bool CudnnPrefillAttention::ready(const SdpaShape&) const { return false; }

void CudnnPrefillAttention::run(bf16*, bf16*, std::int64_t, const PackedSequences&,
                                const SdpaShape& shape, cudaStream_t) {
  throw InvalidArgument("cuDNN attention: no graph prepared for " + shape.describe() +
                        " (this build has no cuDNN)");
}

std::size_t CudnnPrefillAttention::graphs_built() const { return 0; }
std::size_t CudnnPrefillAttention::workspace_bytes() const { return 0; }

#endif

}  // namespace slidesparse::runner
