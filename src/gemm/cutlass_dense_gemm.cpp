// The dense counterpart of our CUTLASS 2:4 GEMM: the CUTLASS sm_90a dense GEMM with the same
// dequantizing epilogue (src/cutlass/cutlass_dense_kernels.cu), so that the sparse kernel can be
// compared with a dense kernel that does the same work after its mainloop. W is copied once at
// construction; a plan per M holds the CUTLASS arguments of the chosen tile configuration.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gemm_internal.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"

#ifdef SLIDESPARSE_HAVE_CUTLASS
#include "../cutlass/cutlass_dense_kernels.hpp"
#include "cutlass_fused_gemm.hpp"
#endif

namespace slidesparse {

#ifdef SLIDESPARSE_HAVE_CUTLASS
namespace {

using gemm_detail::DeviceAllocation;

class CutlassDenseGemm final : public gemm_detail::CutlassFusedGemm {
 public:
  CutlassDenseGemm(GemmContext& ctx, Precision precision, std::int64_t n, std::int64_t k,
                   const void* w_device)
      : CutlassFusedGemm(ctx, precision, n, k),
        w_(static_cast<std::size_t>(n * k)) {  // 8-bit elements: N·K bytes
    SLIDESPARSE_CHECK_CUDA(cudaMemcpy(w_.get(), w_device, w_.bytes(), cudaMemcpyDeviceToDevice));
  }

  GemmBackendKind kind() const override { return GemmBackendKind::CutlassDense; }

 private:
  int config_count() const override { return cutlass_dense::config_count(precision_); }
  std::unique_ptr<cutlass_sparse::Launch> make_launch(int config, std::int64_t m) const override {
    return cutlass_dense::make_launch(precision_, config, n_, k_, m, w_.get(), ctx_.device);
  }

  DeviceAllocation w_;  // W [N, K] as given
};

}  // namespace
#endif  // SLIDESPARSE_HAVE_CUTLASS

std::vector<std::string> cutlass_dense_configs(Precision precision) {
  std::vector<std::string> names;
#ifdef SLIDESPARSE_HAVE_CUTLASS
  for (int c = 0; c < cutlass_dense::config_count(precision); ++c)
    names.push_back(cutlass_dense::config_name(precision, c));
#else
  (void)precision;
#endif
  return names;
}

std::unique_ptr<Gemm> make_cutlass_dense_gemm(GemmContext& ctx, Precision precision, std::int64_t n,
                                              std::int64_t k, const void* w_device) {
  gemm_detail::check_cutlass_construction(ctx, GemmBackendKind::CutlassDense, precision, n, k,
                                          w_device);
#ifdef SLIDESPARSE_HAVE_CUTLASS
  return std::make_unique<CutlassDenseGemm>(ctx, precision, n, k, w_device);
#else
  return nullptr;  // not reached: cutlass_sparse_available() is false
#endif
}

}  // namespace slidesparse
