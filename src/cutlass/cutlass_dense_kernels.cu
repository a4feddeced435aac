// The CUTLASS 3.x dense GEMM for sm_90a with the dequantization in its epilogue: the dense
// counterpart of cutlass_sparse_kernels.cu with the same epilogue visitor tree, so a sparse /
// dense ratio measures the mainloops only. Mainloop: TMA loads of W and X into a multi-stage
// shared-memory pipeline, dense wgmma issued by two consumer warpgroups (the cooperative
// warp-specialized schedule, persistent tiles). Built for sm_90a only.
#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

#include <cute/tensor.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>
#include <string>

#include "cutlass_dense_kernels.hpp"
#include "cutlass_dequantize_epilogue.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::cutlass_dense {
namespace {

using cutlass_epilogue::ProblemShape;
constexpr const char* kGemm = "CUTLASS dense GEMM";

// One compiled configuration: A = W (row-major = K-major), B = X (column-major in the GEMM's
// K×Ng view = K-major), D = Y column-major in the Mg×Ng view (= row-major [M, N]).
template <class Operand, class Accumulator, class TileShape, class ClusterShape>
struct DenseDequantGemm {
  using ElementA = Operand;
  using ElementB = Operand;
  using ElementD = cutlass_epilogue::ElementD;
  using LayoutA = cutlass::layout::RowMajor;
  using LayoutB = cutlass::layout::ColumnMajor;
  using LayoutD = cutlass_epilogue::LayoutD;
  static constexpr int kAlignmentAB = 16;  // elements: 16 bytes of 8-bit values (TMA rule)
  static constexpr int kAlignmentD = cutlass_epilogue::kAlignmentD;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, Accumulator, float, void, LayoutD,
      kAlignmentD, ElementD, LayoutD, kAlignmentD, cutlass::epilogue::TmaWarpSpecializedCooperative,
      cutlass_epilogue::Dequantize<TileShape>>::CollectiveOp;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, LayoutA, kAlignmentAB,
      ElementB, LayoutB, kAlignmentAB, Accumulator, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelTmaWarpSpecializedCooperative>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Adapter = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
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

constexpr int kConfigs = 2;
const char* const kInt8ConfigNames[kConfigs] = {
    "tile 128x128x128, cluster 2x1, cooperative",
    "tile 128x256x128, cluster 1x2, cooperative",
};
const char* const kFp8ConfigNames[kConfigs] = {
    "tile 128x128x128, cluster 2x1, cooperative",
    "tile 128x128x128, cluster 1x2, cooperative",
};

template <class G>
class LaunchImpl final : public Launch {
 public:
  using Adapter = typename G::Adapter;
  using Arguments = typename Adapter::Arguments;
  using StrideA = typename G::Kernel::StrideA;
  using StrideB = typename G::Kernel::StrideB;
  using StrideD = typename G::Kernel::StrideD;

  LaunchImpl(std::int64_t n, std::int64_t k, std::int64_t m, const void* w, int device) {
    const int n_int = cutlass_epilogue::to_int(n, kGemm, "N");
    const int k_int = cutlass_epilogue::to_int(k, kGemm, "K");
    const int m_int = cutlass_epilogue::to_int(m, kGemm, "M");
    args_.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args_.problem_shape = ProblemShape{n_int, m_int, k_int, 1};
    args_.mainloop.ptr_A = static_cast<const typename G::ElementA*>(w);
    args_.mainloop.dA =
        cutlass::make_cute_packed_stride(StrideA{}, cute::make_shape(n_int, k_int, 1));
    args_.mainloop.ptr_B = nullptr;
    args_.mainloop.dB =
        cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(m_int, k_int, 1));
    const StrideD stride_d =
        cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(n_int, m_int, 1));
    args_.epilogue.ptr_C = nullptr;
    args_.epilogue.dC = stride_d;
    args_.epilogue.ptr_D = nullptr;
    args_.epilogue.dD = stride_d;
    args_.hw_info = cutlass_epilogue::hardware_info(device);
    shape_ = "N=" + std::to_string(n) + " K=" + std::to_string(k) + " M=" + std::to_string(m);
    const cutlass::Status status = Adapter::can_implement(args_);
    if (status != cutlass::Status::kSuccess)
      throw DeviceError(std::string(kGemm) + " cannot run " + shape_ + ": " +
                        cutlassGetStatusString(status));
    workspace_bytes_ = Adapter::get_workspace_size(args_);
  }

  std::size_t workspace_bytes() const override { return workspace_bytes_; }

  void run(const LaunchPointers& pointers, cudaStream_t stream) override {
    if (!initialized_ || pointers != last_) {
      initialized_ = false;
      args_.mainloop.ptr_B = static_cast<const typename G::ElementB*>(pointers.x);
      args_.epilogue.ptr_D = static_cast<typename G::ElementD*>(pointers.y);
      args_.epilogue.thread =
          cutlass_epilogue::dequantize_arguments<decltype(args_.epilogue.thread)>(
              pointers.scale_x, pointers.scale_w, pointers.bias);
      check(adapter_.initialize(args_, pointers.workspace, stream), "initialize");
      last_ = pointers;
      initialized_ = true;
    }
    check(adapter_.run(stream), "launch");
  }

 private:
  // The message names the shape; built only on failure (run() is the hot path).
  void check(cutlass::Status status, const char* what) const {
    if (status != cutlass::Status::kSuccess)
      cutlass_epilogue::check_status(status, kGemm, std::string(what) + " at " + shape_);
  }

  Arguments args_{};
  Adapter adapter_;
  std::size_t workspace_bytes_ = 0;
  std::string shape_;  // "N=… K=… M=…" for messages
  LaunchPointers last_;
  bool initialized_ = false;
};

void require_8bit(Precision precision) {
  if (precision != Precision::INT8 && precision != Precision::FP8)
    throw InvalidArgument(std::string(kGemm) + " supports INT8 and FP8, not " +
                          precision_name(precision));
}

}  // namespace

int config_count(Precision precision) {
  return precision == Precision::INT8 || precision == Precision::FP8 ? kConfigs : 0;
}

std::string config_name(Precision precision, int config) {
  require_8bit(precision);
  if (config < 0 || config >= kConfigs)
    throw InvalidArgument(std::string(kGemm) + " has no configuration " + std::to_string(config));
  return precision == Precision::INT8 ? kInt8ConfigNames[config] : kFp8ConfigNames[config];
}

std::unique_ptr<Launch> make_launch(Precision precision, int config, std::int64_t n, std::int64_t k,
                                    std::int64_t m, const void* w, int device) {
  config_name(precision, config);  // validates both
  if (precision == Precision::INT8) {
    if (config == 0) return std::make_unique<LaunchImpl<Int8Small>>(n, k, m, w, device);
    return std::make_unique<LaunchImpl<Int8Large>>(n, k, m, w, device);
  }
  if (config == 0) return std::make_unique<LaunchImpl<Fp8Small>>(n, k, m, w, device);
  return std::make_unique<LaunchImpl<Fp8Large>>(n, k, m, w, device);
}

}  // namespace slidesparse::cutlass_dense
