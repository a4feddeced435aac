#include "slidesparse/runner/gpu_model.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "cuda_graph.hpp"
#include "lm_head.hpp"
#include "segment_timer.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/model/weights.hpp"
#include "slidesparse/runner/attention_cudnn.hpp"
#include "slidesparse/runner/fused_quantize.hpp"
#include "slidesparse/runner/model_kernels.hpp"
#include "weight_source.hpp"

namespace slidesparse::runner {

namespace {

std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }
std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

bf16* as_bf16(const DeviceBuffer<std::uint16_t>& b) { return reinterpret_cast<bf16*>(b.get()); }

DeviceBuffer<std::uint16_t> upload_bf16(const std::vector<std::uint16_t>& host) {
  DeviceBuffer<std::uint16_t> d(host.size());
  d.upload(host.data(), host.size());
  return d;
}

// One decoder layer on the device.
struct GpuLayer {
  DeviceBuffer<std::uint16_t> input_norm, post_attention_norm, attn_sub_norm, ffn_sub_norm;
  std::unique_ptr<SlideSparseLinear> qkv, o, gate_up, down;
  std::array<SlideSparseLinear*, 4> linears() const {
    return {qkv.get(), o.get(), gate_up.get(), down.get()};
  }
  DeviceBuffer<std::uint16_t> k_cache, v_cache;  // [max_sequences, max_context, kv_heads, hd]
};

// Per-prefill layout of the batch's rows (host side).
struct PrefillRows {
  std::vector<int> tokens, sequence, position, cu_seqlens, last_rows;
  std::int64_t max_seqlen = 0;
};

}  // namespace

const char* gpu_backend_name(GpuBackend backend) {
  return backend == GpuBackend::Dense ? "dense" : "sparse";
}

GpuBackend parse_gpu_backend(const std::string& name) {
  if (name == "dense") return GpuBackend::Dense;
  if (name == "sparse") return GpuBackend::Sparse;
  throw InvalidArgument("backend must be dense or sparse, not '" + name + "'");
}

const char* prefill_attention_name(PrefillAttention attention) {
  return attention == PrefillAttention::Cudnn ? "cudnn" : "own";
}

PrefillAttention parse_prefill_attention(const std::string& name) {
  if (name == "cudnn") return PrefillAttention::Cudnn;
  if (name == "own") return PrefillAttention::Own;
  throw InvalidArgument("attention must be cudnn or own, not '" + name + "'");
}

PrefillAttention default_prefill_attention() {
  return cudnn_attention_built() ? PrefillAttention::Cudnn : PrefillAttention::Own;
}

struct GpuModel::Impl {
  GpuModelOptions options;
  ModelConfig config;
  std::string name;
  LinearPath path = LinearPath::Sparse;
  std::int64_t rows_cap = 0;  // activation rows: max(max_tokens, max_sequences), padded

  NonBlockingStream stream;
  std::unique_ptr<GemmContext> gemm;
  // The linear layers' buffers between their stages, one set for all of them (they run one
  // after another): the largest layer's, instead of every layer's (tens of GB at M = 16384).
  LinearScratch linear_scratch;
  DeviceBuffer<std::uint16_t> embed, final_norm;
  std::unique_ptr<LmHead> lm_head;
  std::vector<GpuLayer> layers;
  DeviceBuffer<float> inv_freq;

  // Activations, [rows_cap, width] BF16.
  DeviceBuffer<std::uint16_t> residual, normed, qkv, attended, projected, gate_up, activated,
      last_hidden;
  DeviceBuffer<float> logits;  // [padded max_sequences, vocab]
  // Row metadata on the device.
  DeviceBuffer<int> tokens, sequence, position, cu_seqlens, lengths, last_rows, sampled, iota;
  // Host staging: [tokens | sequence | position | cu_seqlens | last_rows | lengths] for prefill,
  // and [tokens | positions | lengths] for decode (the captured graphs copy from there).
  PinnedBuffer<int> prefill_in, step_in, step_out;

  std::vector<std::int64_t> seq_lengths;  // tokens cached per sequence of the batch
  std::int64_t logits_rows = 0;
  std::set<std::int64_t> prepared_linears, prepared_head;     // the M values planned so far
  std::map<std::int64_t, std::unique_ptr<CudaGraph>> graphs;  // decode, per batch size
  // cuDNN's prefill attention (null with attention Own, or when cuDNN could not start), the
  // shape of this prefill's graph (none: the own kernel runs), and what the last prefill ran.
  std::unique_ptr<CudnnPrefillAttention> cudnn_attention;
  std::optional<SdpaShape> cudnn_shape;
  PrefillAttention last_attention = PrefillAttention::Own;
  std::set<SdpaShape> refused_shapes;  // said on stderr once each
  // The packed batch as cuDNN reads it (attention_cudnn.hpp PackedSequences): per-sequence
  // lengths, and the ragged offsets of qkv rows then of attended rows; pinned staging for them.
  DeviceBuffer<int> prefill_lengths;
  DeviceBuffer<std::int64_t> ragged_offsets;  // [2 · (max_sequences + 1)]
  PinnedBuffer<std::int64_t> ragged_in;
  std::size_t graph_workspace = 0;  // GEMM workspace size the graphs were captured with
  SegmentTimer timer;
  GpuTimings last_timings;
  std::uint64_t device_bytes = 0;
  std::uint64_t dense_fallback_bytes = 0;  // the dense copies dense_fallback keeps
  std::uint64_t sparse_auto_bytes = 0;     // the second sparse copies sparse_gemm_auto keeps
  std::string sparse_gemm_note;            // why sparse_gemm_auto runs cuSPARSELt alone
  // With dense_fallback or sparse_gemm_auto, search_untuned and no database: the searched times
  // of every GEMM, so that each layer runs the one that measured fastest for the M.
  std::unique_ptr<TuningDb> searched;

