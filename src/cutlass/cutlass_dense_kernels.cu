// The CUTLASS 3.x dense GEMM for sm_90a with the dequantization in its epilogue: the dense
// counterpart of cutlass_sparse_kernels.cu with the same epilogue visitor tree, so a sparse /
// dense ratio measures the mainloops only. Mainloop: TMA loads of W and X into a multi-stage
// shared-memory pipeline, dense wgmma issued by two consumer warpgroups (the cooperative
// warp-specialized schedule, persistent tiles). Built for sm_90a only. This file: the
// configurations' names and the launch of one (the kernels are compiled per precision in
// cutlass_dense_int8.cu and cutlass_dense_fp8.cu).
#include <string>

#include "cutlass_dense_configs.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::cutlass_dense {
namespace {

constexpr const char* kGemm = configs::kGemm;

constexpr int kConfigs = 2;
const char* const kInt8ConfigNames[kConfigs] = {
    "tile 128x128x128, cluster 2x1, cooperative",
    "tile 128x256x128, cluster 1x2, cooperative",
};
const char* const kFp8ConfigNames[kConfigs] = {
    "tile 128x128x128, cluster 2x1, cooperative",
    "tile 128x128x128, cluster 1x2, cooperative",
};

constexpr cutlass_epilogue::ConfigNames kNames{kGemm, kConfigs, kInt8ConfigNames, kFp8ConfigNames};

}  // namespace

int config_count(Precision precision) { return kNames.count_for(precision); }

std::string config_name(Precision precision, int config) { return kNames.name(precision, config); }

std::unique_ptr<Launch> make_launch(Precision precision, int config, std::int64_t n, std::int64_t k,
                                    std::int64_t m, const void* w, int device) {
  config_name(precision, config);  // validates both
  return precision == Precision::INT8 ? configs::make_int8_launch(config, n, k, m, w, device)
                                      : configs::make_fp8_launch(config, n, k, m, w, device);
}

}  // namespace slidesparse::cutlass_dense
