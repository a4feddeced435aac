// What the configurations of our CUTLASS sm_90a GEMMs (sparse, lifting, dense) share besides
// the epilogue: the operand mapping and the mainloop CUTLASS's builder makes for it. Included
// only by the .cu files of src/cutlass (it pulls in CUTLASS headers).
#pragma once

#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/dispatch_policy.hpp>

#include "cutlass_dequantize_epilogue.hpp"

namespace slidesparse::cutlass_epilogue {

// A = W (row-major = K-major; 2:4 and compressed for the sparse GEMMs), B = X (column-major in
// the GEMM's K×Ng view = K-major), D = Y column-major in the Mg×Ng view (= row-major [M, N]).
template <class Operand>
struct OperandMapping {
  using ElementA = Operand;
  using ElementB = Operand;
  using ElementD = cutlass_epilogue::ElementD;
  using LayoutA = cutlass::layout::RowMajor;
  using LayoutB = cutlass::layout::ColumnMajor;
  static constexpr int kAlignmentAB = 16;  // elements: 16 bytes of 8-bit values (TMA rule)
};

// The cooperative TMA warp-specialized mainloop of OpClass (sparse or dense tensor ops) for
// that mapping, with as many pipeline stages as fit beside the dequantizing epilogue's shared
// memory and `kExtraSharedBytes` more.
template <class OpClass, class Operand, class Accumulator, class TileShape, class ClusterShape,
          int kExtraSharedBytes = 0>
using CooperativeMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, OpClass, Operand, typename OperandMapping<Operand>::LayoutA,
    OperandMapping<Operand>::kAlignmentAB, Operand, typename OperandMapping<Operand>::LayoutB,
    OperandMapping<Operand>::kAlignmentAB, Accumulator, TileShape, ClusterShape,
    cutlass::gemm::collective::StageCountAutoCarveout<
        static_cast<int>(sizeof(typename DequantizeEpilogue<OpClass, TileShape, ClusterShape,
                                                            Accumulator>::SharedStorage)) +
        kExtraSharedBytes>,
    cutlass::gemm::KernelTmaWarpSpecializedCooperative>::CollectiveOp;

}  // namespace slidesparse::cutlass_epilogue
