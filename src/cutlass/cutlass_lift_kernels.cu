// The lifting variant of our sm_90a 2:4 GEMM (cutlass_lift_configs.hpp): its configurations'
// names, which patterns it lifts, and the launch of a configuration (the kernels are compiled
// per precision in cutlass_lift_int8.cu and cutlass_lift_fp8.cu).
#include <memory>
#include <string>

#include "cutlass_lift_configs.hpp"
#include "lift_map.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::cutlass_lift {
namespace {

constexpr const char* kGemm = configs::kGemm;

constexpr int kConfigs = 3;
const char* const kConfigNames[kConfigs] = {
    "tile 128x128x128, cluster 2x1, cooperative, lift in shared memory",
    "tile 128x128x128, cluster 1x2, cooperative, lift in shared memory",
    "tile 128x64x128, cluster 1x1, cooperative, lift in shared memory",
};

// The same tiles for both precisions.
constexpr cutlass_epilogue::ConfigNames kNames{kGemm, kConfigs, kConfigNames, kConfigNames};

}  // namespace

int config_count(Precision precision) { return kNames.count_for(precision); }

std::string config_name(Precision precision, int config) { return kNames.name(precision, config); }

bool can_lift(int group_cols, int windows) {
  return LiftMap{group_cols, windows}.fits(configs::kTileK, configs::kTileK);
}

std::unique_ptr<cutlass_sparse::Launch> make_launch(Precision precision, int config, std::int64_t n,
                                                    std::int64_t k, std::int64_t m,
                                                    const void* values, const void* metadata,
                                                    int device, const LiftInput& input) {
  config_name(precision, config);  // validates both
  if (!can_lift(input.group_cols, input.windows))
    throw InvalidArgument(std::string(kGemm) + ": cannot lift groups of " +
                          std::to_string(input.group_cols) + " columns with " +
                          std::to_string(input.windows) + " windows");
  return precision == Precision::INT8
             ? configs::make_int8_launch(config, n, k, m, values, metadata, device, input)
             : configs::make_fp8_launch(config, n, k, m, values, metadata, device, input);
}

}  // namespace slidesparse::cutlass_lift