  void load(WeightSource& source);
  void allocate_buffers();
  // The linear layers' plans for M (searched when search_untuned and no tuning database), and
  // the LM head's for its rows; both drop the graphs a grown workspace made stale.
  void prepare_linears(std::int64_t m);
  void prepare_lm_head(std::int64_t rows);
  void drop_stale_graphs();
  // Picks this prefill's attention: cuDNN's graph for the batch's shape (built on first use), or
  // the own kernel where there is none, said once per refused shape.
  void prepare_attention(std::int64_t sequences, std::int64_t max_seqlen);
  // Times the candidates of the layer's GEMMs on path p for M on whatever its quantized-input
  // buffer holds (the time does not depend on the values), keeps each GEMM's fastest, and with
  // the in-memory database records their times there for the layer's choice per M.
  void search_algo(SlideSparseLinear& layer, std::int64_t m, LinearPath p);
  void linear(SlideSparseLinear& layer, const DeviceBuffer<std::uint16_t>& x, std::int64_t m,
              DeviceBuffer<std::uint16_t>& y);
  // The layer on an input that `produce(target)` quantizes (and lifts) into its GEMM operand
  // (a fused norm or activation), then its GEMM and dequantize into y.
  template <class Produce>
  void fused_linear(SlideSparseLinear& layer, std::int64_t m, DeviceBuffer<std::uint16_t>& y,
                    Produce&& produce);
  // All layers over m rows; leaves the final-normed hidden states in `normed`.
  void forward(std::int64_t m, bool decode, std::int64_t sequences, std::int64_t max_seqlen);
  void decode_body(std::int64_t batch);
  PackedSequences packed_sequences() const {
    PackedSequences p;
    p.lengths = prefill_lengths.get();
    p.qkv_offsets = ragged_offsets.get();
    p.out_offsets = ragged_offsets.get() + options.max_sequences + 1;
    return p;
  }
  KvCacheView cache_view(const GpuLayer& layer) const {
    KvCacheView v;
    v.k = as_bf16(layer.k_cache);
    v.v = as_bf16(layer.v_cache);
    v.max_sequences = options.max_sequences;
    v.max_length = options.max_context;
    v.kv_heads = config.kv_heads;
    v.head_dim = config.head_dim;
    return v;
  }
};

