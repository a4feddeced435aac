#include "slidesparse/layer/linear.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/dequantize.hpp"
#include "slidesparse/cuda/quantize.hpp"
#include "slidesparse/cuda/quantize_lift.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {
std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Copies rows [n, cols] of `element`-byte values into a zeroed [n_pad, cols_pad] host matrix.
std::vector<std::uint8_t> pad_matrix(const std::uint8_t* src, std::int64_t n, std::int64_t cols,
                                     std::int64_t n_pad, std::int64_t cols_pad,
                                     std::size_t element) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(n_pad * cols_pad) * element, 0);
  for (std::int64_t r = 0; r < n; ++r)
    std::memcpy(out.data() + static_cast<std::size_t>(r * cols_pad) * element,
                src + static_cast<std::size_t>(r * cols) * element,
                static_cast<std::size_t>(cols) * element);
  return out;
}

DeviceBuffer<std::uint8_t> upload(const std::vector<std::uint8_t>& host) {
  DeviceBuffer<std::uint8_t> buffer(host.size());
  buffer.upload(host.data(), host.size());
  return buffer;
}

DeviceBuffer<float> upload(const std::vector<float>& host) {
  DeviceBuffer<float> buffer(std::max<std::size_t>(host.size(), 1));
  if (!host.empty()) buffer.upload(host.data(), host.size());
  return buffer;
}

// Why the CUTLASS sparse GEMM cannot run this layer here ("" when it can): the conditions of
// make_cutlass_sparse_gemm and of its BF16 epilogue, checked before trying to build it.
std::string cutlass_sparse_unavailable(const GemmContext& ctx, Precision precision,
                                       DType activation) {
  if (!cutlass_sparse_available())
    return "this build has no CUTLASS backend (CUTLASS headers not found or sm_90a not among "
           "the CUDA architectures)";
  if (precision != Precision::INT8 && precision != Precision::FP8)
    return std::string("it runs INT8 and FP8, not ") + precision_name(precision);
  if (activation != DType::BF16)
    return std::string("it writes BF16 outputs, the layer's activations are ") +
           dtype_name(activation);
  if (ctx.cc_major() != 9 || ctx.cc_minor() != 0)
    return "it runs on cc 9.0 (H100/H200) only, this GPU is cc " + std::to_string(ctx.cc_major()) +
           "." + std::to_string(ctx.cc_minor());
  return "";
}

// The multiples every GEMM of `kinds` accepts: the largest of each.
GemmRequirements joint_requirements(Precision precision,
                                    const std::vector<GemmBackendKind>& kinds) {
  GemmRequirements joint{1, 1, 1};
  for (GemmBackendKind kind : kinds) {
    const GemmRequirements r = gemm_requirements(precision, kind);
    joint.m_multiple = std::max(joint.m_multiple, r.m_multiple);
    joint.n_multiple = std::max(joint.n_multiple, r.n_multiple);
    joint.k_multiple = std::max(joint.k_multiple, r.k_multiple);
  }
  return joint;
}
}  // namespace

GemmBackendKind auto_dense_backend(int cc_major, int cc_minor, Precision precision,
                                   DType activation, const TuningDb* tuning, std::int64_t n_gemm,
                                   std::int64_t k_gemm) {
  if (precision != Precision::FP8 || activation != DType::BF16 || cc_major != 9 || cc_minor != 0 ||
      !tuning || tuning->stale())
    return GemmBackendKind::CublasLtDense;
  std::map<std::int64_t, double> plain, fused;
  for (const TuningEntry& e : tuning->entries_for(n_gemm, k_gemm, precision_name(precision))) {
    if (e.pattern != "dense" || !(e.time_us > 0)) continue;
    if (e.backend == backend_name(GemmBackendKind::CublasLtDense)) plain[e.m] = e.time_us;
    if (e.backend == backend_name(GemmBackendKind::CublasLtFused)) fused[e.m] = e.time_us;
  }
  double log_ratio = 0.0;
  int buckets = 0;
  for (const auto& [m, fused_us] : fused) {
    const auto it = plain.find(m);
    if (it == plain.end()) continue;
    log_ratio += std::log(fused_us / it->second);
    ++buckets;
  }
  return buckets > 0 && log_ratio < 0.0 ? GemmBackendKind::CublasLtFused
                                        : GemmBackendKind::CublasLtDense;
}

