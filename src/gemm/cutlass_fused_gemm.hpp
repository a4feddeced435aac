// Private to src/gemm: what our two CUTLASS GEMMs (2:4 sparse and its dense counterpart) share.
// Both dequantize in their epilogue (BF16 out, no accumulator output), keep one plan per M that
// holds the launch of a compiled tile configuration, and search those configurations. A
// backend adds its weights (compressed or as given), its kind and its launches.
#pragma once

#ifdef SLIDESPARSE_HAVE_CUTLASS

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../cutlass/cutlass_sparse_kernels.hpp"  // Launch and LaunchPointers, shared by both
#include "gemm_internal.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::gemm_detail {

struct CutlassPlan {
  std::unique_ptr<cutlass_sparse::Launch> launch;
  GemmAlgo choice;
};

class CutlassFusedGemm : public Gemm {
 public:
  CutlassFusedGemm(GemmContext& ctx, Precision precision, std::int64_t n, std::int64_t k)
      : ctx_(ctx.impl()), precision_(precision), n_(n), k_(k) {}

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
    check_fused_arguments(label(), x, scale_x, scale_w, bias, y, y_type, m);
    CutlassPlan& plan = plans_.for_run(m);
    plan.launch->run(pointers(plan, x, scale_x, scale_w, bias, y), stream);
  }

  // The candidates are the compiled tile configurations. Scales of one make y = bf16(acc), so
  // the candidates' outputs can be compared; acc receives y (BF16 [m, n] fits in an ACC).
  std::vector<AlgoTiming> search(std::int64_t m, const void* x, void* acc, cudaStream_t stream,
                                 const SearchOptions& options) override {
    check_run_arguments(kind(), x, acc, m);
    check_search_options(options);
    DeviceAllocation* flush = options.flush_l2 ? ctx_.l2_flush() : nullptr;
    const std::vector<float> host_ones(static_cast<std::size_t>(std::max(m, n_)), 1.0f);
    const DeviceAllocation ones(host_ones.size() * sizeof(float));
    SLIDESPARSE_CHECK_CUDA(
        cudaMemcpy(ones.get(), host_ones.data(), ones.bytes(), cudaMemcpyHostToDevice));
    const float* unit = static_cast<const float*>(ones.get());
    OutputSample reference(m, n_, DType::BF16), sample(m, n_, DType::BF16);
    std::vector<AlgoTiming> timings;
    bool have_reference = false;
    for (int config = 0; config < config_count(); ++config) {
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
        time_and_check(timing, launch, acc, stream, options, flush, sample, reference);
      } catch (const Error& e) {
        timing.error = e.what();
      }
      timings.push_back(std::move(timing));
    }
    sort_timings(timings);
    if (!timings.empty() && timings.front().ok) prepare(m, timings.front().algo);
    return timings;
  }

  std::optional<GemmAlgo> prepared_algo(std::int64_t m) const override { return plans_.algo(m); }
  std::size_t cached_plans() const override { return plans_.size(); }

 protected:
  std::string label() const { return gemm_label(kind(), precision_, n_, k_); }
  // The number of compiled tile configurations for the precision.
  virtual int config_count() const = 0;
  // The launch of configuration `config` at M tokens, on this backend's weights.
  virtual std::unique_ptr<cutlass_sparse::Launch> make_launch(int config, std::int64_t m) const = 0;

  GemmContext::Impl& ctx_;
  Precision precision_;
  std::int64_t n_, k_;

 private:
  // Without a tuned choice: configuration 0 (128×128 tile, 2×1 cluster) for decode-sized M,
  // configuration 1 (1×2 cluster, weights multicast) once M fills several token tiles. The
  // threshold is not measured yet; the dense and sparse GEMMs share it, so untuned pairs use
  // twin tiles.
  static int default_config(std::int64_t m) { return m >= 1024 ? 1 : 0; }

  std::unique_ptr<CutlassPlan> build_plan(std::int64_t m, const GemmAlgo& algo) {
    const int configs = config_count();
    const int config = algo.algo_id < 0 ? default_config(m) : algo.algo_id;
    if (config >= configs || algo.split_k != 1)
      throw DeviceError(label() + ": no compiled configuration for " + algo.describe() + " (" +
                        std::to_string(configs) + " tile configurations, split-K 1 only)");
    auto plan = std::make_unique<CutlassPlan>();
    plan->launch = make_launch(config, m);
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

  PlanCache<CutlassPlan> plans_{
      [this] { return label(); },
      [this](std::int64_t m, const GemmAlgo& algo) { return build_plan(m, algo); }};
};

}  // namespace slidesparse::gemm_detail

#endif  // SLIDESPARSE_HAVE_CUTLASS
