// Our own 2:4 path: the CUTLASS sm_90a sparse GEMM with the dequantization in its epilogue
// (src/cutlass). W is checked and compressed once at construction; a plan per M holds the
// CUTLASS arguments of the chosen tile configuration. The kernels exist only in a build that
// found the CUTLASS headers and targets sm_90a; elsewhere the factory says why it cannot help.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gemm_internal.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"

#ifdef SLIDESPARSE_HAVE_CUTLASS
#include "../cutlass/cutlass_sparse_kernels.hpp"
#endif

namespace slidesparse {

#ifdef SLIDESPARSE_HAVE_CUTLASS
namespace {

using gemm_detail::DeviceAllocation;

struct CutlassPlan {
  std::unique_ptr<cutlass_sparse::Launch> launch;
  GemmAlgo choice;
};

class CutlassSparseGemm final : public Gemm {
 public:
  CutlassSparseGemm(GemmContext& ctx, Precision precision, std::int64_t n, std::int64_t k,
                    const void* w_device)
      : ctx_(ctx.impl()), precision_(precision), n_(n), k_(k) {
    if (n * k > std::numeric_limits<int>::max())
      throw InvalidArgument(label() +
                            ": N·K must stay below 2^31 (CUTLASS's compressor indexes "
                            "the weights with int)");
    const std::size_t bytes = static_cast<std::size_t>(n * k);
    const DeviceAllocation canonical(bytes);
    const std::int64_t bad = cutlass_sparse::check_and_canonicalize(precision_, n_, k_, w_device,
                                                                    canonical.get(), nullptr);
    if (bad != 0)
      throw InvalidArgument(label() + ": the weights are not 2:4 along K (" + std::to_string(bad) +
                            " groups of 4 hold more than 2 non-zeros); prune or slide them first");
    const cutlass_sparse::CompressedSizes sizes =
        cutlass_sparse::compressed_sizes(precision_, n_, k_);
    values_ = DeviceAllocation(sizes.values_bytes);
    metadata_ = DeviceAllocation(sizes.metadata_bytes);
    // Padding the compressor does not write (metadata rows up to 64, K up to 128) reads as zeros.
    SLIDESPARSE_CHECK_CUDA(cudaMemset(values_.get(), 0, sizes.values_bytes));
    SLIDESPARSE_CHECK_CUDA(cudaMemset(metadata_.get(), 0, sizes.metadata_bytes));
    const DeviceAllocation scratch(cutlass_sparse::compressor_scratch_bytes(precision_, n_, k_));
    cutlass_sparse::compress(precision_, n_, k_, canonical.get(), values_.get(), metadata_.get(),
                             scratch.get(), nullptr);
    SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());  // before canonical and scratch are freed
  }

  GemmBackendKind kind() const override { return GemmBackendKind::CutlassSparse; }
  Precision precision() const override { return precision_; }
  std::int64_t n() const override { return n_; }
  std::int64_t k() const override { return k_; }
  DType output_type() const override { return gemm_output_type(precision_, kind()); }

  void prepare(std::int64_t m, const GemmAlgo& algo) override { plans_.prepare(m, algo); }

  void run(const void*, void*, std::int64_t m, cudaStream_t) override {
    throw InvalidArgument(label() + ": run at M = " + std::to_string(m) +
                          " asks for accumulators, but this backend dequantizes in its epilogue "
                          "and writes BF16 only: call run_dequantized");
  }

  bool fuses_dequantize() const override { return true; }

  void run_dequantized(const void* x, const float* scale_x, const float* scale_w, const float* bias,
                       void* y, DType y_type, std::int64_t m, cudaStream_t stream) override {
    gemm_detail::check_fused_arguments(label(), x, scale_x, scale_w, bias, y, y_type, m);
    CutlassPlan& plan = plans_.for_run(m);
    plan.launch->run(pointers(plan, x, scale_x, scale_w, bias, y), stream);
  }

  // The candidates are the compiled tile configurations. Scales of one make y = bf16(acc), so
  // the candidates' outputs can be compared; acc receives y (BF16 [m, n] fits in an ACC).
  std::vector<AlgoTiming> search(std::int64_t m, const void* x, void* acc, cudaStream_t stream,
                                 const SearchOptions& options) override {
    gemm_detail::check_run_arguments(kind(), x, acc, m);
    gemm_detail::check_search_options(options);
    gemm_detail::DeviceAllocation* flush = options.flush_l2 ? ctx_.l2_flush() : nullptr;
    const std::vector<float> host_ones(static_cast<std::size_t>(std::max(m, n_)), 1.0f);
    const DeviceAllocation ones(host_ones.size() * sizeof(float));
    SLIDESPARSE_CHECK_CUDA(
        cudaMemcpy(ones.get(), host_ones.data(), ones.bytes(), cudaMemcpyHostToDevice));
    const float* unit = static_cast<const float*>(ones.get());
    gemm_detail::OutputSample reference(m, n_, DType::BF16), sample(m, n_, DType::BF16);
    std::vector<AlgoTiming> timings;
    const int configs = cutlass_sparse::config_count(precision_);
    bool have_reference = false;
    for (int config = 0; config < configs; ++config) {
      const GemmAlgo candidate{config, 1, 0, -1, {}};
      AlgoTiming timing{candidate, std::numeric_limits<double>::infinity(), false, ""};
      try {
        const auto plan = build_plan(m, candidate);
        const auto launch = [&] {
          plan->launch->run(pointers(*plan, x, unit, unit, nullptr, acc), stream);
        };
        if (!have_reference) {  // the first configuration that runs gives the reference
          launch();
          reference.capture(acc, stream);
          have_reference = true;
        }
        gemm_detail::time_and_check(timing, launch, acc, stream, options, flush, sample, reference);
      } catch (const Error& e) {
        timing.error = e.what();
      }
      timings.push_back(std::move(timing));
    }
    gemm_detail::sort_timings(timings);
    if (!timings.empty() && timings.front().ok) prepare(m, timings.front().algo);
    return timings;
  }