const char* linear_path_name(LinearPath path) {
  switch (path) {
    case LinearPath::Auto:
      return "auto";
    case LinearPath::Sparse:
      return "sparse";
    case LinearPath::Dense:
      return "dense";
  }
  return "?";
}

SlideSparseLinear::SlideSparseLinear(GemmContext& ctx, const PackedLinear& weights,
                                     const LinearOptions& options)
    : n_(weights.n),
      k_(weights.k),
      max_m_(options.max_m),
      pattern_(weights.pattern),
      precision_(weights.precision),
      activation_(options.activation),
      tuning_(options.tuning) {
  if (activation_ != DType::BF16 && activation_ != DType::F16)
    throw InvalidArgument("linear layer activations must be BF16 or F16, not " +
                          std::string(dtype_name(activation_)));
  if (!options.build_sparse && !options.build_dense)
    throw InvalidArgument("linear layer needs at least one of the sparse and dense paths");
  if (max_m_ <= 0) throw InvalidArgument("linear layer max_m must be positive");

  // The sparse GEMMs to build, the default first. With sparse_backend_auto both share the slid
  // weights' padding and the lifted input buffer: cuSPARSELt and CUTLASS agree on N ×32 and
  // K ×32 for INT8/FP8 (gemm_requirements), so the joint multiples are each one's own and the
  // GEMM shapes match the tuner's single-backend layers; only M differs (×16 against any), which
  // m_gemm takes from the GEMM that runs.
  std::vector<GemmBackendKind> sparse_kinds;
  if (options.build_sparse && options.sparse_backend_auto) {
    sparse_kinds.push_back(GemmBackendKind::CusparseLt);
    const std::string unavailable = cutlass_sparse_unavailable(ctx, precision_, activation_);
    if (unavailable.empty())
      sparse_kinds.push_back(GemmBackendKind::CutlassSparse);
    else
      sparse_note_ = "the CUTLASS sparse GEMM was not built: " + unavailable;
  } else if (options.build_sparse) {
    const GemmBackendKind kind = options.sparse_backend;
    const bool cutlass = kind == GemmBackendKind::CutlassSparse ||
                         kind == GemmBackendKind::CutlassSparseLift;
    if (kind != GemmBackendKind::CusparseLt && !cutlass)
      throw InvalidArgument(std::string("linear layer sparse backend must be cusparselt, cutlass "
                                        "or cutlass_lift, not ") +
                            backend_name(kind));
    if (cutlass && activation_ != DType::BF16)
      throw InvalidArgument(std::string("linear layer: the ") + backend_name(kind) +
                            " sparse backend writes BF16 outputs, the layer's activations are " +
                            dtype_name(activation_));
    sparse_kinds.push_back(kind);
  }
  // Without a sparse (dense) path the cuSPARSELt (cuBLASLt) multiples keep the padding this
  // layer always had.
  const GemmRequirements sparse_req = joint_requirements(
      precision_, sparse_kinds.empty() ? std::vector{GemmBackendKind::CusparseLt} : sparse_kinds);
  // The quantize kernels write rows of a multiple of 16 elements (their k_out contract),
  // stricter than cuBLASLt's K multiple of 4 (INT8) or 8 (BF16/FP16).
  constexpr std::int64_t kQuantizeRowMultiple = 16;
  const auto padded_n = [&](const GemmRequirements& dense_req) {
    return round_up(n_, std::max(sparse_req.n_multiple, dense_req.n_multiple));
  };
  const auto padded_k = [&](const GemmRequirements& dense_req) {
    return round_up(k_, std::max(dense_req.k_multiple, kQuantizeRowMultiple));
  };
  // Unset: chosen from the tuning database, whose entries are keyed by the GEMM shape the plain
  // cuBLASLt multiples give (the fused backend shares them).
  const GemmRequirements plain_req = gemm_requirements(precision_, GemmBackendKind::CublasLtDense);
  const GemmBackendKind dense_kind =
      options.dense_backend
          ? *options.dense_backend
          : auto_dense_backend(ctx.cc_major(), ctx.cc_minor(), precision_, activation_, tuning_,
                               padded_n(plain_req), padded_k(plain_req));
  if (dense_kind != GemmBackendKind::CublasLtDense &&
      dense_kind != GemmBackendKind::CublasLtFused && dense_kind != GemmBackendKind::CutlassDense)
    throw InvalidArgument(std::string("linear layer dense backend must be cublaslt, "
                                      "cublaslt_fused or cutlass_dense, not ") +
                          backend_name(dense_kind));
  const bool fused_dense = options.build_dense && (dense_kind == GemmBackendKind::CutlassDense ||
                                                   dense_kind == GemmBackendKind::CublasLtFused);
  if (fused_dense && activation_ != DType::BF16)
    throw InvalidArgument(std::string("linear layer: the ") + backend_name(dense_kind) +
                          " backend writes BF16 outputs, the layer's activations are " +
                          dtype_name(activation_));
  const GemmRequirements dense_req =
      options.build_dense ? gemm_requirements(precision_, dense_kind) : plain_req;
  n_gemm_ = padded_n(dense_req);
  k_gemm_sparse_ =
      round_up(weights.k_slide(), std::max(sparse_req.k_multiple, kQuantizeRowMultiple));
  k_gemm_dense_ = padded_k(dense_req);
  m_gemm_cap_ = round_up(max_m_, std::max(sparse_req.m_multiple, dense_req.m_multiple));

  const std::size_t element = dtype_size(precision_storage(precision_));
  if (weights.weight.size() != static_cast<std::size_t>(n_ * weights.k_slide()) * element ||
      weights.scale.size() != static_cast<std::size_t>(n_))
    throw InvalidArgument("linear layer weights hold " + std::to_string(weights.weight.size()) +
                          " bytes and " + std::to_string(weights.scale.size()) +
                          " scales for N = " + std::to_string(n_) +
                          ", K_slide = " + std::to_string(weights.k_slide()));
  // Padded to n_gemm: a fused epilogue reads one scale (and bias) per GEMM row.
  std::vector<float> scale_w(static_cast<std::size_t>(n_gemm_), 0.0f);
  std::copy(weights.scale.begin(), weights.scale.end(), scale_w.begin());
  scale_w_ = upload(scale_w);
  has_bias_ = !weights.bias.empty();
  if (has_bias_ && weights.bias.size() != static_cast<std::size_t>(n_))
    throw InvalidArgument("linear layer bias has " + std::to_string(weights.bias.size()) +
                          " values for N = " + std::to_string(n_));
  std::vector<float> bias;
  if (has_bias_) {
    bias.assign(static_cast<std::size_t>(n_gemm_), 0.0f);
    std::copy(weights.bias.begin(), weights.bias.end(), bias.begin());
  }
  bias_ = upload(bias);  // before the GEMMs: the cuBLASLt fused one copies it
  std::size_t q_sparse_bytes = 0, q_dense_bytes = 0;
  if (!sparse_kinds.empty()) {
    const auto padded =
        pad_matrix(weights.weight.data(), n_, weights.k_slide(), n_gemm_, k_gemm_sparse_, element);
    const auto device = upload(padded);  // compressed by each Gemm, then freed here
    for (GemmBackendKind kind : sparse_kinds) {
      if (kind == GemmBackendKind::CusparseLt) {
        sparse_.push_back(
            make_cusparselt_gemm(ctx, precision_, n_gemm_, k_gemm_sparse_, device.get()));
      } else if (kind == GemmBackendKind::CutlassSparseLift) {
        // Reads the un-lifted quantized rows (written kQuantizeRowMultiple wide) and lifts them.
        sparse_.push_back(make_cutlass_lift_gemm(ctx, precision_, n_gemm_, k_gemm_sparse_,
                                                 device.get(), pattern_, k_,
                                                 round_up(k_, kQuantizeRowMultiple)));
      } else if (!options.sparse_backend_auto) {
        sparse_.push_back(
            make_cutlass_sparse_gemm(ctx, precision_, n_gemm_, k_gemm_sparse_, device.get()));
      } else {
        // Asked for "every backend that can run": one that cannot is left out, not fatal.
        try {
          sparse_.push_back(
              make_cutlass_sparse_gemm(ctx, precision_, n_gemm_, k_gemm_sparse_, device.get()));
        } catch (const Error& e) {
          sparse_note_ = std::string("the CUTLASS sparse GEMM was not built: ") + e.what();
        }
      }
    }
    q_sparse_bytes = static_cast<std::size_t>(m_gemm_cap_ * k_gemm_sparse_) * element;
  }
  if (options.build_dense) {
    const auto dense = unpacked_weight(weights);
    const auto padded = pad_matrix(dense.data(), n_, k_, n_gemm_, k_gemm_dense_, element);
    dense_weight_bytes_ = padded.size();
    const auto device = upload(padded);
    switch (dense_kind) {
      case GemmBackendKind::CutlassDense:
        dense_ = make_cutlass_dense_gemm(ctx, precision_, n_gemm_, k_gemm_dense_, device.get());
        break;
      case GemmBackendKind::CublasLtFused:
        dense_ = make_cublaslt_fused_gemm(ctx, precision_, n_gemm_, k_gemm_dense_, device.get(),
                                          has_bias_ ? bias_.get() : nullptr);
        break;
      default:
        dense_ = make_cublaslt_gemm(ctx, precision_, n_gemm_, k_gemm_dense_, device.get());
    }
    q_dense_bytes = static_cast<std::size_t>(m_gemm_cap_ * k_gemm_dense_) * element;
  }
  // The two libraries may write different accumulator types (cuSPARSELt has no FP32
  // output for 16-bit inputs): size the shared buffer for the wider one.
  std::size_t acc_element = 0;
  for (const auto& g : sparse_) acc_element = std::max(acc_element, dtype_size(g->output_type()));
  if (dense_) acc_element = std::max(acc_element, dtype_size(dense_->output_type()));
  if (options.scratch == nullptr) {
    own_scratch_ = std::make_unique<LinearScratch>();
    scratch_ = own_scratch_.get();
  } else {
    scratch_ = options.scratch;
  }
  scratch_->reserve(q_sparse_bytes, q_dense_bytes, static_cast<std::size_t>(m_gemm_cap_),
                    static_cast<std::size_t>(m_gemm_cap_ * n_gemm_) * acc_element);

  // What the tuning database keys each GEMM's times by. Like with like: against a sparse GEMM
  // that leaves the dequantization to a separate kernel (cuSPARSELt, always built with
  // sparse_backend_auto), the fused cuBLASLt dense path is weighed by its plain GEMM's time (the
  // database has both). The CUTLASS sparse GEMM's entries time it with its fused dequantization,
  // while cuSPARSELt's and cuBLASLt's time the GEMM alone (their dequantize kernel comes after),
  // so the choice errs towards the library backends: CUTLASS runs only where it wins by more
  // than the dequantize kernel the others leave out.
  for (const auto& g : sparse_)
    sparse_candidates_.push_back(
        {backend_name(g->kind()), pattern_.zeros_name(), n_gemm_, k_gemm_sparse_, ""});
  all_candidates_ = sparse_candidates_;
  if (dense_) {
    const bool any_unfused = std::any_of(sparse_.begin(), sparse_.end(),
                                         [](const auto& g) { return !g->fuses_dequantize(); });
    const bool weigh_plain = dense_->kind() == GemmBackendKind::CublasLtFused && any_unfused;
    all_candidates_.push_back(
        {backend_name(weigh_plain ? GemmBackendKind::CublasLtDense : dense_->kind()), "dense",
         n_gemm_, k_gemm_dense_,
         // The runner's own search times only the GEMM it has: then the fused time, which
         // includes the epilogue the sparse times leave out (it errs towards sparse there).
         weigh_plain ? backend_name(GemmBackendKind::CublasLtFused) : ""});
  }
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
}

