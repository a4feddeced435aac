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
#include "cutlass_fused_gemm.hpp"
#endif

namespace slidesparse {

#ifdef SLIDESPARSE_HAVE_CUTLASS
namespace {

using gemm_detail::DeviceAllocation;

class CutlassSparseGemm final : public gemm_detail::CutlassFusedGemm {
 public:
  CutlassSparseGemm(GemmContext& ctx, Precision precision, std::int64_t n, std::int64_t k,
                    const void* w_device)
      : CutlassFusedGemm(ctx, precision, n, k) {
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

 private:
  int config_count() const override { return cutlass_sparse::config_count(precision_); }
  std::unique_ptr<cutlass_sparse::Launch> make_launch(int config, std::int64_t m) const override {
    return cutlass_sparse::make_launch(precision_, config, n_, k_, m, values_.get(),
                                       metadata_.get(), ctx_.device);
  }

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
