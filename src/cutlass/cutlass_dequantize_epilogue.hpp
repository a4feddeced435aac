// The dequantizing epilogue shared by our CUTLASS sm_90a GEMMs (the 2:4 sparse one and its dense
// counterpart), so both write exactly the same values from the same accumulators. Included
// only by the .cu files of src/cutlass (it pulls in CUTLASS headers).
//
// GEMM view: D[Mg×Ng] with Mg = N (the weights' channels) and Ng = M (tokens), D column-major
// (= Y [M, N] row-major). y[m,n] = bf16(fma(float(acc[n,m]), scale_x[m] * scale_w[n], bias[n])).
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/kernel_hardware_info.h>

#include <cstdint>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <limits>
#include <string>

#include "slidesparse/cuda/check.hpp"
#include "slidesparse/dtype.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::cutlass_epilogue {

// y = fma(acc, scale_x · scale_w, bias): the float operations, in this order and each rounded
// to nearest, of dequantize_output (src/cuda/dequantize.cu) and of the CPU reference, so INT8
// results stay bit-identical. The tree converts every input to float first (int32 → float is
// a round-to-nearest conversion, as __int2float_rn) and the result to BF16 round-to-nearest.
template <class T>
struct DequantizeFn {
  CUTLASS_DEVICE T operator()(T const& acc, T const& scale_x, T const& scale_w,
                              T const& bias) const {
    return __fmaf_rn(acc, __fmul_rn(scale_x, scale_w), bias);
  }
};

template <int N>
struct DequantizeFn<cutlass::Array<float, N>> {
  CUTLASS_DEVICE cutlass::Array<float, N> operator()(cutlass::Array<float, N> const& acc,
                                                     cutlass::Array<float, N> const& scale_x,
                                                     cutlass::Array<float, N> const& scale_w,
                                                     cutlass::Array<float, N> const& bias) const {
    cutlass::Array<float, N> y;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i)
      y[i] = __fmaf_rn(acc[i], __fmul_rn(scale_x[i], scale_w[i]), bias[i]);
    return y;
  }
};

using ElementD = cutlass::bfloat16_t;
using LayoutD = cutlass::layout::ColumnMajor;
constexpr int kAlignmentD = 8;  // 16 bytes of BF16

// The visitor tree, children in the order DequantizeFn takes them. Along the GEMM's Mg (rows
// of D) run the weights' channels: scale_w and bias are column vectors; scale_x (one per
// token, a column of D) is a row vector.
template <class TileShape>
using Dequantize = cutlass::epilogue::fusion::Sm90EVT<
    cutlass::epilogue::fusion::Sm90Compute<DequantizeFn, ElementD, float,
                                           cutlass::FloatRoundStyle::round_to_nearest>,
    cutlass::epilogue::fusion::Sm90AccFetch,
    cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float>,
    cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float>,
    cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float>>;

// The epilogue of every configuration (OpClass: sparse or dense tensor ops): no C operand, the
// dequantize tree, BF16 D stored through TMA, for the cooperative warp-specialized kernel.
template <class OpClass, class TileShape, class ClusterShape, class Accumulator>
using DequantizeEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, OpClass, TileShape, ClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, Accumulator, float, void, LayoutD, kAlignmentD,
    ElementD, LayoutD, kAlignmentD, cutlass::epilogue::TmaWarpSpecializedCooperative,
    Dequantize<TileShape>>::CollectiveOp;

// The tree's arguments: {acc, scale_x, scale_w, bias, the compute node}, children first, as
// the tree is built. bias may be null (the broadcast then reads zeros).
template <class ThreadArguments>
ThreadArguments dequantize_arguments(const float* scale_x, const float* scale_w,
                                     const float* bias) {
  return {{}, {scale_x, 0.0f, {}}, {scale_w, 0.0f, {}}, {bias, 0.0f, {}}, {}};
}

using ProblemShape = cute::Shape<int, int, int, int>;  // (Mg = N, Ng = M, K, L = 1)

inline void check_status(cutlass::Status status, const char* gemm, const std::string& what) {
  if (status != cutlass::Status::kSuccess)
    throw DeviceError(std::string(gemm) + ": " + what +
                      " failed: " + cutlassGetStatusString(status));
}

// Our CUTLASS GEMMs multiply 8-bit operands only.
inline void require_8bit(Precision precision, const char* gemm) {
  if (precision != Precision::INT8 && precision != Precision::FP8)
    throw InvalidArgument(std::string(gemm) + " supports INT8 and FP8, not " +
                          precision_name(precision));
}

// A GEMM family's table of compiled configurations (names per precision, by algo_id), and the
// config_count / config_name every family answers from it.
struct ConfigNames {
  const char* gemm;
  int count;
  const char* const* int8;
  const char* const* fp8;

  int count_for(Precision precision) const {
    return precision == Precision::INT8 || precision == Precision::FP8 ? count : 0;
  }
  std::string name(Precision precision, int config) const {
    require_8bit(precision, gemm);
    if (config < 0 || config >= count)
      throw InvalidArgument(std::string(gemm) + " has no configuration " + std::to_string(config));
    return precision == Precision::INT8 ? int8[config] : fp8[config];
  }
};

inline int to_int(std::int64_t value, const char* gemm, const char* name) {
  if (value <= 0 || value > std::numeric_limits<int>::max())
    throw InvalidArgument(std::string(gemm) + ": " + name + " = " + std::to_string(value) +
                          " outside [1, 2^31)");
  return static_cast<int>(value);
}

inline cutlass::KernelHardwareInfo hardware_info(int device) {
  cutlass::KernelHardwareInfo hw_info;
  hw_info.device_id = device;
  SLIDESPARSE_CHECK_CUDA(
      cudaDeviceGetAttribute(&hw_info.sm_count, cudaDevAttrMultiProcessorCount, device));
  return hw_info;
}

}  // namespace slidesparse::cutlass_epilogue