void GpuModel::Impl::load(WeightSource& source) {
  const ModelConfig& c = config;
  const int threads = options.load_threads > 0
                          ? options.load_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  LinearOptions lo;
  lo.activation = DType::BF16;
  lo.max_m = rows_cap;
  const bool sparse = options.backend == GpuBackend::Sparse;
  lo.build_sparse = sparse;
  lo.build_dense = !sparse || options.dense_fallback;
  if (sparse && (options.dense_fallback || options.sparse_gemm_auto) && options.tuning == nullptr &&
      options.search_untuned)
    searched = std::make_unique<TuningDb>(TuningKey{});  // in memory: this model's searches
  lo.tuning = options.tuning != nullptr ? options.tuning : searched.get();
  lo.sparse_backend = options.sparse_gemm;
  lo.scratch = &linear_scratch;
  lo.sparse_backend_auto = options.sparse_gemm_auto;
  lo.dense_backend = options.dense_gemm;

  const std::vector<std::uint16_t> embed_host =
      source.bf16_tensor("model.embed_tokens.weight", {c.vocab, c.hidden});
  embed = upload_bf16(embed_host);
  final_norm = upload_bf16(source.bf16_tensor("model.norm.weight", {c.hidden}));
  if (c.tie_embeddings) {
    lm_head = std::make_unique<LmHead>(*gemm, embed_host, c.vocab, c.hidden, options.max_sequences);
  } else {
    lm_head =
        std::make_unique<LmHead>(*gemm, source.bf16_tensor("lm_head.weight", {c.vocab, c.hidden}),
                                 c.vocab, c.hidden, options.max_sequences);
  }
  const std::vector<float> freq = rope_inv_freq(c);
  inv_freq = DeviceBuffer<float>(freq.size());
  inv_freq.upload(freq.data(), freq.size());

  const std::size_t cache_elements =
      at(options.max_sequences * options.max_context * c.kv_heads * c.head_dim);
  // Streams layer by layer: one fused linear's host copy at a time.
  for (std::int64_t l = 0; l < c.layers; ++l) {
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    GpuLayer layer;
    layer.input_norm =
        upload_bf16(source.bf16_tensor(prefix + "input_layernorm.weight", {c.hidden}));
    layer.post_attention_norm =
        upload_bf16(source.bf16_tensor(prefix + "post_attention_layernorm.weight", {c.hidden}));
    if (c.architecture == Architecture::BitNet) {
      layer.attn_sub_norm =
          upload_bf16(source.bf16_tensor(prefix + "self_attn.attn_sub_norm.weight", {c.hidden}));
      layer.ffn_sub_norm =
          upload_bf16(source.bf16_tensor(prefix + "mlp.ffn_sub_norm.weight", {c.intermediate}));
    }
    const auto build = [&](const std::vector<LinearKind>& kinds) {
      const PackedLinear packed = source.fused_linear(l, kinds, options, threads);
      return std::make_unique<SlideSparseLinear>(*gemm, packed, lo);
    };
    layer.qkv = build({LinearKind::Q, LinearKind::K, LinearKind::V});
    layer.o = build({LinearKind::O});
    layer.gate_up = build({LinearKind::Gate, LinearKind::Up});
    layer.down = build({LinearKind::Down});
    layer.k_cache = DeviceBuffer<std::uint16_t>(cache_elements);
    layer.v_cache = DeviceBuffer<std::uint16_t>(cache_elements);
    for (const SlideSparseLinear* lin : layer.linears()) {
      if (!sparse) {
        device_bytes += lin->dense_weight_bytes();
        continue;
      }
      // Every sparse GEMM's copy of the slid weights (two with sparse_gemm_auto where CUTLASS
      // was built), counted as the slid [n_gemm, k_gemm] matrix each.
      const std::uint64_t sparse_bytes = lin->sparse_weight_bytes();
      const std::uint64_t copies = lin->backends(LinearPath::Sparse).size();
      device_bytes += sparse_bytes;
      sparse_auto_bytes += sparse_bytes - sparse_bytes / copies;
      if (options.dense_fallback) dense_fallback_bytes += lin->dense_weight_bytes();
      if (sparse_gemm_note.empty()) sparse_gemm_note = lin->sparse_backend_note();
    }
    device_bytes += 2 * cache_elements * 2;
    layers.push_back(std::move(layer));
    if (!options.quiet && (l + 1 == c.layers || (l + 1) % 8 == 0))
      std::fprintf(stderr, "slidesparse: loaded layer %lld/%lld\n", static_cast<long long>(l + 1),
                   static_cast<long long>(c.layers));
  }
  device_bytes +=
      embed.bytes() + lm_head->device_bytes() + dense_fallback_bytes + linear_scratch.bytes();
  if (!options.quiet && dense_fallback_bytes > 0)
    std::fprintf(stderr, "slidesparse: dense fallback: %.1f MB of dense weights kept\n",
                 static_cast<double>(dense_fallback_bytes) / 1e6);
  if (!options.quiet && sparse_auto_bytes > 0)
    std::fprintf(stderr,
                 "slidesparse: sparse GEMM auto: cuSPARSELt and CUTLASS, %.1f MB for the second "
                 "copy of the sparse weights\n",
                 static_cast<double>(sparse_auto_bytes) / 1e6);
  if (!sparse_gemm_note.empty())  // once per model, not per linear
    std::fprintf(stderr, "slidesparse: sparse GEMM auto runs cuSPARSELt only: %s\n",
                 sparse_gemm_note.c_str());
}

void GpuModel::Impl::allocate_buffers() {
  const ModelConfig& c = config;
  const auto bf16_rows = [&](std::int64_t width) {
    return DeviceBuffer<std::uint16_t>(at(rows_cap * width));
  };
  residual = bf16_rows(c.hidden);
  normed = bf16_rows(c.hidden);
  // cuDNN's attention tiles may reach past the last token: those two keep rows of slack, zeroed.
  const std::int64_t tail = CudnnPrefillAttention::kTailRows;
  qkv =
      DeviceBuffer<std::uint16_t>(at((rows_cap + tail) * (c.heads + 2 * c.kv_heads) * c.head_dim));
  attended = DeviceBuffer<std::uint16_t>(at((rows_cap + tail) * c.q_width()));
  qkv.fill_zero(nullptr);
  attended.fill_zero(nullptr);
  projected = bf16_rows(c.hidden);
  gate_up = bf16_rows(2 * c.intermediate);
  if (!options.fuse_quantize) activated = bf16_rows(c.intermediate);  // fused, never written
  const std::int64_t head_rows = lm_head->padded_rows(options.max_sequences);
  last_hidden = DeviceBuffer<std::uint16_t>(at(head_rows * c.hidden));
  last_hidden.fill_zero(nullptr);  // the padded rows feed the LM head: keep them finite
  normed.fill_zero(nullptr);
  logits = DeviceBuffer<float>(at(head_rows * c.vocab));
  const std::int64_t t = rows_cap, s = options.max_sequences;
  tokens = DeviceBuffer<int>(at(t));
  sequence = DeviceBuffer<int>(at(t));
  position = DeviceBuffer<int>(at(t));
  cu_seqlens = DeviceBuffer<int>(at(s + 1));
  lengths = DeviceBuffer<int>(at(s));
  last_rows = DeviceBuffer<int>(at(s));
  sampled = DeviceBuffer<int>(at(s));
  iota = DeviceBuffer<int>(at(s));
  prefill_lengths = DeviceBuffer<int>(at(s));
  ragged_offsets = DeviceBuffer<std::int64_t>(at(2 * (s + 1)));
  ragged_in = PinnedBuffer<std::int64_t>(at(2 * (s + 1)));
  std::vector<int> ids(at(s));
  for (std::int64_t i = 0; i < s; ++i) ids[at(i)] = static_cast<int>(i);
  iota.upload(ids.data(), ids.size());
  prefill_in = PinnedBuffer<int>(at(3 * t + 3 * s + 1));
  step_in = PinnedBuffer<int>(at(3 * s));
  step_out = PinnedBuffer<int>(at(s));
  device_bytes += residual.bytes() + normed.bytes() + qkv.bytes() + attended.bytes() +
                  projected.bytes() + gate_up.bytes() + activated.bytes() + logits.bytes();
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
}