SlideSparseLinear::~SlideSparseLinear() = default;

std::int64_t SlideSparseLinear::k_gemm(LinearPath path) const {
  return resolve(1, path) == LinearPath::Sparse ? k_gemm_sparse_ : k_gemm_dense_;
}

const void* SlideSparseLinear::gemm_input(LinearPath path) const {
  return resolve(1, path) == LinearPath::Sparse ? scratch_->q_sparse() : scratch_->q_dense();
}

std::uint64_t SlideSparseLinear::sparse_weight_bytes() const {
  return static_cast<std::uint64_t>(sparse_.size()) *
         static_cast<std::uint64_t>(n_gemm_ * k_gemm_sparse_) *
         dtype_size(precision_storage(precision_));
}

SlideSparseLinear::Choice SlideSparseLinear::choose(std::int64_t m) const {
  Choice c;
  if (sparse_.empty()) return c;
  const std::size_t winner = fastest_gemm(tuning_, precision_, all_candidates_, m);
  // Never slower than dense: where dense measured faster than every sparse GEMM, Auto runs dense
  // (and the sparse path, asked for by name, its own fastest).
  c.dense = dense_ && winner == sparse_.size();
  if (!c.dense)
    c.sparse = winner;
  else if (sparse_.size() > 1)
    c.sparse = fastest_gemm(tuning_, precision_, sparse_candidates_, m);
  return c;
}

