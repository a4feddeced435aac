// What the GEMM backends share, private to src/gemm: device memory and events owned by
// RAII types, the context's handles and workspace, and the timing of one candidate.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cusparseLt.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/gemm/gemm.hpp"

namespace slidesparse::gemm_detail {

// One cudaMalloc'd block; counted in gemm_device_allocations().
class DeviceAllocation {
 public:
  DeviceAllocation() = default;
  explicit DeviceAllocation(std::size_t bytes);  // zero bytes: no allocation, get() == nullptr
  ~DeviceAllocation();
  DeviceAllocation(DeviceAllocation&& other) noexcept;
  DeviceAllocation& operator=(DeviceAllocation&& other) noexcept;
  DeviceAllocation(const DeviceAllocation&) = delete;
  DeviceAllocation& operator=(const DeviceAllocation&) = delete;

  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void reset() noexcept;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// Grows `buffer` to at least `bytes`; a new block starts zeroed, old contents are not kept.
void ensure_capacity(DeviceAllocation& buffer, std::size_t bytes);

class CudaEvent {
 public:
  CudaEvent();
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// Median time of `launch` in µs over options.reps timed runs after options.warmup untimed ones.
// With `l2_flush`, the buffer is overwritten before each timed run (outside the timed window),
// so weights come from HBM as they do when a whole model runs.
double time_median_us(const std::function<void()>& launch, cudaStream_t stream,
                      const SearchOptions& options, DeviceAllocation* l2_flush);

// Up to 256 rows of an ACC [M, N], spread over M, copied to the host. A search compares every
// candidate's rows with the library default's: an algorithm that computes something else (a
// compressed-weight format it does not share, a broken split-K reduction) is rejected, not timed.
class OutputSample {
 public:
  OutputSample(std::int64_t m, std::int64_t n, DType type);
  void capture(const void* acc, cudaStream_t stream);  // synchronizes the stream
  // "" when this sample matches `reference` (INT32 exactly, floats within 1e-2 relative L2,
  // well above reordering noise and well below a wrong result), else what differs.
  std::string mismatch(const OutputSample& reference) const;

 private:
  std::int64_t n_, row_stride_, rows_;
  DType type_;
  std::vector<unsigned char> bytes_;
};

// Times `launch` (which writes `acc`), then compares its output with `reference`: sets
// timing.median_us and timing.ok, or timing.error for a wrong result. Device errors throw.
void time_and_check(AlgoTiming& timing, const std::function<void()>& launch, const void* acc,
                    cudaStream_t stream, const SearchOptions& options, DeviceAllocation* l2_flush,
                    OutputSample& sample, const OutputSample& reference);

std::int64_t round_up(std::int64_t value, std::int64_t multiple);

// Shape checks shared by both backends (InvalidArgument naming the backend and the rule).
// Before a Gemm is built: N and K multiples, the GPU's support for the precision, the weights.
void check_construction(const GemmContext& ctx, GemmBackendKind kind, Precision precision,
                        std::int64_t n, std::int64_t k, const void* w_device);
// check_construction for our CUTLASS GEMMs, after what they need first: a build with the
// backend (DeviceError), INT8/FP8 (gemm_requirements' InvalidArgument) and a cc 9.0 GPU
// (DeviceError naming its cc).
void check_cutlass_construction(const GemmContext& ctx, GemmBackendKind kind, Precision precision,
                                std::int64_t n, std::int64_t k, const void* w_device);
void check_run_arguments(GemmBackendKind kind, const void* x, const void* acc, std::int64_t m);
void check_search_options(const SearchOptions& options);
// run_dequantized of the GEMMs that dequantize in their epilogue (CUTLASS, cuBLASLt fused): M > 0,
// BF16 Y, non-null 16-byte aligned X, Y, scale_x [M] and scale_w [N] (bias [N] may be null).
void check_fused_arguments(const std::string& label, const void* x, const float* scale_x,
                           const float* scale_w, const float* bias, const void* y, DType y_type,
                           std::int64_t m);

// Split-K factors a search tries: 1, then 2, 4, ... up to options.max_split_k while each slice
// keeps at least 64 of K.
std::vector<int> split_k_factors(const SearchOptions& options, std::int64_t k);

// Candidates sorted for the caller: those that ran, fastest first, then the failures.
void sort_timings(std::vector<AlgoTiming>& timings);

// run() on an M without a plan: says so on stderr the first time for this Gemm.
void warn_unprepared_once(bool& warned, const std::string& label, std::int64_t m);

// The per-M plans of one Gemm (a Plan has a `GemmAlgo choice`). prepare() builds them, off
// the hot path; for_run() is a hash lookup unless M was never prepared.
template <class Plan>
class PlanCache {
 public:
  using Label = std::function<std::string()>;
  using Build = std::function<std::unique_ptr<Plan>(std::int64_t m, const GemmAlgo& algo)>;
  // `label` names the Gemm in messages (called only when one is needed); `build` makes a plan.
  PlanCache(Label label, Build build) : label_(std::move(label)), build_(std::move(build)) {}

  Plan& prepare(std::int64_t m, const GemmAlgo& algo) {
    if (m <= 0) throw InvalidArgument(label_() + ": prepare with M = " + std::to_string(m));
    const auto it = plans_.find(m);
    if (it != plans_.end() && it->second->choice == algo) return *it->second;
    std::unique_ptr<Plan> plan = build_(m, algo);  // a failed build keeps the old plan
    std::unique_ptr<Plan>& slot = plans_[m];
    slot = std::move(plan);
    return *slot;
  }

  // The plan for M; the library default (warned about once) where M was never prepared.
  Plan& for_run(std::int64_t m) {
    const auto it = plans_.find(m);
    if (it != plans_.end()) return *it->second;
    warn_unprepared_once(warned_unprepared_, label_(), m);
    return prepare(m, GemmAlgo{});
  }

  std::optional<GemmAlgo> algo(std::int64_t m) const {
    const auto it = plans_.find(m);
    if (it == plans_.end()) return std::nullopt;
    return it->second->choice;
  }
  std::size_t size() const { return plans_.size(); }

 private:
  Label label_;
  Build build_;
  std::unordered_map<std::int64_t, std::unique_ptr<Plan>> plans_;
  bool warned_unprepared_ = false;
};

// "cusparselt int8 N=4096 K=4096": names a Gemm in messages.
std::string gemm_label(GemmBackendKind kind, Precision precision, std::int64_t n, std::int64_t k);

}  // namespace slidesparse::gemm_detail

namespace slidesparse {

struct GemmContext::Impl {
  explicit Impl(std::size_t max_workspace_bytes);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // cuSPARSELt is initialized on first use, so a context that only runs cuBLASLt works on GPUs
  // cuSPARSELt does not support.
  const cusparseLtHandle_t* cusparselt();
  // Grows the shared workspace to `bytes`; DeviceError beyond max_workspace.
  void reserve_workspace(std::size_t bytes);
  // A buffer twice the L2 size for search timing, allocated on first use.
  gemm_detail::DeviceAllocation* l2_flush();

  int device = 0;
  int cc_major = 0;
  int cc_minor = 0;
  std::size_t l2_bytes = 0;
  std::size_t max_workspace = 0;
  cublasLtHandle_t cublaslt = nullptr;
  gemm_detail::DeviceAllocation workspace;

 private:
  cusparseLtHandle_t sparse_handle_{};
  bool sparse_live_ = false;
  gemm_detail::DeviceAllocation l2_flush_;
};

}  // namespace slidesparse