// Plans for M are built outside the timed and captured work; a plan that grew the shared GEMM
// workspace moved it, so the graphs captured with the old one are dropped.
void GpuModel::Impl::prepare_linears(std::int64_t m) {
  if (prepared_linears.insert(m).second) {
    const bool search = options.search_untuned && options.tuning == nullptr;
    // Auto (the dense fallback) runs either path per M: both are planned.
    const std::vector<LinearPath> paths = path == LinearPath::Auto
                                              ? std::vector{LinearPath::Sparse, LinearPath::Dense}
                                              : std::vector{path};
    for (GpuLayer& layer : layers) {
      const std::array<SlideSparseLinear*, 4> linears = layer.linears();
      for (std::size_t i = 0; i < linears.size(); ++i) {
        if (!search) {
          linears[i]->prepare({m});
          continue;
        }
        for (const LinearPath p : paths) {
          if (&layer == &layers.front()) {
            search_algo(*linears[i], m, p);
            continue;
          }
          // The same shape as the first layer's: each of its GEMMs' winner.
          const SlideSparseLinear& first = *layers.front().linears()[i];
          for (const GemmBackendKind backend : first.backends(p))
            if (const auto algo = first.prepared_algo(m, backend))
              linears[i]->use_algo(m, backend, *algo);
        }
      }
    }
  }
  drop_stale_graphs();
}

void GpuModel::Impl::prepare_lm_head(std::int64_t rows) {
  if (prepared_head.insert(rows).second) lm_head->prepare(rows);
  drop_stale_graphs();
}

void GpuModel::Impl::drop_stale_graphs() {
  if (gemm->workspace_bytes() != graph_workspace) {
    graphs.clear();
    graph_workspace = gemm->workspace_bytes();
  }
}

void GpuModel::Impl::prepare_attention(std::int64_t sequences, std::int64_t max_seqlen) {
  cudnn_shape.reset();
  last_attention = PrefillAttention::Own;
  if (!cudnn_attention) return;
  const SdpaShape shape =
      sdpa_shape(sequences, max_seqlen, config.heads, config.kv_heads, config.head_dim);
  const std::string refusal = cudnn_attention->prepare(shape);  // builds once, remembers refusals
  if (refusal.empty()) {
    cudnn_shape = shape;
    last_attention = PrefillAttention::Cudnn;
  } else if (refused_shapes.insert(shape).second) {
    std::fprintf(stderr,
                 "slidesparse: cuDNN attention refused %s (%s): this prefill uses the runner's own "
                 "attention kernel\n",
                 shape.describe().c_str(), refusal.c_str());
  }
}

void GpuModel::Impl::search_algo(SlideSparseLinear& layer, std::int64_t m, LinearPath p) {
  SearchOptions search;
  search.warmup = 2;
  search.reps = 10;
  const auto results = layer.search_gemms(m, p, search, stream.get());
  for (const LayerGemmSearch& r : results)
    if (r.timings.empty() || !r.timings.front().ok)  // nothing ran: the library default
      layer.use_algo(m, r.backend, GemmAlgo{});
  // What the layer's choice per M compares (tuning_db.hpp's keys).
  if (searched) layer.record_search(*searched, m, results);
}

void GpuModel::Impl::linear(SlideSparseLinear& layer, const DeviceBuffer<std::uint16_t>& x,
                            std::int64_t m, DeviceBuffer<std::uint16_t>& y) {
  timer.mark(ForwardPart::Gemm, stream.get());
  layer.forward(x.get(), m, y.get(), stream.get(), path);
  timer.mark(ForwardPart::Other, stream.get());
}

