// The SlideSparse linear layer on the GPU: Y[M,N] = X[M,K] · W[N,K]ᵀ (+ bias), X and Y in
// BF16 (or FP16). Sparse path: quantize+lift → cuSPARSELt 2:4 GEMM on the slid weights →
// dequantize; or, with LinearOptions::sparse_backend = CutlassSparse (INT8/FP8, BF16, cc 9.0),
// quantize+lift → our CUTLASS 2:4 GEMM that dequantizes in its epilogue; or, with
// CutlassSparseLift, quantize (no lift) → the same GEMM lifting the rows in shared memory; or, with
// LinearOptions::sparse_backend_auto, both on the same slid weights, the tuning database choosing
// per M bucket (sparse_gemm_for). Dense path (the baseline,
// and the fallback for M buckets where sparse loses): quantize → cuBLASLt GEMM on the same
// quantized pruned weights → dequantize; or, with LinearOptions::dense_backend = CublasLtFused
// (FP8, cc 9.0), quantize → cuBLASLt with the dequantization in its epilogue; or, with
// CutlassDense, quantize → the CUTLASS dense GEMM with the same dequantizing epilogue as the
// sparse one.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "slidesparse/cuda/device.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/gemm_choice.hpp"
#include "slidesparse/layer/linear_scratch.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/tuning_db.hpp"

namespace slidesparse {

enum class LinearPath { Auto, Sparse, Dense };
const char* linear_path_name(LinearPath path);

struct LinearOptions {
  DType activation = DType::BF16;  // X and Y: BF16 or F16
  std::int64_t max_m = 4096;       // scratch buffers are sized once for this many tokens
  bool build_sparse = true;
  bool build_dense = true;  // needed for the baseline and for the dense fallback
  // The 2:4 GEMM of the sparse path: CusparseLt, or CutlassSparse (fused dequantization; INT8
  // or FP8 with BF16 activations on a cc 9.0 GPU, in a build that has the backend), or
  // CutlassSparseLift (the same, lifting the quantized rows inside the kernel).
  GemmBackendKind sparse_backend = GemmBackendKind::CusparseLt;
  // Instead of the one sparse_backend names (then ignored): every 2:4 GEMM that can run here,
  // cuSPARSELt and, where it can (INT8/FP8, BF16 activations, a cc 9.0 GPU, a build with the
  // backend), CutlassSparse, both on the same slid weights and the same quantized lifted input.
  // Per M bucket the tuning database picks the fastest (sparse_gemm_for, resolve); without a
  // usable one, cuSPARSELt. The price: a second compressed copy of the weights
  // (sparse_weight_bytes). Where CUTLASS cannot be built the layer keeps cuSPARSELt alone and
  // says why in sparse_backend_note().
  bool sparse_backend_auto = false;
  // The GEMM of the dense path: CublasLtDense; CublasLtFused (cuBLASLt with the dequantization
  // in its epilogue: FP8 with BF16 activations on a cc 9.0 GPU); or CutlassDense (the same fused
  // dequantization as CutlassSparse, with the same conditions): the fair baseline for
  // CutlassSparse. Unset: auto_dense_backend() picks between the two cuBLASLt ones.
  std::optional<GemmBackendKind> dense_backend;
  // Algorithm choices and the sparse-vs-dense decision per M bucket; nullptr (or a stale
  // database) means library defaults and the sparse path.
  const TuningDb* tuning = nullptr;
  // Buffers shared with the other layers of a model (they run one after another on one
  // stream): the layer grows it to its needs at construction and reads the pointers from it on
  // every call. nullptr: the layer keeps buffers of its own. Must outlive the layer, and must
  // not grow (by a later layer's construction) after plans or CUDA graphs were made.
  LinearScratch* scratch = nullptr;
};

// The dense GEMM of an unset LinearOptions::dense_backend: CublasLtFused where it can run (FP8,
// BF16 activations, a cc 9.0 GPU) and the tuning database timed both cuBLASLt backends for this
// GEMM shape with the fused one faster (geometric mean of fused / plain over the M buckets both
// hold; the plain time leaves out the separate dequantize kernel, so this errs towards the plain
// one); CublasLtDense otherwise. n_gemm, k_gemm: the padded GEMM shape (the two share their
// multiples for FP8). No GPU work: cc_major.cc_minor is the layer's GPU.
GemmBackendKind auto_dense_backend(int cc_major, int cc_minor, Precision precision,
                                   DType activation, const TuningDb* tuning, std::int64_t n_gemm,
                                   std::int64_t k_gemm);

// One GEMM's search in a layer (SlideSparseLinear::search_gemms).
struct LayerGemmSearch {
  GemmBackendKind backend;
  std::vector<AlgoTiming> timings;  // fastest first, then the failed ones (Gemm::search)
};

class SlideSparseLinear {
 public:
  SlideSparseLinear(GemmContext& ctx, const PackedLinear& weights, const LinearOptions& options);
  ~SlideSparseLinear();
  SlideSparseLinear(const SlideSparseLinear&) = delete;
  SlideSparseLinear& operator=(const SlideSparseLinear&) = delete;

