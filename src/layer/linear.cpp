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

  const GemmBackendKind sparse_kind = options.sparse_backend;
  if (sparse_kind != GemmBackendKind::CusparseLt && sparse_kind != GemmBackendKind::CutlassSparse)
    throw InvalidArgument(std::string("linear layer sparse backend must be cusparselt or cutlass, "
                                      "not ") +
                          backend_name(sparse_kind));
  const bool fused_sparse = options.build_sparse && sparse_kind == GemmBackendKind::CutlassSparse;
  if (fused_sparse && activation_ != DType::BF16)
    throw InvalidArgument(std::string("linear layer: the cutlass sparse backend writes BF16 "
                                      "outputs, the layer's activations are ") +
                          dtype_name(activation_));
  // Without a sparse (dense) path the cuSPARSELt (cuBLASLt) multiples keep the padding this
  // layer always had.
  const GemmRequirements sparse_req = gemm_requirements(
      precision_, options.build_sparse ? sparse_kind : GemmBackendKind::CusparseLt);
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
  if (options.build_sparse) {
    const auto padded =
        pad_matrix(weights.weight.data(), n_, weights.k_slide(), n_gemm_, k_gemm_sparse_, element);
    const auto device = upload(padded);  // compressed by the Gemm, then freed here
    sparse_ = fused_sparse
                  ? make_cutlass_sparse_gemm(ctx, precision_, n_gemm_, k_gemm_sparse_, device.get())
                  : make_cusparselt_gemm(ctx, precision_, n_gemm_, k_gemm_sparse_, device.get());
    q_sparse_ = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(m_gemm_cap_ * k_gemm_sparse_) *
                                           element);
    q_sparse_.fill_zero(nullptr);
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
    q_dense_ =
        DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(m_gemm_cap_ * k_gemm_dense_) * element);
    q_dense_.fill_zero(nullptr);
  }
  scale_x_ = DeviceBuffer<float>(static_cast<std::size_t>(m_gemm_cap_));
  // The two libraries may write different accumulator types (cuSPARSELt has no FP32
  // output for 16-bit inputs): size the shared buffer for the wider one.
  std::size_t acc_element = 0;
  for (const Gemm* g : {sparse_.get(), dense_.get()})
    if (g) acc_element = std::max(acc_element, dtype_size(g->output_type()));
  acc_ = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(m_gemm_cap_ * n_gemm_) * acc_element);
  SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());
}

SlideSparseLinear::~SlideSparseLinear() = default;

std::int64_t SlideSparseLinear::k_gemm(LinearPath path) const {
  return resolve(1, path) == LinearPath::Sparse ? k_gemm_sparse_ : k_gemm_dense_;
}

const void* SlideSparseLinear::gemm_input(LinearPath path) const {
  return resolve(1, path) == LinearPath::Sparse ? q_sparse_.get() : q_dense_.get();
}

LinearPath SlideSparseLinear::resolve(std::int64_t m, LinearPath path) const {
  if (path == LinearPath::Sparse && !sparse_)
    throw InvalidArgument("this linear layer was built without its sparse path");
  if (path == LinearPath::Dense && !dense_)
    throw InvalidArgument("this linear layer was built without its dense path");
  if (path != LinearPath::Auto) return path;
  if (!sparse_) return LinearPath::Dense;
  if (!dense_ || !tuning_ || tuning_->stale()) return LinearPath::Sparse;
  const auto sparse = tuning_->lookup(backend_name(sparse_->kind()), precision_name(precision_),
                                      pattern_.zeros_name(), n_gemm_, k_gemm_sparse_, m);
  // Like with like: against a sparse GEMM that leaves the dequantization to a separate kernel,
  // the fused cuBLASLt dense path is weighed by its plain GEMM's time (the database has both).
  const GemmBackendKind dense_timed =
      dense_->kind() == GemmBackendKind::CublasLtFused && !sparse_->fuses_dequantize()
          ? GemmBackendKind::CublasLtDense
          : dense_->kind();
  const auto dense = tuning_->lookup(backend_name(dense_timed), precision_name(precision_), "dense",
                                     n_gemm_, k_gemm_dense_, m);
  // Never slower than dense: where dense measured faster for this M bucket, dispatch dense.
  if (sparse && dense && dense->time_us < sparse->time_us) return LinearPath::Dense;
  return LinearPath::Sparse;
}

Gemm& SlideSparseLinear::gemm_for(LinearPath resolved) const {
  return resolved == LinearPath::Sparse ? *sparse_ : *dense_;
}

std::int64_t SlideSparseLinear::m_gemm(std::int64_t m, LinearPath path) const {
  const Gemm& gemm = gemm_for(resolve(m, path));
  return round_up(m, gemm_requirements(precision_, gemm.kind()).m_multiple);
}

