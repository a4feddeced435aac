// One GEMM interface over several backends: Y[M,N] = X[M,K] · W[N,K]ᵀ, W fixed per object.
//   cuBLASLt   — the dense baseline (W as given).
//   cuBLASLt fused — the same with the dequantization in cuBLASLt's epilogue (FP8, cc 9.0:
//                per-channel and per-token scale vectors, bias, BF16 Y via run_dequantized()).
//   cuSPARSELt — W is 2:4-structured along K, compressed once on the GPU at construction.
//   CUTLASS    — our own sm_90a 2:4 GEMM (INT8/FP8, cc 9.0 only) with the dequantization fused
//                into its epilogue: it writes BF16 Y through run_dequantized(), not ACC.
//   CUTLASS lift — the same 2:4 GEMM fed the un-lifted quantized activations: it lifts them in
//                shared memory (lifts_input()), so the γ·K-wide lifted copy never exists.
//   CUTLASS dense — its dense counterpart (W as given, same tiles, the same epilogue): the
//                fair baseline for the CUTLASS sparse GEMM.
// All matrices are row-major: X [M,K] (ld K), W [N,K] (ld K), the accumulator ACC [M,N] (ld N).
// In the libraries' column-major terms this is C[N×M] = Wᵀ·X with op(A) = T on W viewed as
// [K×N] and op(B) = N on X viewed as [K×M]: the "TN" layout that INT8 and FP8 kernels require.
// Algorithms are chosen per M; plans are built once per M (prepare/search), never in run().
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "slidesparse/dtype.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse {

enum class GemmBackendKind {
  CublasLtDense,
  CusparseLt,
  CutlassSparse,
  CutlassDense,
  CutlassSparseLift,
  CublasLtFused
};

// "cublaslt", "cusparselt", "cutlass" (the sparse one), "cutlass_lift", "cutlass_dense",
// "cublaslt_fused"
const char* backend_name(GemmBackendKind kind);
GemmBackendKind parse_backend(const std::string& name);  // inverse; InvalidArgument otherwise

// Multiples each dimension must have for a backend. The caller pads N and K (the weights);
// run() accepts any M, but an M that is not a multiple of m_multiple goes through a staging
// copy of X and ACC inside the Gemm, so a caller that can pad M for free should.
//   cuBLASLt   INT8: N, K ×4 (IMMA "TN" rule); FP8: N, K ×16 (16-byte rule); BF16/FP16: N, K ×8.
//   cuSPARSELt INT8/FP8: M ×16, N ×32, K ×32; BF16/FP16: M ×8, N ×16, K ×16 (dense operands
//   rows/cols/ld multiples of 16 resp. 8 elements, the structured one of 32 resp. 16).
//   CUTLASS    INT8/FP8 only: M any, N ×32, K ×32 (the compressed half-K rows and the TMA
//   boxes need 16-byte strides; the tile edges are clipped by TMA). BF16/FP16: InvalidArgument.
//   The lifting variant: the same (K is the lifted width; X's rows are input_ld() apart).
//   CUTLASS dense INT8/FP8 only: M any, N ×8 (16-byte rows of BF16 Y), K ×16 (16-byte rows of
//   W and X).
//   cuBLASLt fused FP8 only: M any, N ×16, K ×16 (the FP8 16-byte rule; N ×16 also keeps the
//   BF16 Y rows 16-byte aligned). INT8, BF16, FP16: InvalidArgument.
struct GemmRequirements {
  std::int64_t m_multiple;
  std::int64_t n_multiple;
  std::int64_t k_multiple;
};
GemmRequirements gemm_requirements(Precision precision, GemmBackendKind kind);

// What run() writes into ACC: INT8 → I32 (exact accumulators), FP8 → F32. BF16/FP16 → F32 with
// cuBLASLt, but BF16/F16 with cuSPARSELt, which has no FP32 output for 16-bit inputs. CUTLASS
// (sparse and dense) and cuBLASLt fused: BF16, the dequantized Y of run_dequantized() (they have
// no accumulator output).
DType gemm_output_type(Precision precision, GemmBackendKind kind);

// Enough to rebuild the exact plan. -1 / empty fields mean "library default".
//   cuSPARSELt: algo_id = CUSPARSELT_MATMUL_ALG_CONFIG_ID, split_k = CUSPARSELT_MATMUL_SPLIT_K,
//               split_k_mode = cusparseLtSplitKMode_t (0 = library choice).
//   CUTLASS:    algo_id = index of the compiled tile configuration (cutlass_sparse_configs(),
//               cutlass_dense_configs() for the dense one),
//               split_k = 1 only.
//   cuBLASLt:   algo_id = CUBLASLT_ALGO_CONFIG_ID, split_k = CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
//               split_k_mode = cublasLtReductionScheme_t, heuristic_index = rank in the
//               heuristic list, cublaslt_algo = the whole cublasLtMatmulAlgo_t (8 words; valid
//               for the cuBLASLt version that produced it, which the tuning key records).
//               cuBLASLt fused: the same fields.
struct GemmAlgo {
  int algo_id = -1;
  int split_k = 1;
  int split_k_mode = 0;
  int heuristic_index = -1;
  std::vector<std::uint64_t> cublaslt_algo;

