// The SlideSparse linear layer on the GPU: Y[M,N] = X[M,K] · W[N,K]ᵀ (+ bias), X and Y in
// BF16 (or FP16). Sparse path: quantize+lift → cuSPARSELt 2:4 GEMM on the slid weights →
// dequantize; or, with LinearOptions::sparse_backend = CutlassSparse (INT8/FP8, BF16, cc 9.0),
// quantize+lift → our CUTLASS 2:4 GEMM that dequantizes in its epilogue. Dense path (the baseline,
// and the fallback for M buckets where sparse loses): quantize → cuBLASLt GEMM on the same
// quantized pruned weights → dequantize; or, with LinearOptions::dense_backend = CublasLtFused
// (FP8, cc 9.0), quantize → cuBLASLt with the dequantization in its epilogue; or, with
// CutlassDense, quantize → the CUTLASS dense GEMM with the same dequantizing epilogue as the
// sparse one.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "slidesparse/cuda/device.hpp"
#include "slidesparse/gemm/gemm.hpp"
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
  // or FP8 with BF16 activations on a cc 9.0 GPU, in a build that has the backend).
  GemmBackendKind sparse_backend = GemmBackendKind::CusparseLt;
  // The GEMM of the dense path: CublasLtDense; CublasLtFused (cuBLASLt with the dequantization
  // in its epilogue: FP8 with BF16 activations on a cc 9.0 GPU); or CutlassDense (the same fused
  // dequantization as CutlassSparse, with the same conditions): the fair baseline for
  // CutlassSparse. Unset: auto_dense_backend() picks between the two cuBLASLt ones.
  std::optional<GemmBackendKind> dense_backend;
  // Algorithm choices and the sparse-vs-dense decision per M bucket; nullptr (or a stale
  // database) means library defaults and the sparse path.
  const TuningDb* tuning = nullptr;
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
  // a producer that filled quantized_input()): run_gemm + dequantize, or for a GEMM that fuses
  // the dequantization its epilogue writing y directly (no copy) where y allows.
  void gemm_to_output(std::int64_t m, void* y, LinearPath path, cudaStream_t stream);

  // Times every algorithm the path's library offers for this M on the layer's own buffers
  // (call quantize_input first), keeps the fastest for M, and returns all timings, fastest first.
  std::vector<AlgoTiming> search(std::int64_t m, LinearPath path, const SearchOptions& options,
                                 cudaStream_t stream);
  // Uses `algo` for this M from now on (builds its plan now, not on the hot path).
  void use_algo(std::int64_t m, LinearPath path, const GemmAlgo& algo);
  // Applies the tuning database's algorithms for these M values (plans built now).
  void prepare(const std::vector<std::int64_t>& ms);
  // The M the GEMM runs with (padded to the library's multiple).
  std::int64_t m_gemm(std::int64_t m, LinearPath path) const;

  // The path Auto takes for m: from the tuning database, sparse unless dense measured faster.
  LinearPath resolve(std::int64_t m, LinearPath path) const;

  Gemm* sparse_gemm() { return sparse_.get(); }
  Gemm* dense_gemm() { return dense_.get(); }
  // Buffers the GEMMs read, so a search can time candidates on real data.
  const void* gemm_input(LinearPath path) const;
  void* gemm_output() { return acc_.get(); }
  // What quantize_input fills, for a producer that quantizes (and lifts) the input itself
  // (the runner's fused norms) before run_gemm: [m_cap, k_gemm(path)] in the precision's
  // storage type, and one scale per row (nullptr for BF16/FP16, which have none).
  void* quantized_input(LinearPath path) {
    return resolve(1, path) == LinearPath::Sparse ? q_sparse_.get() : q_dense_.get();
  }
  float* input_scales() { return precision_is_quantized(precision_) ? scale_x_.get() : nullptr; }

  std::int64_t n() const { return n_; }
  std::int64_t k() const { return k_; }
  std::int64_t k_gemm(LinearPath path) const;
  std::int64_t n_gemm() const { return n_gemm_; }
  const Pattern& pattern() const { return pattern_; }
  Precision precision() const { return precision_; }
  // Device bytes the dense copy of the weights costs (kept for the dense fallback).
  std::uint64_t dense_weight_bytes() const { return dense_weight_bytes_; }

 private:
  Gemm& gemm_for(LinearPath resolved) const;
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
  std::unique_ptr<Gemm> sparse_;
  std::unique_ptr<Gemm> dense_;
  DeviceBuffer<float> scale_w_;          // [n_gemm], zero beyond n
  DeviceBuffer<float> bias_;             // [n_gemm], zero beyond n (when the layer has a bias)
  DeviceBuffer<std::uint8_t> q_sparse_;  // [m_cap, k_gemm_sparse] quantized lifted X
  DeviceBuffer<std::uint8_t> q_dense_;   // [m_cap, k_gemm_dense] quantized X
  DeviceBuffer<float> scale_x_;          // [m_cap]
  DeviceBuffer<std::uint8_t> acc_;       // [m_cap, n_gemm] int32 or float accumulators
};

}  // namespace slidesparse