SlideSparseLinear::Choice SlideSparseLinear::choice(std::int64_t m) const {
  if (!tuning_ || all_candidates_.size() < 2) return Choice{};  // one candidate: no lookups
  if (tuning_->revision() == choices_revision_) {
    const auto it = choices_.find(m);
    if (it != choices_.end()) return it->second;
  }
  return choose(m);
}

void SlideSparseLinear::remember_choice(std::int64_t m) {
  if (!tuning_ || all_candidates_.size() < 2) return;
  if (tuning_->revision() != choices_revision_) {  // the database changed: choose again
    for (auto& [remembered_m, c] : choices_) c = choose(remembered_m);
    choices_revision_ = tuning_->revision();
  }
  choices_[m] = choose(m);
}

LinearPath SlideSparseLinear::resolve(std::int64_t m, LinearPath path) const {
  if (path == LinearPath::Sparse && sparse_.empty())
    throw InvalidArgument("this linear layer was built without its sparse path");
  if (path == LinearPath::Dense && !dense_)
    throw InvalidArgument("this linear layer was built without its dense path");
  if (path != LinearPath::Auto) return path;
  if (sparse_.empty()) return LinearPath::Dense;
  if (!dense_) return LinearPath::Sparse;
  return choice(m).dense ? LinearPath::Dense : LinearPath::Sparse;
}

