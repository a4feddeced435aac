// The compiled configurations of our CUTLASS sm_90a dense GEMM (cutlass_dense_kernels.cu): the
// kernel types, shared by the translation units that compile them, one per precision.
// Includes CUTLASS: only for the .cu files of src/cutlass.
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

#include <cute/tensor.hpp>
#include <cstdint>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>
#include <memory>

#include "cutlass_dense_kernels.hpp"
#include "cutlass_dequantize_epilogue.hpp"
#include "cutlass_fused_launch.hpp"
#include "cutlass_mainloop.hpp"

namespace slidesparse::cutlass_dense::configs {

using cutlass_epilogue::ProblemShape;
inline constexpr const char* kGemm = "CUTLASS dense GEMM";

// One compiled configuration, in the operand mapping of cutlass_mainloop.hpp.
template <class Operand, class Accumulator, class TileShape, class ClusterShape>
struct DenseDequantGemm : cutlass_epilogue::OperandMapping<Operand> {
  using Epilogue = cutlass_epilogue::DequantizeEpilogue<cutlass::arch::OpClassTensorOp, TileShape,
                                                        ClusterShape, Accumulator>;
  using Mainloop = cutlass_epilogue::CooperativeMainloop<cutlass::arch::OpClassTensorOp, Operand,
                                                         Accumulator, TileShape, ClusterShape>;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Adapter = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  static constexpr bool kZeroWorkspaceEachRun = false;  // persistent data-parallel tiles
};

// The sparse GEMM's tiles and clusters, so each dense configuration has a sparse twin: a
// 128×128 tile in a 2×1 cluster (activations multicast: decode-sized M) and a 1×2 cluster
// (weights multicast: prefill-sized M) with a 128×256 tile for INT8. FP8 keeps 128×128 there:
// its mainloop promotes partial sums into a second set of fp32 accumulators, and 128×256 would
// need two sets of 128 registers per consumer thread.
using Tile128x128 = cute::Shape<cute::_128, cute::_128, cute::_128>;
using Tile128x256 = cute::Shape<cute::_128, cute::_256, cute::_128>;
using Cluster2x1 = cute::Shape<cute::_2, cute::_1, cute::_1>;
using Cluster1x2 = cute::Shape<cute::_1, cute::_2, cute::_1>;

using Int8Small = DenseDequantGemm<std::int8_t, std::int32_t, Tile128x128, Cluster2x1>;
using Int8Large = DenseDequantGemm<std::int8_t, std::int32_t, Tile128x256, Cluster1x2>;
using Fp8Small = DenseDequantGemm<cutlass::float_e4m3_t, float, Tile128x128, Cluster2x1>;
using Fp8Large = DenseDequantGemm<cutlass::float_e4m3_t, float, Tile128x128, Cluster1x2>;

// One launch at M tokens: the arguments with null data pointers (FusedLaunch sets them).
template <class G>
std::unique_ptr<Launch> launch(std::int64_t n, std::int64_t k, std::int64_t m, const void* w,
                               int device) {
  using StrideA = typename G::Kernel::StrideA;
  using StrideB = typename G::Kernel::StrideB;
  const int n_int = cutlass_epilogue::to_int(n, kGemm, "N");
  const int k_int = cutlass_epilogue::to_int(k, kGemm, "K");
  const int m_int = cutlass_epilogue::to_int(m, kGemm, "M");
  typename G::Adapter::Arguments args{};
  args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
  args.problem_shape = ProblemShape{n_int, m_int, k_int, 1};
  args.mainloop.ptr_A = static_cast<const typename G::ElementA*>(w);
  args.mainloop.dA = cutlass::make_cute_packed_stride(StrideA{}, cute::make_shape(n_int, k_int, 1));
  args.mainloop.ptr_B = nullptr;
  args.mainloop.dB = cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(m_int, k_int, 1));
  cutlass_epilogue::set_output<G>(args, n_int, m_int, device);
  return std::make_unique<cutlass_epilogue::FusedLaunch<G>>(args, kGemm,
                                                            cutlass_epilogue::shape_label(n, k, m));
}

// Configuration `config` (0 or 1) of each precision, in cutlass_dense_int8.cu / _fp8.cu.
std::unique_ptr<Launch> make_int8_launch(int config, std::int64_t n, std::int64_t k,
                                         std::int64_t m, const void* w, int device);
std::unique_ptr<Launch> make_fp8_launch(int config, std::int64_t n, std::int64_t k, std::int64_t m,
                                        const void* w, int device);

}  // namespace slidesparse::cutlass_dense::configs
