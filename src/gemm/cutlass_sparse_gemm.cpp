// Our own 2:4 path: the CUTLASS sm_90a sparse GEMM with the dequantization in its epilogue
// (src/cutlass). W is checked and compressed once at construction; a plan per M holds the
// CUTLASS arguments of the chosen tile configuration. The kernels exist only in a build that
// found the CUTLASS headers and targets sm_90a; elsewhere the factory says why it cannot help.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "gemm_internal.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"

#ifdef SLIDESPARSE_HAVE_CUTLASS
#include "../cutlass/cutlass_lift_kernels.hpp"
#include "../cutlass/cutlass_sparse_kernels.hpp"
#include "../cutlass/lift_map.hpp"
#include "cutlass_fused_gemm.hpp"
#endif

namespace slidesparse {

#ifdef SLIDESPARSE_HAVE_CUTLASS
namespace {

using gemm_detail::DeviceAllocation;

// With a lift, the lifting variant (cutlass_lift): the same compressed weights, X un-lifted.
class CutlassSparseGemm final : public gemm_detail::CutlassFusedGemm {
 public:
  CutlassSparseGemm(GemmContext& ctx, Precision precision, std::int64_t n, std::int64_t k,
                    const void* w_device,
                    std::optional<cutlass_lift::LiftInput> lift = std::nullopt)
      : CutlassFusedGemm(ctx, precision, n, k), lift_(lift) {
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

  GemmBackendKind kind() const override {
    return lift_ ? GemmBackendKind::CutlassSparseLift : GemmBackendKind::CutlassSparse;
  }
  bool lifts_input() const override { return lift_.has_value(); }
  std::int64_t input_k() const override { return lift_ ? lift_->raw_k : k_; }
  std::int64_t input_ld() const override { return lift_ ? lift_->raw_ld : k_; }

 private:
  int config_count() const override {
    return lift_ ? cutlass_lift::config_count(precision_)
                 : cutlass_sparse::config_count(precision_);
  }
  std::unique_ptr<cutlass_sparse::Launch> make_launch(int config, std::int64_t m) const override {
    if (lift_)
      return cutlass_lift::make_launch(precision_, config, n_, k_, m, values_.get(),
                                       metadata_.get(), ctx_.device, *lift_);
    return cutlass_sparse::make_launch(precision_, config, n_, k_, m, values_.get(),
                                       metadata_.get(), ctx_.device);
  }

  std::optional<cutlass_lift::LiftInput> lift_;

  DeviceAllocation values_;    // the kept half of W, CUTLASS's compressed layout
  DeviceAllocation metadata_;  // the sparse wgmma's metadata for it
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

std::vector<std::string> cutlass_lift_configs(Precision precision) {
  std::vector<std::string> names;
#ifdef SLIDESPARSE_HAVE_CUTLASS
  for (int c = 0; c < cutlass_lift::config_count(precision); ++c)
    names.push_back(cutlass_lift::config_name(precision, c));
#else
  (void)precision;
#endif
  return names;
}

std::unique_ptr<Gemm> make_cutlass_lift_gemm(GemmContext& ctx, Precision precision,
                                             std::int64_t n, std::int64_t k, const void* w_device,
                                             const Pattern& pattern, std::int64_t raw_k,
                                             std::int64_t raw_ld) {
  gemm_detail::check_cutlass_construction(ctx, GemmBackendKind::CutlassSparseLift, precision, n, k,
                                          w_device);
  const std::string label = gemm_detail::gemm_label(GemmBackendKind::CutlassSparseLift, precision,
                                                    n, k);
  if (raw_k <= 0 || raw_ld < raw_k || raw_ld % 16 != 0)
    throw InvalidArgument(label + ": the un-lifted input needs 0 < raw K <= its row stride and a "
                          "row stride of a multiple of 16 (raw K = " + std::to_string(raw_k) +
                          ", row stride " + std::to_string(raw_ld) + ")");
  if (pattern.k_slide(raw_k) > k)
    throw InvalidArgument(label + ": K = " + std::to_string(k) + " is below the lifted width " +
                          std::to_string(pattern.k_slide(raw_k)) + " of raw K = " +
                          std::to_string(raw_k) + " for pattern " + pattern.display_name());
#ifdef SLIDESPARSE_HAVE_CUTLASS
  cutlass_lift::LiftInput lift;
  const cutlass_lift::LiftMap map = cutlass_lift::lift_map_of(pattern);
  lift.group_cols = map.group_cols;
  lift.windows = map.windows;
  lift.raw_k = raw_k;
  lift.raw_ld = raw_ld;
  if (!cutlass_lift::can_lift(lift.group_cols, lift.windows))
    throw InvalidArgument(label + ": pattern " + pattern.display_name() +
                          " cannot be lifted inside the kernel");
  return std::make_unique<CutlassSparseGemm>(ctx, precision, n, k, w_device, lift);
#else
  return nullptr;  // not reached: cutlass_sparse_available() is false
#endif
}

std::unique_ptr<Gemm> make_cutlass_sparse_gemm(GemmContext& ctx, Precision precision,
                                               std::int64_t n, std::int64_t k,
                                               const void* w_device) {
  gemm_detail::check_cutlass_construction(ctx, GemmBackendKind::CutlassSparse, precision, n, k,
                                          w_device);
#ifdef SLIDESPARSE_HAVE_CUTLASS
  return std::make_unique<CutlassSparseGemm>(ctx, precision, n, k, w_device);
#else
  return nullptr;  // not reached: cutlass_sparse_available() is false
#endif
}

}  // namespace slidesparse