  bool is_default() const { return algo_id < 0 && heuristic_index < 0 && cublaslt_algo.empty(); }
  nlohmann::json to_json() const;
  // Missing fields take their defaults; fields of the wrong type throw FormatError.
  static GemmAlgo from_json(const nlohmann::json& j);
  std::string describe() const;  // one line for logs and reports
  bool operator==(const GemmAlgo& o) const;
  bool operator!=(const GemmAlgo& o) const { return !(*this == o); }
};

struct AlgoTiming {
  GemmAlgo algo;
  double median_us = std::numeric_limits<double>::infinity();
  bool ok = false;
  std::string error;  // why the candidate could not run (when !ok)
};

struct SearchOptions {
  int warmup = 3;                  // untimed launches per candidate
  int reps = 20;                   // timed launches per candidate (median)
  int max_split_k = 16;            // split-K factors tried: 1, 2, 4, ... up to this
  int max_heuristic_results = 32;  // cuBLASLt candidates asked from its heuristic
  bool flush_l2 = true;            // overwrite L2 before each timed launch (weights come from HBM)
};

// Owns the library handles and one workspace shared by every Gemm made from it. The workspace
// grows in prepare()/search(), never in run(); Gemms of one context must run on one stream at a
// time (they share the workspace) and must not outlive it. Not thread-safe. Uses the CUDA device
// current at construction.
class GemmContext {
 public:
  // cuSPARSELt 0.8.0 on the H100 asks up to ~47 MB for Qwen2.5-7B's gate+up at M = 4096 (split-K
  // partial sums); the workspace only grows to what the prepared plans need.
  static constexpr std::size_t kDefaultMaxWorkspaceBytes = std::size_t{256} << 20;

  explicit GemmContext(std::size_t max_workspace_bytes = kDefaultMaxWorkspaceBytes);
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  int device() const;
  int cc_major() const;
  int cc_minor() const;
  std::size_t max_workspace_bytes() const;
  std::size_t workspace_bytes() const;  // allocated so far