  // The whole layer. x: [m, k] (ld k), y: [m, n] (ld n), both options.activation.
  // Throws InvalidArgument for m > max_m (nothing is allocated here).
  void forward(const void* x, std::int64_t m, void* y, cudaStream_t stream,
               LinearPath path = LinearPath::Auto);

  // The three stages of forward(), for benchmarks that time them apart. With a sparse GEMM that
  // fuses the dequantization, run_gemm() is the GEMM with its epilogue (Y [M, n_gemm] into the
  // layer's accumulator buffer) and dequantize() only copies that Y out.
  void quantize_input(const void* x, std::int64_t m, LinearPath path, cudaStream_t stream);
  void run_gemm(std::int64_t m, LinearPath path, cudaStream_t stream);
  void dequantize(std::int64_t m, void* y, LinearPath path, cudaStream_t stream);
  // The GEMM and the dequantization into y of an input already quantized (quantize_input, or
  // a producer that filled quantized_rows()): run_gemm + dequantize, or for a GEMM that fuses
  // the dequantization its epilogue writing y directly (no copy) where y allows.
  void gemm_to_output(std::int64_t m, void* y, LinearPath path, cudaStream_t stream);

  // Times every algorithm of each GEMM the path can run for this M (Sparse: every sparse GEMM
  // built; Dense: the dense one; Auto: the path resolve() takes) on the layer's own buffers (call
  // quantize_input first), keeps each GEMM's fastest for M, and returns each GEMM's timings.
  std::vector<LayerGemmSearch> search_gemms(std::int64_t m, LinearPath path,
                                            const SearchOptions& options, cudaStream_t stream);
  // search_gemms, returning the timings of the GEMM the path runs at m (with one sparse GEMM:
  // its timings, fastest first).
  std::vector<AlgoTiming> search(std::int64_t m, LinearPath path, const SearchOptions& options,
                                 cudaStream_t stream);
  // Puts each searched GEMM's fastest algorithm and time into `db`, keyed as resolve() and
  // prepare() look them up (backend, precision, pattern or "dense", n_gemm, k_gemm, m), so that
  // searches without a tuning database still choose among the GEMMs. A GEMM none of whose
  // candidates ran is left out. The times compare as the tuner's do (see resolve()).
  void record_search(TuningDb& db, std::int64_t m,
                     const std::vector<LayerGemmSearch>& results) const;
  // Uses `algo` for this M from now on (builds its plan now, not on the hot path), on the GEMM
  // the path runs at m; the second form on the layer's GEMM of that backend (InvalidArgument
  // when the layer has none).
  void use_algo(std::int64_t m, LinearPath path, const GemmAlgo& algo);
  void use_algo(std::int64_t m, GemmBackendKind backend, const GemmAlgo& algo);
  // The algorithm prepared for M on the layer's GEMM of that backend (M padded as it runs).
  std::optional<GemmAlgo> prepared_algo(std::int64_t m, GemmBackendKind backend) const;
  // Applies the tuning database's algorithms for these M values to every GEMM the layer built
  // (plans built now).
  void prepare(const std::vector<std::int64_t>& ms);
  // The M the GEMM runs with (padded to the multiple of the GEMM the path runs at m).
  std::int64_t m_gemm(std::int64_t m, LinearPath path) const;
  // The same for a named GEMM of the layer.
  std::int64_t m_gemm(std::int64_t m, GemmBackendKind backend) const;

  // The path Auto takes for m: from the tuning database, sparse unless dense measured faster
  // than the fastest sparse GEMM at the default sparse GEMM's nearest M bucket (fastest_gemm).
  // The times compare only nearly like with like: cuSPARSELt's and cuBLASLt's entries time the
  // GEMM alone (their dequantize kernel comes after), CUTLASS's time it with its fused
  // dequantization, so the choice errs towards the library backends; and a cublaslt_fused dense
  // path is weighed by the plain cuBLASLt time against a sparse GEMM that does not fuse.
  LinearPath resolve(std::int64_t m, LinearPath path) const;
  // The sparse GEMM the sparse path runs at m: the only one, or with sparse_backend_auto the
  // fastest per the tuning database's M bucket (fastest_gemm; cuSPARSELt without one).
  // InvalidArgument for a layer without its sparse path. The choice for an M that prepare(),
  // use_algo() or search_gemms() saw is remembered until the database changes, so the run path
  // looks nothing up.
  GemmBackendKind sparse_gemm_for(std::int64_t m) const;