GemmBackendKind SlideSparseLinear::sparse_gemm_for(std::int64_t m) const {
  if (sparse_.empty()) throw InvalidArgument("this linear layer was built without its sparse path");
  return sparse_[choice(m).sparse]->kind();
}

Gemm& SlideSparseLinear::gemm_for(std::int64_t m, LinearPath resolved) const {
  return resolved == LinearPath::Sparse ? *sparse_[choice(m).sparse] : *dense_;
}

const Gemm* SlideSparseLinear::gemm(GemmBackendKind backend) const {
  for (const auto& g : sparse_)
    if (g->kind() == backend) return g.get();
  return dense_ && dense_->kind() == backend ? dense_.get() : nullptr;
}

Gemm* SlideSparseLinear::gemm(GemmBackendKind backend) {
  return const_cast<Gemm*>(static_cast<const SlideSparseLinear&>(*this).gemm(backend));
}

std::vector<GemmBackendKind> SlideSparseLinear::backends(LinearPath path) const {
  std::vector<GemmBackendKind> out;
  if (path != LinearPath::Dense)
    for (const auto& g : sparse_) out.push_back(g->kind());
  if (path != LinearPath::Sparse && dense_) out.push_back(dense_->kind());
  return out;
}

std::int64_t SlideSparseLinear::m_gemm(std::int64_t m, LinearPath path) const {
  const Gemm& gemm = gemm_for(m, resolve(m, path));
  return m_gemm(m, gemm.kind());
}

std::int64_t SlideSparseLinear::m_gemm(std::int64_t m, GemmBackendKind backend) const {
  return round_up(m, gemm_requirements(precision_, backend).m_multiple);
}

