// The compiled configurations of the lifting variant of our sm_90a 2:4 GEMM: CUTLASS's sparse
// mainloop with its B operand replaced by the lift of the un-lifted X
// (cutlass_lift_mainloop.hpp), the same dequantizing epilogue, the persistent data-parallel
// scheduler. Shared by the translation units that compile them, one per precision. Includes
// CUTLASS: only for the .cu files of src/cutlass.
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

#include <cute/tensor.hpp>
#include <cstdint>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <memory>
#include <string>

#include "cutlass_dequantize_epilogue.hpp"
#include "cutlass_fused_launch.hpp"
#include "cutlass_lift_kernels.hpp"
#include "cutlass_lift_mainloop.hpp"
#include "cutlass_mainloop.hpp"

namespace slidesparse::cutlass_lift::configs {

using cutlass_epilogue::ProblemShape;
inline constexpr const char* kGemm = "CUTLASS lifting sparse GEMM";
inline constexpr int kTileK = 128;  // lifted columns per K tile, every configuration

// One compiled configuration, in the operand mapping of cutlass_mainloop.hpp.
template <class Operand, class Accumulator, class TileShape, class ClusterShape>
struct LiftDequantGemm : cutlass_epilogue::OperandMapping<Operand> {
  using Epilogue = cutlass_epilogue::DequantizeEpilogue<cutlass::arch::OpClassSparseTensorOp, TileShape,
                                                        ClusterShape, Accumulator>;

  // The two lifted tiles come out of the pipeline's shared memory, like the epilogue's.
  static constexpr int kLiftedBytes =
      2 * cute::size<1>(TileShape{}) * cute::size<2>(TileShape{}) * static_cast<int>(sizeof(Operand));
  using BaseMainloop =
      cutlass_epilogue::CooperativeMainloop<cutlass::arch::OpClassSparseTensorOp, Operand,
                                            Accumulator, TileShape, ClusterShape, kLiftedBytes>;
  using Mainloop = LiftingSparseMainloop<BaseMainloop>;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Adapter = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using SparseConfig = typename BaseMainloop::SparseConfig;
  using ElementE = typename BaseMainloop::ElementE;
  static constexpr bool kZeroWorkspaceEachRun = false;
  static_assert(sizeof(typename Kernel::SharedStorage) <= cutlass::gemm::collective::detail::sm90_smem_capacity_bytes,
                "the lifted tiles must fit beside the pipeline");
};

// Every configuration uses the K tile of 128 of cutlass_sparse, so they read its compressed
// weights. A 128×128 tile in a 2×1 cluster (X's window multicast to both weight tiles), in a
// 1×2 cluster (the weight tile multicast), and a 128×64 tile for decode-sized M.
using Tile128x64 = cute::Shape<cute::_128, cute::_64, cute::Int<kTileK>>;
using Tile128x128 = cute::Shape<cute::_128, cute::_128, cute::Int<kTileK>>;
using Cluster1x1 = cute::Shape<cute::_1, cute::_1, cute::_1>;
using Cluster2x1 = cute::Shape<cute::_2, cute::_1, cute::_1>;
using Cluster1x2 = cute::Shape<cute::_1, cute::_2, cute::_1>;

using Int8Pair = LiftDequantGemm<std::int8_t, std::int32_t, Tile128x128, Cluster2x1>;
using Int8Wide = LiftDequantGemm<std::int8_t, std::int32_t, Tile128x128, Cluster1x2>;
using Int8Narrow = LiftDequantGemm<std::int8_t, std::int32_t, Tile128x64, Cluster1x1>;
using Fp8Pair = LiftDequantGemm<cutlass::float_e4m3_t, float, Tile128x128, Cluster2x1>;
using Fp8Wide = LiftDequantGemm<cutlass::float_e4m3_t, float, Tile128x128, Cluster1x2>;
using Fp8Narrow = LiftDequantGemm<cutlass::float_e4m3_t, float, Tile128x64, Cluster1x1>;

// One launch of configuration G at M tokens.
template <class G>
std::unique_ptr<cutlass_sparse::Launch> launch(std::int64_t n, std::int64_t k, std::int64_t m,
                                               const void* values, const void* metadata,
                                               int device, const LiftInput& input) {
  auto args = cutlass_epilogue::sparse_arguments<G>(kGemm, n, k, m, input.raw_ld, values, metadata,
                                                    device);
  args.mainloop.raw_k = cutlass_epilogue::to_int(input.raw_k, kGemm, "raw K");
  args.mainloop.lift = LiftMap{input.group_cols, input.windows};
  return std::make_unique<cutlass_epilogue::FusedLaunch<G>>(
      args, kGemm, cutlass_epilogue::shape_label(n, k, m) + " raw K=" + std::to_string(input.raw_k));
}

// Configuration `config` (0…2) of each precision, in cutlass_lift_int8.cu / _fp8.cu.
std::unique_ptr<cutlass_sparse::Launch> make_int8_launch(int config, std::int64_t n, std::int64_t k,
                                                         std::int64_t m, const void* values,
                                                         const void* metadata, int device,
                                                         const LiftInput& input);
std::unique_ptr<cutlass_sparse::Launch> make_fp8_launch(int config, std::int64_t n, std::int64_t k,
                                                        std::int64_t m, const void* values,
                                                        const void* metadata, int device,
                                                        const LiftInput& input);

}  // namespace slidesparse::cutlass_lift::configs