  // The default sparse GEMM (cuSPARSELt with sparse_backend_auto, else the one asked for).
  Gemm* sparse_gemm() { return sparse_.empty() ? nullptr : sparse_.front().get(); }
  Gemm* dense_gemm() { return dense_.get(); }
  // The layer's GEMM of this backend, or nullptr.
  Gemm* gemm(GemmBackendKind backend);
  const Gemm* gemm(GemmBackendKind backend) const;
  // The backends of the GEMMs built for a path (Sparse: default first; Dense: one), or none.
  std::vector<GemmBackendKind> backends(LinearPath path) const;
  // With sparse_backend_auto, why the CUTLASS sparse GEMM was not built ("" when it was, or
  // without sparse_backend_auto).
  const std::string& sparse_backend_note() const { return sparse_note_; }
  // Buffers the GEMMs read, so a search can time candidates on real data.
  const void* gemm_input(LinearPath path) const;
  void* gemm_output() { return scratch_->acc(); }
  // Where and how quantize_input writes the rows for M on `path`, for a producer that
  // quantizes (and lifts) the input itself (the runner's fused norms) before run_gemm: the
  // buffer [m_cap, row] in the precision's storage type, the rows lifted (for the sparse GEMMs
  // that read the lifted operand) or not (the dense path, and a sparse GEMM that lifts_input()
  // itself), and the row length in elements (k_gemm, or that GEMM's input_ld()). The scales
  // go to input_scales().
  struct QuantizedRows {
    void* q = nullptr;
    bool lifted = false;
    std::int64_t row = 0;
  };
  QuantizedRows quantized_rows(std::int64_t m, LinearPath path) const;
  float* input_scales() {
    return precision_is_quantized(precision_) ? scratch_->scale_x() : nullptr;
  }

  std::int64_t n() const { return n_; }
  std::int64_t k() const { return k_; }
  std::int64_t k_gemm(LinearPath path) const;
  std::int64_t n_gemm() const { return n_gemm_; }
  const Pattern& pattern() const { return pattern_; }
  Precision precision() const { return precision_; }
  // Device bytes the dense copy of the weights costs (kept for the dense fallback).
  std::uint64_t dense_weight_bytes() const { return dense_weight_bytes_; }
  // Device bytes of the sparse path's weights, counted as the slid [n_gemm, k_gemm] matrix per
  // sparse GEMM (each compresses its own copy, about half of that plus metadata): twice one
  // copy with sparse_backend_auto where CUTLASS was built.
  std::uint64_t sparse_weight_bytes() const;

 private:
  // Which sparse GEMM runs M (index into sparse_), and whether Auto runs dense instead.
  struct Choice {
    std::size_t sparse = 0;
    bool dense = false;
  };
  Choice choose(std::int64_t m) const;  // from the tuning database
  Choice choice(std::int64_t m) const;  // remembered where the database has not changed since
  void remember_choice(std::int64_t m);
  Gemm& gemm_for(std::int64_t m, LinearPath resolved) const;
  // The fused sparse GEMM: Y [m, n_gemm] (ld n_gemm) into `y`.
  void run_fused(std::int64_t m, LinearPath resolved, void* y, cudaStream_t stream);
  // Copies the fused GEMM's Y out of the accumulator buffer (ld n_gemm) into y (ld n).
  void copy_fused_output(std::int64_t m, void* y, cudaStream_t stream);
  std::int64_t n_, k_, n_gemm_, k_gemm_sparse_, k_gemm_dense_, max_m_, m_gemm_cap_;
  Pattern pattern_;
  Precision precision_;
  DType activation_;
  const TuningDb* tuning_;
  bool has_bias_ = false;
  std::uint64_t dense_weight_bytes_ = 0;
  std::vector<std::unique_ptr<Gemm>> sparse_;  // the default first
  std::unique_ptr<Gemm> dense_;
  std::string sparse_note_;
  // As the tuning database keys their times: the sparse GEMMs, then the dense one when built.
  std::vector<GemmCandidate> sparse_candidates_, all_candidates_;
  std::map<std::int64_t, Choice> choices_;  // per M, made at choices_revision_ of the database
  std::uint64_t choices_revision_ = 0;
  DeviceBuffer<float> scale_w_;          // [n_gemm], zero beyond n
  DeviceBuffer<float> bias_;             // [n_gemm], zero beyond n (when the layer has a bias)
  // The quantized (lifted) X [m_cap, k_gemm of each path], its row scales [m_cap] and the
  // accumulators [m_cap, n_gemm] (int32 or float, or a fused GEMM's Y): own_scratch_, or the
  // model's shared LinearScratch.
  std::unique_ptr<LinearScratch> own_scratch_;
  LinearScratch* scratch_ = nullptr;
};

}  // namespace slidesparse