  std::optional<GemmAlgo> prepared_algo(std::int64_t m) const override { return plans_.algo(m); }
  std::size_t cached_plans() const override { return plans_.size(); }

 private:
  std::string label() const { return gemm_detail::gemm_label(kind(), precision_, n_, k_); }

  // Without a tuned choice: the 128×128 tile (2×1 cluster) for decode-sized M, the 128×256 tile
  // (1×2 cluster, weights multicast) once M fills several 256-token tiles. Not measured yet.
  static int default_config(std::int64_t m) { return m >= 1024 ? 1 : 0; }

  std::unique_ptr<CutlassPlan> build_plan(std::int64_t m, const GemmAlgo& algo) {
    const int configs = cutlass_sparse::config_count(precision_);
    const int config = algo.algo_id < 0 ? default_config(m) : algo.algo_id;
    if (config >= configs || algo.split_k != 1)
      throw DeviceError(label() + ": no compiled configuration for " + algo.describe() + " (" +
                        std::to_string(configs) + " tile configurations, split-K 1 only)");
    auto plan = std::make_unique<CutlassPlan>();
    plan->launch = cutlass_sparse::make_launch(precision_, config, n_, k_, m, values_.get(),
                                               metadata_.get(), ctx_.device);
    ctx_.reserve_workspace(plan->launch->workspace_bytes());
    plan->choice = algo;
    return plan;
  }

  cutlass_sparse::LaunchPointers pointers(const CutlassPlan& plan, const void* x,
                                          const float* scale_x, const float* scale_w,
                                          const float* bias, void* y) const {
    cutlass_sparse::LaunchPointers p;
    p.x = x;
    p.scale_x = scale_x;
    p.scale_w = scale_w;
    p.bias = bias;
    p.y = y;
    // The shared workspace may have grown (moved) since the plan was built: the launch
    // rebuilds its parameters when this pointer changes.
    p.workspace = plan.launch->workspace_bytes() > 0 ? ctx_.workspace.get() : nullptr;
    return p;
  }

  GemmContext::Impl& ctx_;
  Precision precision_;
  std::int64_t n_, k_;
  DeviceAllocation values_;    // the kept half of W, CUTLASS's compressed layout
  DeviceAllocation metadata_;  // the sparse wgmma's metadata for it
  gemm_detail::PlanCache<CutlassPlan> plans_{
      [this] { return label(); },
      [this](std::int64_t m, const GemmAlgo& algo) { return build_plan(m, algo); }};
};

}  // namespace
#endif  // SLIDESPARSE_HAVE_CUTLASS

bool cutlass_sparse_available() {
#ifdef SLIDESPARSE_HAVE_CUTLASS
  return true;
#else
  return false;
#endif
}

std::vector<std::string> cutlass_sparse_configs(Precision precision) {
  std::vector<std::string> names;
#ifdef SLIDESPARSE_HAVE_CUTLASS
  for (int c = 0; c < cutlass_sparse::config_count(precision); ++c)
    names.push_back(cutlass_sparse::config_name(precision, c));
#else
  (void)precision;
#endif
  return names;
}

std::unique_ptr<Gemm> make_cutlass_sparse_gemm(GemmContext& ctx, Precision precision,
                                               std::int64_t n, std::int64_t k,
                                               const void* w_device) {
  const std::string label =
      gemm_detail::gemm_label(GemmBackendKind::CutlassSparse, precision, n, k);
  if (!cutlass_sparse_available())
    throw DeviceError(label +
                      ": this build has no CUTLASS backend (configure with the CUTLASS headers "
                      "and sm_90a among CMAKE_CUDA_ARCHITECTURES)");
  gemm_requirements(precision, GemmBackendKind::CutlassSparse);  // INT8 / FP8 only
  if (ctx.cc_major() != 9 || ctx.cc_minor() != 0)
    throw DeviceError(label +
                      ": the CUTLASS sparse GEMM is built for sm_90a and runs on cc 9.0 "
                      "(H100/H200) only; this GPU is cc " +
                      std::to_string(ctx.cc_major()) + "." + std::to_string(ctx.cc_minor()));
  gemm_detail::check_construction(ctx, GemmBackendKind::CutlassSparse, precision, n, k, w_device);
#ifdef SLIDESPARSE_HAVE_CUTLASS
  return std::make_unique<CutlassSparseGemm>(ctx, precision, n, k, w_device);
#else
  return nullptr;  // not reached: cutlass_sparse_available() is false
#endif
}

}  // namespace slidesparse