template <class Produce>
void GpuModel::Impl::fused_linear(SlideSparseLinear& layer, std::int64_t m,
                                  DeviceBuffer<std::uint16_t>& y, Produce&& produce) {
  cudaStream_t s = stream.get();
  timer.mark(ForwardPart::Gemm, s);
  const LinearPath resolved = layer.resolve(m, path);
  produce(quantize_target(layer, m, resolved));
  layer.gemm_to_output(m, y.get(), resolved, s);
  timer.mark(ForwardPart::Other, s);
}

void GpuModel::Impl::forward(std::int64_t m, bool decode, std::int64_t sequences,
                             std::int64_t max_seqlen) {
  const ModelConfig& c = config;
  cudaStream_t s = stream.get();
  const float eps = static_cast<float>(c.rms_norm_eps);
  const int* row_sequence = decode ? iota.get() : sequence.get();
  embedding(as_bf16(residual), as_bf16(embed), tokens.get(), m, c.hidden, c.vocab, s);
  // Fused, each norm (and the activation) quantizes straight into the linear layer it feeds;
  // the residual add that ends layer l moves into layer l+1's input norm. Only the final norm
  // writes BF16 rows (the LM head reads them).
  const bool fuse = options.fuse_quantize;
  const bool bitnet = c.architecture == Architecture::BitNet;
  if (!fuse)
    rms_norm(as_bf16(normed), as_bf16(residual), as_bf16(layers.front().input_norm), m, c.hidden,
             eps, s);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    GpuLayer& layer = layers[l];
    // Attention block (reference_forward.cpp attention_block).
    if (fuse) {
      fused_linear(*layer.qkv, m, qkv, [&](const QuantizeTarget& target) {
        if (l == 0)
          rms_norm_quantize_lift(as_bf16(residual), as_bf16(layer.input_norm), m, c.hidden, eps,
                                 target, s);
        else  // the previous layer's MLP output joins the residual here
          add_rms_norm_quantize_lift(as_bf16(residual), as_bf16(projected),
                                     as_bf16(layer.input_norm), m, c.hidden, eps, target, s);
      });
    } else {
      linear(*layer.qkv, normed, m, qkv);
    }
    const KvCacheView cache = cache_view(layer);
    timer.mark(ForwardPart::Attention, s);
    rope_store_kv(as_bf16(qkv), m, row_sequence, position.get(), inv_freq.get(), c.heads, cache, s);
    if (decode)
      attention_decode(as_bf16(attended), as_bf16(qkv), lengths.get(), sequences, c.heads, cache,
                       s);
    else if (cudnn_shape)
      cudnn_attention->run(as_bf16(attended), as_bf16(qkv), m, packed_sequences(), *cudnn_shape, s);
    else
      attention_prefill(as_bf16(attended), as_bf16(qkv), cu_seqlens.get(), sequences, m, max_seqlen,
                        c.heads, c.kv_heads, c.head_dim, s);
    timer.mark(ForwardPart::Other, s);
    if (bitnet && fuse) {  // BitNet normalizes the heads before o_proj
      fused_linear(*layer.o, m, projected, [&](const QuantizeTarget& target) {
        rms_norm_quantize_lift(as_bf16(attended), as_bf16(layer.attn_sub_norm), m, c.q_width(), eps,
                               target, s);
      });
    } else {
      if (bitnet)
        rms_norm(as_bf16(attended), as_bf16(attended), as_bf16(layer.attn_sub_norm), m, c.q_width(),
                 eps, s);
      linear(*layer.o, attended, m, projected);
    }
    // MLP block (mlp_block): gate|up fused, act(gate)·up, [BitNet sub-norm], down.
    if (fuse) {
      fused_linear(*layer.gate_up, m, gate_up, [&](const QuantizeTarget& target) {
        add_rms_norm_quantize_lift(as_bf16(residual), as_bf16(projected),
                                   as_bf16(layer.post_attention_norm), m, c.hidden, eps, target, s);
      });
      fused_linear(*layer.down, m, projected, [&](const QuantizeTarget& target) {
        if (bitnet)
          gated_activation_rms_norm_quantize_lift(as_bf16(gate_up), m, c.intermediate, c.activation,
                                                  as_bf16(layer.ffn_sub_norm), eps, target, s);
        else
          gated_activation_quantize_lift(as_bf16(gate_up), m, c.intermediate, c.activation, target,
                                         s);
      });
    } else {
      add_rms_norm(as_bf16(residual), as_bf16(projected), as_bf16(normed),
                   as_bf16(layer.post_attention_norm), m, c.hidden, eps, s);
      linear(*layer.gate_up, normed, m, gate_up);
      gated_activation(as_bf16(activated), as_bf16(gate_up), m, c.intermediate, c.activation, s);
      if (bitnet)
        rms_norm(as_bf16(activated), as_bf16(activated), as_bf16(layer.ffn_sub_norm), m,
                 c.intermediate, eps, s);
      linear(*layer.down, activated, m, projected);
    }
    // The residual add fused with the next norm: the next layer's input norm, or the final one.
    if (fuse && l + 1 < layers.size()) continue;  // in the next layer's fused input norm
    const DeviceBuffer<std::uint16_t>& next_norm =
        l + 1 < layers.size() ? layers[l + 1].input_norm : final_norm;
    add_rms_norm(as_bf16(residual), as_bf16(projected), as_bf16(normed), as_bf16(next_norm), m,
                 c.hidden, eps, s);
  }
}