  struct Impl;  // the handles and buffers, defined in src/gemm for the backends
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class Gemm {
 public:
  virtual ~Gemm();
  virtual GemmBackendKind kind() const = 0;
  virtual Precision precision() const = 0;
  virtual std::int64_t n() const = 0;
  virtual std::int64_t k() const = 0;
  virtual DType output_type() const = 0;

  // Builds the plan for this M with this algorithm and caches it (replacing another algorithm's
  // plan for M). Same M and algorithm again: nothing happens. Throws DeviceError when the
  // algorithm cannot run this shape. Not for the hot path.
  virtual void prepare(std::int64_t m, const GemmAlgo& algo) = 0;
  // acc[M,N] = x[M,K]·Wᵀ on `stream`, with the plan prepared for M: a lookup, then the library
  // call (plus two device copies when M needs staging). No allocation, no host sync. An M with
  // no plan is prepared with the library default first (printed once per Gemm).
  // x and acc: device pointers, 16-byte aligned.
  virtual void run(const void* x, void* acc, std::int64_t m, cudaStream_t stream) = 0;
  // Times every candidate on x/acc (cuSPARSELt: each algorithm id × split-K × split-K mode;
  // cuBLASLt: each heuristic result and its split-K variants), keeps the fastest for M
  // (prepare) and returns all, fastest first, then the failed ones with their error. A
  // candidate whose output differs from the library default's counts as failed.
  // x must hold real data (the outputs are compared); acc is overwritten.
  virtual std::vector<AlgoTiming> search(std::int64_t m, const void* x, void* acc,
                                         cudaStream_t stream, const SearchOptions& options) = 0;

  // Whether this backend computes y = bf16(fma(acc, scale_x[m]·scale_w[n], bias[n])) itself
  // (run_dequantized), so the caller skips its separate dequantize kernel.
  virtual bool fuses_dequantize() const { return false; }
  // y[M,N] (ld N, y_type) from x[M,K] with the plan prepared for M, on `stream`; scale_x [M],
  // scale_w [N] and bias [N] (or null) are float device vectors. No allocation, no host sync.
  // The default throws InvalidArgument: only a backend that fuses_dequantize() implements it.
  virtual void run_dequantized(const void* x, const float* scale_x, const float* scale_w,
                               const float* bias, void* y, DType y_type, std::int64_t m,
                               cudaStream_t stream);

  // Whether x is the un-lifted quantized activations [M, input_k()] with rows input_ld()
  // elements apart, which this GEMM lifts itself (the CUTLASS lifting backend); otherwise x is
  // [M, k()] (ld k()), lifted already where the weights are slid.
  virtual bool lifts_input() const { return false; }
  virtual std::int64_t input_k() const { return k(); }
  virtual std::int64_t input_ld() const { return k(); }
  // The algorithm prepared for M, if any.
  virtual std::optional<GemmAlgo> prepared_algo(std::int64_t m) const = 0;
  virtual std::size_t cached_plans() const = 0;
};

// w_device: row-major [n, k] on the device; copied, so the caller may free it afterwards.
std::unique_ptr<Gemm> make_cublaslt_gemm(GemmContext& ctx, Precision precision, std::int64_t n,
                                         std::int64_t k, const void* w_device);
// The dense baseline with the dequantization in cuBLASLt's epilogue: FP8 E4M3 only, on a cc 9.0
// GPU (cuBLAS's outer-vector scaling, cuBLAS 12.9+; DeviceError elsewhere). run_dequantized
// writes y = bf16(acc·scale_x[m]·scale_w[n] + bias[n]) in cuBLASLt's order of operations (not
// bit-exact to the dequantize kernel: the layer tests hold it to 1e-2 relative L2, as every FP8
// path). bias_device: float [n] on the device, or null. cuBLASLt adds a BF16 bias to a BF16 Y,
// so a BF16 copy is made here: run_dequantized must be given this same pointer (null when there
// is none) and adds the values it held at construction. run() throws: there are no accumulators.
std::unique_ptr<Gemm> make_cublaslt_fused_gemm(GemmContext& ctx, Precision precision,
                                               std::int64_t n, std::int64_t k, const void* w_device,
                                               const float* bias_device);
// w_device: row-major [n, k], every aligned group of 4 along K with at most 2 non-zeros;
// compressed here on the GPU, the uncompressed copy is not kept.
std::unique_ptr<Gemm> make_cusparselt_gemm(GemmContext& ctx, Precision precision, std::int64_t n,
                                           std::int64_t k, const void* w_device);

// Whether this build has the CUTLASS backend (CUTLASS headers found and sm_90a among the CUDA
// architectures at configure time).
bool cutlass_sparse_available();
// Names of the CUTLASS backend's compiled tile configurations for a precision, by algo_id
// (empty for BF16/FP16 and in a build without the backend).
std::vector<std::string> cutlass_sparse_configs(Precision precision);
// w_device: row-major [n, k] INT8 or FP8 E4M3, 2:4 along K (FP8 -0 counts as zero); checked,
// then compressed here on the GPU by CUTLASS's sm90 compressor (values and metadata in the
// sparse wgmma's layout); the uncompressed copy is not kept. DeviceError on a GPU other than
// cc 9.0 or in a build without the backend; InvalidArgument for BF16/FP16 or bad shapes.
// run() throws (there is no accumulator output): use run_dequantized().
std::unique_ptr<Gemm> make_cutlass_sparse_gemm(GemmContext& ctx, Precision precision,
                                               std::int64_t n, std::int64_t k,
                                               const void* w_device);

// The CUTLASS sparse GEMM that lifts its input itself (phase 2 of docs/cutlass_kernel.md): the
// same compressed slid weights W [n, k] (k = the lifted width, padded), run_dequantized() reads
// x = the un-lifted quantized X [M, raw_k] with rows raw_ld elements apart (raw_ld a multiple
// of 16, ≥ raw_k) and builds each lifted K tile of `pattern` in shared memory. Columns of the
// lift past raw_k read as zero, as the lift's padding. Same availability and errors as
// make_cutlass_sparse_gemm; InvalidArgument for a pattern it cannot lift or a bad raw shape.
std::vector<std::string> cutlass_lift_configs(Precision precision);
std::unique_ptr<Gemm> make_cutlass_lift_gemm(GemmContext& ctx, Precision precision,
                                             std::int64_t n, std::int64_t k, const void* w_device,
                                             const Pattern& pattern, std::int64_t raw_k,
                                             std::int64_t raw_ld);
// The dense counterpart of the CUTLASS sparse GEMM (same tiles, same dequantizing epilogue).
// Available exactly when cutlass_sparse_available(). w_device: row-major [n, k] INT8 or FP8
// E4M3, copied. DeviceError on a GPU other than cc 9.0 or in a build without the backend;
// InvalidArgument for BF16/FP16 or bad shapes. run() throws: use run_dequantized().
std::vector<std::string> cutlass_dense_configs(Precision precision);
std::unique_ptr<Gemm> make_cutlass_dense_gemm(GemmContext& ctx, Precision precision, std::int64_t n,
                                              std::int64_t k, const void* w_device);

// Library versions for the tuning database key: cublasLtGetVersion() (e.g. 130100) and
// cuSPARSELt as major·1000 + minor·100 + patch (e.g. 800 for 0.8.0, as CUSPARSELT_VERSION).
int cublaslt_version();
int cusparselt_version();
std::string library_versions();  // "cuBLASLt 130100, cuSPARSELt 800"

// Device allocations made by the GEMM room since the process started (weights, workspaces,
// staging buffers): a run() on a prepared M must not change it.
std::int64_t gemm_device_allocations();

}  // namespace slidesparse
