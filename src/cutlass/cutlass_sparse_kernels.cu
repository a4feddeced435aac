// The CUTLASS 3.x structured-sparse GEMM for sm_90a with the dequantization in its epilogue.
// Mainloop: TMA loads of the compressed weights, their metadata and the activations into a
// multi-stage shared-memory pipeline; sparse wgmma (2:4 on A) issued by two consumer
// warpgroups (the cooperative warp-specialized schedule, persistent tiles). Epilogue: an
// epilogue visitor tree that reads the per-token and per-channel scales and the bias and
// writes BF16 through TMA. Only this file includes CUTLASS; it is built for sm_90a only.
#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/kernel_hardware_info.h>

#include <cute/tensor.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/transform/device/transform_universal_adapter.hpp>
#include <cutlass/transform/kernel/sparse_gemm_compressor.hpp>
#include <cutlass/util/packed_stride.hpp>
#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>

#include "cutlass_dequantize_epilogue.hpp"
#include "cutlass_fused_launch.hpp"
#include "cutlass_sparse_kernels.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::cutlass_sparse {
namespace {

using cutlass_epilogue::ProblemShape;
constexpr const char* kGemm = "CUTLASS sparse GEMM";

// One compiled configuration. A = W (row-major = K-major, 2:4), B = X (column-major in the
// GEMM's K×Ng view = K-major), D = Y column-major in the Mg×Ng view (= row-major [M, N]).
// TileScheduler: void for the persistent data-parallel scheduler, or StreamKScheduler.
template <class Operand, class Accumulator, class TileShape, class ClusterShape,
          class TileScheduler = void>
struct SparseDequantGemm {
  using ElementA = Operand;
  using ElementB = Operand;
  using ElementD = cutlass_epilogue::ElementD;
  using LayoutA = cutlass::layout::RowMajor;
  using LayoutB = cutlass::layout::ColumnMajor;
  static constexpr int kAlignmentAB = 16;  // elements: 16 bytes of 8-bit values (TMA rule)

  using Epilogue = cutlass_epilogue::DequantizeEpilogue<cutlass::arch::OpClassSparseTensorOp, TileShape,
                                                        ClusterShape, Accumulator>;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassSparseTensorOp, ElementA, LayoutA, kAlignmentAB,
      ElementB, LayoutB, kAlignmentAB, Accumulator, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelTmaWarpSpecializedCooperative>::CollectiveOp;

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

constexpr int kConfigs = 3;
const char* const kInt8ConfigNames[kConfigs] = {
    "tile 128x128x128, cluster 2x1, cooperative",
    "tile 128x256x128, cluster 1x2, cooperative",
    "tile 128x64x128, cluster 1x1, cooperative, stream-K",
};
const char* const kFp8ConfigNames[kConfigs] = {
    "tile 128x128x128, cluster 2x1, cooperative",
    "tile 128x128x128, cluster 1x2, cooperative",
    "tile 128x64x128, cluster 1x1, cooperative, stream-K",
};

void check_status(cutlass::Status status, const std::string& what) {
  cutlass_epilogue::check_status(status, kGemm, what);
}

int to_int(std::int64_t value, const char* name) {
  return cutlass_epilogue::to_int(value, kGemm, name);
}

// ---- weights ---------------------------------------------------------------------------------

template <class G>
struct Compression {
  using Utility = cutlass::transform::kernel::StructuredSparseCompressorUtility<
      ProblemShape, typename G::ElementA, typename G::LayoutA, typename G::SparseConfig>;
  using Kernel = cutlass::transform::kernel::StructuredSparseCompressor<
      ProblemShape, typename G::ElementA, typename G::LayoutA, typename G::SparseConfig,
      cutlass::arch::Sm90>;
  using Adapter = cutlass::transform::device::TransformUniversalAdapter<Kernel>;
  using StrideA = cutlass::gemm::TagToStrideA_t<typename G::LayoutA>;