// One decode step for `batch` sequences: inputs from the pinned step buffer, sampled tokens
// back into it. Everything here is captured into the batch size's graph.
void GpuModel::Impl::decode_body(std::int64_t batch) {
  cudaStream_t s = stream.get();
  const std::size_t bytes = at(batch) * sizeof(int);
  SLIDESPARSE_CHECK_CUDA(
      cudaMemcpyAsync(tokens.get(), step_in.get(), bytes, cudaMemcpyHostToDevice, s));
  SLIDESPARSE_CHECK_CUDA(cudaMemcpyAsync(position.get(), step_in.get() + options.max_sequences,
                                         bytes, cudaMemcpyHostToDevice, s));
  SLIDESPARSE_CHECK_CUDA(cudaMemcpyAsync(lengths.get(), step_in.get() + 2 * options.max_sequences,
                                         bytes, cudaMemcpyHostToDevice, s));
  forward(batch, true, batch, 0);
  timer.mark(ForwardPart::Gemm, s);
  lm_head->forward(normed.get(), batch, logits.get(), s);  // row s is sequence s
  timer.mark(ForwardPart::Other, s);
  argmax_rows(sampled.get(), logits.get(), batch, config.vocab, s);
  SLIDESPARSE_CHECK_CUDA(
      cudaMemcpyAsync(step_out.get(), sampled.get(), bytes, cudaMemcpyDeviceToHost, s));
}

// ---- GpuModel ----------------------------------------------------------------------------

GpuModel::GpuModel(const std::string& model, const GpuModelOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  SLIDESPARSE_REQUIRE(
      options.max_tokens > 0 && options.max_sequences > 0 && options.max_context > 0,
      InvalidArgument,
      "GpuModel: max_tokens, max_sequences and max_context must be positive (got " +
          std::to_string(options.max_tokens) + ", " + std::to_string(options.max_sequences) + ", " +
          std::to_string(options.max_context) + ")");
  SLIDESPARSE_REQUIRE(options.backend == GpuBackend::Dense || !options.pattern.is_infinite(),
                      InvalidArgument,
                      "GpuModel: the sparse backend needs a finite pattern (2_4, 2_8, ...), not " +
                          options.pattern.zeros_name());
  SLIDESPARSE_REQUIRE(!options.dense_fallback || options.backend == GpuBackend::Sparse,
                      InvalidArgument, "GpuModel: dense_fallback goes with the sparse backend");
  SLIDESPARSE_REQUIRE(!options.sparse_gemm_auto || options.backend == GpuBackend::Sparse,
                      InvalidArgument, "GpuModel: sparse_gemm_auto goes with the sparse backend");
  SLIDESPARSE_REQUIRE(options.attention == PrefillAttention::Own || cudnn_attention_built(),
                      InvalidArgument,
                      "GpuModel: attention cudnn, but cuDNN's attention is " +
                          cudnn_attention_description() + "; use attention own");
  m.path = options.backend == GpuBackend::Dense ? LinearPath::Dense
           : options.dense_fallback             ? LinearPath::Auto
                                                : LinearPath::Sparse;
  std::unique_ptr<WeightSource> source = open_weight_source(model, options);
  m.config = source->config();
  m.name = source->name();
  if (!options.quiet) std::fprintf(stderr, "slidesparse: %s\n", source->describe().c_str());
  // 64: every GEMM's M multiple divides it, so padded rows stay inside the buffers.
  m.rows_cap = round_up(std::max(options.max_tokens, options.max_sequences), 64);
  try {
    m.gemm = std::make_unique<GemmContext>();
    m.load(*source);
    m.allocate_buffers();
  } catch (const DeviceError& e) {
    throw DeviceError("GpuModel " + m.name + ": could not place the model on the GPU with " +
                      "max_tokens=" + std::to_string(options.max_tokens) +
                      ", max_sequences=" + std::to_string(options.max_sequences) +
                      ", max_context=" + std::to_string(options.max_context) + " (" +
                      precision_name(options.precision) + ", " + gpu_backend_name(options.backend) +
                      "): " + e.what());
  }
  m.graph_workspace = m.gemm->workspace_bytes();
  if (options.attention == PrefillAttention::Cudnn) {
    try {
      m.cudnn_attention = std::make_unique<CudnnPrefillAttention>();
    } catch (const DeviceError& e) {
      std::fprintf(stderr,
                   "slidesparse: cuDNN could not start (%s): prefill uses the runner's own "
                   "attention kernel\n",
                   e.what());
    }
  }
  m.last_attention = m.cudnn_attention ? PrefillAttention::Cudnn : PrefillAttention::Own;
}

GpuModel::~GpuModel() = default;