std::vector<LayerGemmSearch> SlideSparseLinear::search_gemms(std::int64_t m, LinearPath path,
                                                             const SearchOptions& options,
                                                             cudaStream_t stream) {
  const LinearPath resolved = resolve(m, path);
  std::vector<LayerGemmSearch> results;
  for (GemmBackendKind backend : backends(resolved)) {
    Gemm& g = *gemm(backend);
    const std::int64_t padded_m = m_gemm(m, backend);
    auto timings = g.search(padded_m, gemm_input(resolved), scratch_->acc(), stream, options);
    for (const auto& t : timings) {
      if (!t.ok) continue;
      g.prepare(padded_m, t.algo);
      break;
    }
    results.push_back({backend, std::move(timings)});
  }
  remember_choice(m);
  return results;
}

std::vector<AlgoTiming> SlideSparseLinear::search(std::int64_t m, LinearPath path,
                                                  const SearchOptions& options,
                                                  cudaStream_t stream) {
  auto results = search_gemms(m, path, options, stream);
  const GemmBackendKind runs = gemm_for(m, resolve(m, path)).kind();
  for (auto& r : results)
    if (r.backend == runs) return std::move(r.timings);
  return {};
}

void SlideSparseLinear::record_search(TuningDb& db, std::int64_t m,
                                      const std::vector<LayerGemmSearch>& results) const {
  for (const LayerGemmSearch& r : results) {
    const auto best =
        std::find_if(r.timings.begin(), r.timings.end(), [](const AlgoTiming& t) { return t.ok; });
    if (best == r.timings.end()) continue;
    const bool dense = dense_ && dense_->kind() == r.backend;
    if (!dense && !gemm(r.backend))
      throw InvalidArgument(std::string("record_search: this linear layer has no ") +
                            backend_name(r.backend) + " GEMM");
    db.put({backend_name(r.backend), precision_name(precision_),
            dense ? std::string("dense") : pattern_.zeros_name(), n_gemm_,
            dense ? k_gemm_dense_ : k_gemm_sparse_, m, best->algo.to_json(), best->median_us});
  }
}

void SlideSparseLinear::use_algo(std::int64_t m, LinearPath path, const GemmAlgo& algo) {
  const LinearPath resolved = resolve(m, path);
  use_algo(m, gemm_for(m, resolved).kind(), algo);
}

void SlideSparseLinear::use_algo(std::int64_t m, GemmBackendKind backend, const GemmAlgo& algo) {
  Gemm* g = gemm(backend);
  if (!g)
    throw InvalidArgument(std::string("use_algo: this linear layer has no ") +
                          backend_name(backend) + " GEMM");
  g->prepare(m_gemm(m, backend), algo);
  remember_choice(m);
}

std::optional<GemmAlgo> SlideSparseLinear::prepared_algo(std::int64_t m,
                                                         GemmBackendKind backend) const {
  const Gemm* g = gemm(backend);
  if (!g) return std::nullopt;
  return g->prepared_algo(m_gemm(m, backend));
}

void SlideSparseLinear::prepare(const std::vector<std::int64_t>& ms) {
  for (std::int64_t m : ms) {
    for (GemmBackendKind backend : backends(LinearPath::Auto)) {
      const bool dense = dense_ && dense_->kind() == backend;
      GemmAlgo algo;  // library default unless the database has a measured choice
      if (tuning_ && !tuning_->stale()) {
        const auto entry = tuning_->lookup(backend_name(backend), precision_name(precision_),
                                           dense ? "dense" : pattern_.zeros_name(), n_gemm_,
                                           dense ? k_gemm_dense_ : k_gemm_sparse_, m);
        if (entry) algo = GemmAlgo::from_json(entry->algo);
      }
      try {
        use_algo(m, backend, algo);
      } catch (const DeviceError& e) {
        // The nearest bucket's algorithm may not run this M: the library default always does.
        std::fprintf(stderr,
                     "slidesparse: warning: tuned %s algorithm for M=%lld failed (%s); "
                     "using the library default\n",
                     backend_name(backend), static_cast<long long>(m), e.what());
        use_algo(m, backend, GemmAlgo{});
      }
    }
    remember_choice(m);
  }
}

SlideSparseLinear::QuantizedRows SlideSparseLinear::quantized_rows(std::int64_t m,
                                                                   LinearPath path) const {
  const LinearPath resolved = resolve(m, path);
  if (resolved == LinearPath::Dense) return {scratch_->q_dense(), false, k_gemm_dense_};
  const Gemm& gemm = gemm_for(m, resolved);
  if (gemm.lifts_input()) return {scratch_->q_sparse(), false, gemm.input_ld()};  // lifts itself
  return {scratch_->q_sparse(), true, k_gemm_sparse_};
}