  // The compressor works on N and K only; its problem's Ng is a placeholder.
  static ProblemShape problem(std::int64_t n, std::int64_t k) {
    return ProblemShape{to_int(n, "N"), 1, to_int(k, "K"), 1};
  }
  static StrideA stride(std::int64_t n, std::int64_t k) {
    return cutlass::make_cute_packed_stride(StrideA{},
                                            cute::make_shape(to_int(n, "N"), to_int(k, "K"), 1));
  }
  static typename Adapter::Arguments arguments(std::int64_t n, std::int64_t k, const void* w,
                                               void* values, void* metadata, int device) {
    return typename Adapter::Arguments{problem(n, k),
                                       {w, stride(n, k), values, metadata},
                                       cutlass_epilogue::hardware_info(device)};
  }

  // The kept values' bytes from the utility's padded extents, multiplied in 64 bits: its
  // get_compressed_tensor_A_bytes() multiplies rows × columns × 8 bits in int, which overflows
  // from N·K = 2^29 on (0 bytes at 32768 × 32768). Its metadata byte count is 64-bit already.
  static CompressedSizes sizes(std::int64_t n, std::int64_t k) {
    const Utility utility(problem(n, k), stride(n, k));
    static_assert(sizeof(typename G::ElementA) == 1, "8-bit operands");
    return {static_cast<std::size_t>(utility.get_tensorA_m_physical()) *
                static_cast<std::size_t>(utility.get_tensorA_k_physical()),
            static_cast<std::size_t>(utility.get_tensor_E_bytes())};
  }

  static std::size_t scratch_bytes(std::int64_t n, std::int64_t k) {
    int device = 0;
    SLIDESPARSE_CHECK_CUDA(cudaGetDevice(&device));
    return Adapter::get_workspace_size(arguments(n, k, nullptr, nullptr, nullptr, device));
  }

  static void run(std::int64_t n, std::int64_t k, const void* w, void* values, void* metadata,
                  void* scratch, cudaStream_t stream) {
    int device = 0;
    SLIDESPARSE_CHECK_CUDA(cudaGetDevice(&device));
    const auto args = arguments(n, k, w, values, metadata, device);
    Adapter compressor;
    check_status(compressor.can_implement(args), "compressor can_implement");
    check_status(compressor.initialize(args, scratch, stream), "compressor initialize");
    check_status(compressor.run(stream), "compressor run");
  }
};

// Groups of 4 along K are aligned 32-bit words of a row-major [N, K] with K % 4 == 0.
__global__ void check_and_canonicalize_kernel(const std::uint32_t* __restrict__ w,
                                              std::uint32_t* __restrict__ out, std::int64_t words,
                                              bool fp8, unsigned long long* __restrict__ bad) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
       i += step) {
    std::uint32_t word = w[i];
    int nonzeros = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const std::uint32_t byte = (word >> (8 * b)) & 0xffu;
      // E4M3 -0 (0x80) is a zero for the product, not a value the 2:4 slots must hold.
      if (fp8 && byte == 0x80u) word &= ~(0xffu << (8 * b));
      nonzeros += (fp8 && byte == 0x80u) || byte == 0 ? 0 : 1;
    }
    if (nonzeros > 2) atomicAdd(bad, 1ull);
    out[i] = word;
  }
}

// ---- one launch ------------------------------------------------------------------------------

template <class G>
std::unique_ptr<Launch> launch(std::int64_t n, std::int64_t k, std::int64_t m, const void* values,
                               const void* metadata, int device) {
  return std::make_unique<cutlass_epilogue::FusedLaunch<G>>(
      cutlass_epilogue::sparse_arguments<G>(kGemm, n, k, m, k, values, metadata, device), kGemm,
      cutlass_epilogue::shape_label(n, k, m));
}

void require_8bit(Precision precision) {
  if (precision != Precision::INT8 && precision != Precision::FP8)
    throw InvalidArgument(std::string("CUTLASS sparse GEMM supports INT8 and FP8, not ") +
                          precision_name(precision));
}

}  // namespace

int config_count(Precision precision) {
  return precision == Precision::INT8 || precision == Precision::FP8 ? kConfigs : 0;
}