std::vector<int> GpuModel::prefill(const std::vector<std::vector<int>>& prompts) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const GpuModelOptions& o = m.options;
  SLIDESPARSE_REQUIRE(!prompts.empty(), InvalidArgument, "prefill: no prompts");
  SLIDESPARSE_REQUIRE(static_cast<std::int64_t>(prompts.size()) <= o.max_sequences, InvalidArgument,
                      "prefill: " + std::to_string(prompts.size()) +
                          " prompts, more than max_sequences " + std::to_string(o.max_sequences));
  const std::int64_t max_length = std::min(o.max_context, c.max_position);
  PrefillRows rows;
  rows.cu_seqlens.push_back(0);
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    const std::string name = "prompt " + std::to_string(p);
    const std::int64_t length = static_cast<std::int64_t>(prompts[p].size());
    SLIDESPARSE_REQUIRE(length > 0, InvalidArgument, name + " is empty");
    SLIDESPARSE_REQUIRE(length <= max_length, InvalidArgument,
                        name + " has " + std::to_string(length) +
                            " tokens, more than the context of " + std::to_string(max_length));
    for (std::size_t i = 0; i < prompts[p].size(); ++i) {
      const int id = prompts[p][i];
      SLIDESPARSE_REQUIRE(id >= 0 && id < c.vocab, InvalidArgument,
                          name + ", position " + std::to_string(i) + ": token id " +
                              std::to_string(id) + " out of range [0, " + std::to_string(c.vocab) +
                              ")");
      rows.tokens.push_back(id);
      rows.sequence.push_back(static_cast<int>(p));
      rows.position.push_back(static_cast<int>(i));
    }
    rows.cu_seqlens.push_back(static_cast<int>(rows.tokens.size()));
    rows.last_rows.push_back(static_cast<int>(rows.tokens.size()) - 1);
    rows.max_seqlen = std::max(rows.max_seqlen, length);
  }
  const std::int64_t total = static_cast<std::int64_t>(rows.tokens.size());
  SLIDESPARSE_REQUIRE(total <= o.max_tokens, InvalidArgument,
                      "prefill: " + std::to_string(total) + " tokens in " +
                          std::to_string(prompts.size()) + " prompts, more than max_tokens " +
                          std::to_string(o.max_tokens) + " of one forward");
  const std::int64_t count = static_cast<std::int64_t>(prompts.size());
  m.prepare_linears(total);
  m.prepare_lm_head(count);
  m.prepare_attention(count, rows.max_seqlen);

  // Host rows → pinned → device, on the model's stream.
  cudaStream_t s = m.stream.get();
  int* staging = m.prefill_in.get();
  const auto copy = [&](const std::vector<int>& host, DeviceBuffer<int>& device) {
    std::copy(host.begin(), host.end(), staging);
    SLIDESPARSE_CHECK_CUDA(cudaMemcpyAsync(device.get(), staging, host.size() * sizeof(int),
                                           cudaMemcpyHostToDevice, s));
    staging += host.size();
  };
  m.timer.begin(ForwardPart::Other, s);
  copy(rows.tokens, m.tokens);
  copy(rows.sequence, m.sequence);
  copy(rows.position, m.position);
  copy(rows.cu_seqlens, m.cu_seqlens);
  copy(rows.last_rows, m.last_rows);
  if (m.cudnn_shape) {  // the packed batch as cuDNN reads it
    std::vector<int> lengths(prompts.size());
    for (std::size_t p = 0; p < prompts.size(); ++p)
      lengths[p] = rows.cu_seqlens[p + 1] - rows.cu_seqlens[p];
    copy(lengths, m.prefill_lengths);
    const std::vector<std::int64_t> qkv_offsets =
        packed_sequence_offsets(rows.cu_seqlens, (c.heads + 2 * c.kv_heads) * c.head_dim);
    const std::vector<std::int64_t> out_offsets =
        packed_sequence_offsets(rows.cu_seqlens, c.q_width());
    std::int64_t* ragged = m.ragged_in.get();
    std::copy(qkv_offsets.begin(), qkv_offsets.end(), ragged);
    std::copy(out_offsets.begin(), out_offsets.end(), ragged + o.max_sequences + 1);
    SLIDESPARSE_CHECK_CUDA(cudaMemcpyAsync(m.ragged_offsets.get(), ragged,
                                           m.ragged_in.size() * sizeof(std::int64_t),
                                           cudaMemcpyHostToDevice, s));
  }
  m.forward(total, false, count, rows.max_seqlen);
  gather_rows(as_bf16(m.last_hidden), as_bf16(m.normed), m.last_rows.get(), count, c.hidden, s);
  m.timer.mark(ForwardPart::Gemm, s);
  m.lm_head->forward(m.last_hidden.get(), count, m.logits.get(), s);
  m.timer.mark(ForwardPart::Other, s);
  argmax_rows(m.sampled.get(), m.logits.get(), count, c.vocab, s);
  SLIDESPARSE_CHECK_CUDA(cudaMemcpyAsync(m.step_out.get(), m.sampled.get(), at(count) * sizeof(int),
                                         cudaMemcpyDeviceToHost, s));
  m.last_timings = m.timer.finish(s);
  m.stream.synchronize();

  m.seq_lengths.assign(at(count), 0);
  for (std::size_t p = 0; p < prompts.size(); ++p)
    m.seq_lengths[p] = static_cast<std::int64_t>(prompts[p].size());
  m.logits_rows = count;
  return std::vector<int>(m.step_out.get(), m.step_out.get() + count);
}