void SlideSparseLinear::quantize_input(const void* x, std::int64_t m, LinearPath path,
                                       cudaStream_t stream) {
  float* scales = precision_is_quantized(precision_) ? scratch_->scale_x() : nullptr;
  const QuantizedRows rows = quantized_rows(m, path);
  if (rows.lifted)
    quantize_lift_per_token(x, activation_, m, k_, k_, pattern_, precision_, rows.q, rows.row,
                            scales, stream);
  else
    quantize_per_token(x, activation_, m, k_, k_, precision_, rows.q, rows.row, scales, stream);
}

void SlideSparseLinear::run_gemm(std::int64_t m, LinearPath path, cudaStream_t stream) {
  const LinearPath resolved = resolve(m, path);
  Gemm& gemm = gemm_for(m, resolved);
  if (gemm.fuses_dequantize()) {
    run_fused(m, resolved, scratch_->acc(), stream);
    return;
  }
  gemm.run(gemm_input(resolved), scratch_->acc(), m_gemm(m, resolved), stream);
}

void SlideSparseLinear::run_fused(std::int64_t m, LinearPath resolved, void* y,
                                  cudaStream_t stream) {
  gemm_for(m, resolved)
      .run_dequantized(gemm_input(resolved), scratch_->scale_x(), scale_w_.get(),
                       has_bias_ ? bias_.get() : nullptr, y, activation_, m_gemm(m, resolved),
                       stream);
}

void SlideSparseLinear::copy_fused_output(std::int64_t m, void* y, cudaStream_t stream) {
  const std::size_t element = dtype_size(activation_);
  SLIDESPARSE_CHECK_CUDA(cudaMemcpy2DAsync(
      y, static_cast<std::size_t>(n_) * element, scratch_->acc(),
      static_cast<std::size_t>(n_gemm_) * element, static_cast<std::size_t>(n_) * element,
      static_cast<std::size_t>(m), cudaMemcpyDeviceToDevice, stream));
}

void SlideSparseLinear::dequantize(std::int64_t m, void* y, LinearPath path, cudaStream_t stream) {
  const Gemm& gemm = gemm_for(m, resolve(m, path));
  if (gemm.fuses_dequantize()) {  // run_gemm wrote Y already
    copy_fused_output(m, y, stream);
    return;
  }
  const bool quantized = precision_is_quantized(precision_);
  dequantize_output(scratch_->acc(), gemm.output_type(), m, n_, n_gemm_,
                    quantized ? scratch_->scale_x() : nullptr, quantized ? scale_w_.get() : nullptr,
                    has_bias_ ? bias_.get() : nullptr, activation_, y, n_, stream);
}

void SlideSparseLinear::gemm_to_output(std::int64_t m, void* y, LinearPath path,
                                       cudaStream_t stream) {
  const LinearPath resolved = resolve(m, path);
  if (gemm_for(m, resolved).fuses_dequantize()) {
    // The GEMM that dequantizes: Y straight into y when N has no padding and y suits its
    // stores (16-byte aligned), else through the accumulator buffer.
    if (n_ == n_gemm_ && reinterpret_cast<std::uintptr_t>(y) % 16 == 0) {
      run_fused(m, resolved, y, stream);
    } else {
      run_fused(m, resolved, scratch_->acc(), stream);
      copy_fused_output(m, y, stream);
    }
    return;
  }
  run_gemm(m, resolved, stream);
  dequantize(m, y, resolved, stream);
}

void SlideSparseLinear::forward(const void* x, std::int64_t m, void* y, cudaStream_t stream,
                                LinearPath path) {
  if (m <= 0 || m > max_m_)
    throw InvalidArgument("linear layer called with M = " + std::to_string(m) + " outside [1, " +
                          std::to_string(max_m_) + "] it was built for");
  const LinearPath resolved = resolve(m, path);
  quantize_input(x, m, resolved, stream);
  gemm_to_output(m, y, resolved, stream);
}

}  // namespace slidesparse