std::string config_name(Precision precision, int config) {
  require_8bit(precision);
  if (config < 0 || config >= kConfigs)
    throw InvalidArgument("CUTLASS sparse GEMM has no configuration " + std::to_string(config));
  return precision == Precision::INT8 ? kInt8ConfigNames[config] : kFp8ConfigNames[config];
}

CompressedSizes compressed_sizes(Precision precision, std::int64_t n, std::int64_t k) {
  require_8bit(precision);
  return precision == Precision::INT8 ? Compression<Int8Small>::sizes(n, k)
                                      : Compression<Fp8Small>::sizes(n, k);
}

std::int64_t check_and_canonicalize(Precision precision, std::int64_t n, std::int64_t k,
                                    const void* w, void* canonical, cudaStream_t stream) {
  require_8bit(precision);
  if (k % 4 != 0 || reinterpret_cast<std::uintptr_t>(w) % 4 != 0 ||
      reinterpret_cast<std::uintptr_t>(canonical) % 4 != 0)
    throw InvalidArgument("CUTLASS sparse GEMM: the weights need K % 4 == 0 and 4-byte alignment "
                          "(K = " + std::to_string(k) + ")");
  const std::int64_t words = n * (k / 4);
  // The counter is freed on every path, a failed launch or copy included.
  struct CounterFree {
    cudaStream_t stream;
    void operator()(unsigned long long* p) const { cudaFreeAsync(p, stream); }
  };
  unsigned long long* raw = nullptr;
  SLIDESPARSE_CHECK_CUDA(cudaMallocAsync(reinterpret_cast<void**>(&raw), sizeof *raw, stream));
  const std::unique_ptr<unsigned long long, CounterFree> bad(raw, CounterFree{stream});
  SLIDESPARSE_CHECK_CUDA(cudaMemsetAsync(bad.get(), 0, sizeof *raw, stream));
  constexpr int kThreads = 256;
  const std::int64_t blocks = std::min<std::int64_t>((words + kThreads - 1) / kThreads, 8192);
  check_and_canonicalize_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const std::uint32_t*>(w), static_cast<std::uint32_t*>(canonical), words,
      precision == Precision::FP8, bad.get());
  SLIDESPARSE_CHECK_LAUNCH();
  unsigned long long count = 0;
  SLIDESPARSE_CHECK_CUDA(
      cudaMemcpyAsync(&count, bad.get(), sizeof count, cudaMemcpyDeviceToHost, stream));
  SLIDESPARSE_CHECK_CUDA(cudaStreamSynchronize(stream));
  return static_cast<std::int64_t>(count);
}

std::size_t compressor_scratch_bytes(Precision precision, std::int64_t n, std::int64_t k) {
  require_8bit(precision);
  return precision == Precision::INT8 ? Compression<Int8Small>::scratch_bytes(n, k)
                                      : Compression<Fp8Small>::scratch_bytes(n, k);
}

void compress(Precision precision, std::int64_t n, std::int64_t k, const void* w, void* values,
              void* metadata, void* scratch, cudaStream_t stream) {
  require_8bit(precision);
  if (precision == Precision::INT8)
    Compression<Int8Small>::run(n, k, w, values, metadata, scratch, stream);
  else
    Compression<Fp8Small>::run(n, k, w, values, metadata, scratch, stream);
}

std::unique_ptr<Launch> make_launch(Precision precision, int config, std::int64_t n, std::int64_t k,
                                    std::int64_t m, const void* values, const void* metadata,
                                    int device) {
  config_name(precision, config);  // validates both
  if (precision == Precision::INT8) {
    switch (config) {
      case 0: return launch<Int8Small>(n, k, m, values, metadata, device);
      case 1: return launch<Int8Large>(n, k, m, values, metadata, device);
      default: return launch<Int8StreamK>(n, k, m, values, metadata, device);
    }
  }
  switch (config) {
    case 0: return launch<Fp8Small>(n, k, m, values, metadata, device);
    case 1: return launch<Fp8Large>(n, k, m, values, metadata, device);
    default: return launch<Fp8StreamK>(n, k, m, values, metadata, device);
  }
}

}  // namespace slidesparse::cutlass_sparse