std::vector<int> GpuModel::decode_step(const std::vector<int>& next_tokens) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const std::int64_t batch = batch_size();
  SLIDESPARSE_REQUIRE(batch > 0, InvalidArgument, "decode_step before prefill");
  SLIDESPARSE_REQUIRE(static_cast<std::int64_t>(next_tokens.size()) == batch, InvalidArgument,
                      "decode_step: " + std::to_string(next_tokens.size()) +
                          " tokens for a batch of " + std::to_string(batch));
  const std::int64_t max_length = std::min(m.options.max_context, c.max_position);
  for (std::int64_t s = 0; s < batch; ++s) {
    const int id = next_tokens[at(s)];
    SLIDESPARSE_REQUIRE(id >= 0 && id < c.vocab, InvalidArgument,
                        "sequence " + std::to_string(s) + ": token id " + std::to_string(id) +
                            " out of range [0, " + std::to_string(c.vocab) + ")");
    SLIDESPARSE_REQUIRE(m.seq_lengths[at(s)] < max_length, InvalidArgument,
                        "sequence " + std::to_string(s) + " already holds " +
                            std::to_string(m.seq_lengths[at(s)]) + " tokens, the context of " +
                            std::to_string(max_length));
  }
  m.prepare_linears(batch);
  m.prepare_lm_head(batch);
  const std::int64_t stride = m.options.max_sequences;
  for (std::int64_t s = 0; s < batch; ++s) {
    m.step_in[at(s)] = next_tokens[at(s)];
    m.step_in[at(stride + s)] = static_cast<int>(m.seq_lengths[at(s)]);          // RoPE position
    m.step_in[at(2 * stride + s)] = static_cast<int>(m.seq_lengths[at(s)] + 1);  // keys to read
  }
  cudaStream_t s = m.stream.get();
  if (m.timer.enabled()) {  // eager, with events between the parts
    m.timer.begin(ForwardPart::Other, s);
    m.decode_body(batch);
    m.last_timings = m.timer.finish(s);
  } else {
    auto& graph = m.graphs[batch];
    if (!graph) graph = std::make_unique<CudaGraph>(s, [&] { m.decode_body(batch); });
    graph->launch(s);
  }
  m.stream.synchronize();
  for (std::int64_t q = 0; q < batch; ++q) ++m.seq_lengths[at(q)];
  m.logits_rows = batch;
  return std::vector<int>(m.step_out.get(), m.step_out.get() + batch);
}

std::vector<std::vector<int>> GpuModel::generate_greedy(
    const std::vector<std::vector<int>>& prompts, int max_new) {
  SLIDESPARSE_REQUIRE(max_new >= 0, InvalidArgument,
                      "generate_greedy: max_new " + std::to_string(max_new) + " is negative");
  std::vector<std::vector<int>> generated(prompts.size());
  std::vector<int> next = prefill(prompts);
  for (int step = 0; step < max_new; ++step) {
    for (std::size_t s = 0; s < prompts.size(); ++s) generated[s].push_back(next[s]);
    if (step + 1 < max_new) next = decode_step(next);  // the last token is not fed back
  }
  return generated;
}

std::vector<float> GpuModel::last_logits() const {
  const Impl& m = *impl_;
  m.stream.synchronize();
  std::vector<float> out(at(m.logits_rows * m.config.vocab));
  m.logits.download(out.data(), out.size());
  return out;
}

void GpuModel::set_timing(bool on) { impl_->timer.set_enabled(on); }
GpuTimings GpuModel::last_timings() const { return impl_->last_timings; }
const ModelConfig& GpuModel::config() const { return impl_->config; }
const GpuModelOptions& GpuModel::options() const { return impl_->options; }
PrefillAttention GpuModel::prefill_attention() const { return impl_->last_attention; }
std::int64_t GpuModel::batch_size() const {
  return static_cast<std::int64_t>(impl_->seq_lengths.size());
}
std::int64_t GpuModel::sequence_length(std::int64_t s) const {
  SLIDESPARSE_REQUIRE(
      s >= 0 && s < batch_size(), InvalidArgument,
      "sequence " + std::to_string(s) + " out of range [0, " + std::to_string(batch_size()) + ")");
  return impl_->seq_lengths[at(s)];
}
const std::string& GpuModel::name() const { return impl_->name; }
std::uint64_t GpuModel::device_bytes() const { return impl_->device_bytes; }
std::uint64_t GpuModel::dense_fallback_bytes() const { return impl_->dense_fallback_bytes; }
std::uint64_t GpuModel::linear_scratch_bytes() const { return impl_->linear_scratch.bytes(); }
std::uint64_t GpuModel::sparse_auto_bytes() const { return impl_->sparse_auto_bytes; }
const std::string& GpuModel::sparse_gemm_note() const { return impl_->sparse_gemm_note; }

}  // namespace slidesparse::runner