std::vector<AlgoTiming> SlideSparseLinear::search(std::int64_t m, LinearPath path,
                                                  const SearchOptions& options,
                                                  cudaStream_t stream) {
  const LinearPath resolved = resolve(m, path);
  Gemm& gemm = gemm_for(resolved);
  auto timings =
      gemm.search(m_gemm(m, resolved), gemm_input(resolved), acc_.get(), stream, options);
  for (const auto& t : timings) {
    if (!t.ok) continue;
    gemm.prepare(m_gemm(m, resolved), t.algo);
    break;
  }
  return timings;
}

void SlideSparseLinear::use_algo(std::int64_t m, LinearPath path, const GemmAlgo& algo) {
  const LinearPath resolved = resolve(m, path);
  gemm_for(resolved).prepare(m_gemm(m, resolved), algo);
}

void SlideSparseLinear::prepare(const std::vector<std::int64_t>& ms) {
  for (std::int64_t m : ms) {
    for (LinearPath path : {LinearPath::Sparse, LinearPath::Dense}) {
      if ((path == LinearPath::Sparse && !sparse_) || (path == LinearPath::Dense && !dense_))
        continue;
      GemmAlgo algo;  // library default unless the database has a measured choice
      if (tuning_ && !tuning_->stale()) {
        const bool sparse = path == LinearPath::Sparse;
        const auto entry =
            tuning_->lookup(backend_name(gemm_for(path).kind()), precision_name(precision_),
                            sparse ? pattern_.zeros_name() : "dense", n_gemm_, k_gemm(path), m);
        if (entry) algo = GemmAlgo::from_json(entry->algo);
      }
      try {
        use_algo(m, path, algo);
      } catch (const DeviceError& e) {
        // The nearest bucket's algorithm may not run this M: the library default always does.
        std::fprintf(stderr,
                     "slidesparse: warning: tuned %s algorithm for M=%lld failed (%s); "
                     "using the library default\n",
                     linear_path_name(path), static_cast<long long>(m), e.what());
        use_algo(m, path, GemmAlgo{});
      }
    }
  }
}

void SlideSparseLinear::quantize_input(const void* x, std::int64_t m, LinearPath path,
                                       cudaStream_t stream) {
  float* scales = precision_is_quantized(precision_) ? scale_x_.get() : nullptr;
  if (resolve(m, path) == LinearPath::Sparse) {
    quantize_lift_per_token(x, activation_, m, k_, k_, pattern_, precision_, q_sparse_.get(),
                            k_gemm_sparse_, scales, stream);
  } else {
    quantize_per_token(x, activation_, m, k_, k_, precision_, q_dense_.get(), k_gemm_dense_, scales,
                       stream);
  }
}

void SlideSparseLinear::run_gemm(std::int64_t m, LinearPath path, cudaStream_t stream) {
  const LinearPath resolved = resolve(m, path);
  Gemm& gemm = gemm_for(resolved);
  if (gemm.fuses_dequantize()) {
    run_fused(m, resolved, acc_.get(), stream);
    return;
  }
  gemm.run(gemm_input(resolved), acc_.get(), m_gemm(m, resolved), stream);
}

void SlideSparseLinear::run_fused(std::int64_t m, LinearPath resolved, void* y,
                                  cudaStream_t stream) {
  gemm_for(resolved).run_dequantized(gemm_input(resolved), scale_x_.get(), scale_w_.get(),
                                     has_bias_ ? bias_.get() : nullptr, y, activation_,
                                     m_gemm(m, resolved), stream);
}

void SlideSparseLinear::copy_fused_output(std::int64_t m, void* y, cudaStream_t stream) {
  const std::size_t element = dtype_size(activation_);
  SLIDESPARSE_CHECK_CUDA(cudaMemcpy2DAsync(
      y, static_cast<std::size_t>(n_) * element, acc_.get(),
      static_cast<std::size_t>(n_gemm_) * element, static_cast<std::size_t>(n_) * element,
      static_cast<std::size_t>(m), cudaMemcpyDeviceToDevice, stream));
}

void SlideSparseLinear::dequantize(std::int64_t m, void* y, LinearPath path, cudaStream_t stream) {
  const Gemm& gemm = gemm_for(resolve(m, path));
  if (gemm.fuses_dequantize()) {  // run_gemm wrote Y already
    copy_fused_output(m, y, stream);
    return;
  }
  const bool quantized = precision_is_quantized(precision_);
  dequantize_output(acc_.get(), gemm.output_type(), m, n_, n_gemm_,
                    quantized ? scale_x_.get() : nullptr, quantized ? scale_w_.get() : nullptr,
                    has_bias_ ? bias_.get() : nullptr, activation_, y, n_, stream);
}

void SlideSparseLinear::gemm_to_output(std::int64_t m, void* y, LinearPath path,
                                       cudaStream_t stream) {
  const LinearPath resolved = resolve(m, path);
  if (gemm_for(resolved).fuses_dequantize()) {
    // The GEMM that dequantizes: Y straight into y when N has no padding and y suits its
    // stores (16-byte aligned), else through the accumulator buffer.
    if (n_ == n_gemm_ && reinterpret_cast<std::uintptr_t>(y) % 16 == 0) {
      run_fused(m, resolved, y, stream);
    } else {
      run_fused(m, resolved, acc_.get(), stream);
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
