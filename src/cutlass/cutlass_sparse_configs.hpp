// The compiled configurations of our CUTLASS sm_90a 2:4 GEMM (cutlass_sparse_kernels.cu): the
// kernel types, shared by the translation units that compile them (one per precision, so nvcc
// builds them in parallel) and the one that compresses the weights for them. Includes CUTLASS:
// only for the .cu files of src/cutlass.
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

#include <cute/tensor.hpp>
#include <cstdint>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <memory>
#include <type_traits>

#include "cutlass_dequantize_epilogue.hpp"
#include "cutlass_fused_launch.hpp"
#include "cutlass_mainloop.hpp"
#include "cutlass_sparse_kernels.hpp"

namespace slidesparse::cutlass_sparse::configs {

using cutlass_epilogue::ProblemShape;
inline constexpr const char* kGemm = "CUTLASS sparse GEMM";

// One compiled configuration, in the operand mapping of cutlass_mainloop.hpp (W 2:4, compressed).
// TileScheduler: void for the persistent data-parallel scheduler, or StreamKScheduler.
template <class Operand, class Accumulator, class TileShape, class ClusterShape,
          class TileScheduler = void>
struct SparseDequantGemm : cutlass_epilogue::OperandMapping<Operand> {
  using Epilogue = cutlass_epilogue::DequantizeEpilogue<cutlass::arch::OpClassSparseTensorOp,
                                                        TileShape, ClusterShape, Accumulator>;
  using Mainloop = cutlass_epilogue::CooperativeMainloop<cutlass::arch::OpClassSparseTensorOp,
                                                         Operand, Accumulator, TileShape,
                                                         ClusterShape>;

  using Kernel =
      cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue, TileScheduler>;
  using Adapter = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using SparseConfig = typename Mainloop::SparseConfig;
  using ElementE = typename Mainloop::ElementE;
  // Stream-K counts its per-tile locks up during a launch and never resets them: the lock
  // region of the workspace is zeroed (one memset) before every launch.
  static constexpr bool kZeroWorkspaceEachRun =
      std::is_same_v<TileScheduler, cutlass::gemm::StreamKScheduler>;
};

// Three configurations per precision, all with a K tile of 128 so that they read the same
// compressed weights: a 128×128 tile in a 2×1 cluster (the activation tile is multicast to the
// two CTAs that share it: decode-sized M, large N), and a 1×2 cluster that multicasts the
// weight tile instead (prefill-sized M), with a 128×256 tile for INT8. FP8 keeps 128×128 there:
// its mainloop promotes the tensor cores' partial sums into a second set of fp32 accumulators,
// and with 128×256 the two sets need 256 registers per consumer thread (ptxas: 168 registers
// plus 768 bytes of spills), while 128×128 needs none. The third is for decode: at M = 64 a
// 128-row weight tile gives one CTA per 128 output channels (36 CTAs for Qwen2.5-7B's qkv on
// 132 SMs), too few to draw the GPU's memory bandwidth; stream-K splits the K loop of those
// tiles over every SM, with a 64-token tile that wastes less of a small M.
using Tile128x64 = cute::Shape<cute::_128, cute::_64, cute::_128>;
using Tile128x128 = cute::Shape<cute::_128, cute::_128, cute::_128>;
using Tile128x256 = cute::Shape<cute::_128, cute::_256, cute::_128>;
using Cluster1x1 = cute::Shape<cute::_1, cute::_1, cute::_1>;
using Cluster2x1 = cute::Shape<cute::_2, cute::_1, cute::_1>;
using Cluster1x2 = cute::Shape<cute::_1, cute::_2, cute::_1>;
using StreamK = cutlass::gemm::StreamKScheduler;

using Int8Small = SparseDequantGemm<std::int8_t, std::int32_t, Tile128x128, Cluster2x1>;
using Int8Large = SparseDequantGemm<std::int8_t, std::int32_t, Tile128x256, Cluster1x2>;
using Int8StreamK = SparseDequantGemm<std::int8_t, std::int32_t, Tile128x64, Cluster1x1, StreamK>;
using Fp8Small = SparseDequantGemm<cutlass::float_e4m3_t, float, Tile128x128, Cluster2x1>;
using Fp8Large = SparseDequantGemm<cutlass::float_e4m3_t, float, Tile128x128, Cluster1x2>;
using Fp8StreamK =
    SparseDequantGemm<cutlass::float_e4m3_t, float, Tile128x64, Cluster1x1, StreamK>;

static_assert(std::is_same_v<Int8Small::SparseConfig, Int8Large::SparseConfig> &&
                  std::is_same_v<Int8Small::SparseConfig, Int8StreamK::SparseConfig>,
              "the INT8 configurations must share one compressed-weight layout");
static_assert(std::is_same_v<Fp8Small::SparseConfig, Fp8Large::SparseConfig> &&
                  std::is_same_v<Fp8Small::SparseConfig, Fp8StreamK::SparseConfig>,
              "the FP8 configurations must share one compressed-weight layout");


// One launch of configuration G at M tokens (X with rows of K elements).
template <class G>
std::unique_ptr<Launch> launch(std::int64_t n, std::int64_t k, std::int64_t m, const void* values,
                               const void* metadata, int device) {
  return std::make_unique<cutlass_epilogue::FusedLaunch<G>>(
      cutlass_epilogue::sparse_arguments<G>(kGemm, n, k, m, k, values, metadata, device), kGemm,
      cutlass_epilogue::shape_label(n, k, m));
}

// Configuration `config` (0…2) of each precision, in cutlass_sparse_int8.cu / _fp8.cu.
std::unique_ptr<Launch> make_int8_launch(int config, std::int64_t n, std::int64_t k,
                                         std::int64_t m, const void* values, const void* metadata,
                                         int device);
std::unique_ptr<Launch> make_fp8_launch(int config, std::int64_t n, std::int64_t k, std::int64_t m,
                                        const void* values, const void* metadata, int device);

}  // namespace slidesparse::cutlass_sparse::configs
