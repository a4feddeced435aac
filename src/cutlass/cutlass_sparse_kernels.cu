// The CUTLASS 3.x structured-sparse GEMM for sm_90a with the dequantization in its epilogue:
// its configurations' names, the weights' check and compression, and the launch of a
// configuration (the kernels themselves are compiled per precision in cutlass_sparse_int8.cu and
// cutlass_sparse_fp8.cu, so that nvcc builds them in parallel).
// Mainloop: TMA loads of the compressed weights, their metadata and the activations into a
// multi-stage shared-memory pipeline; sparse wgmma (2:4 on A) issued by two consumer
// warpgroups (the cooperative warp-specialized schedule, persistent tiles). Epilogue: an
// epilogue visitor tree that reads the per-token and per-channel scales and the bias and
// writes BF16 through TMA. Built for sm_90a only, like every file of src/cutlass.
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
#include "cutlass_sparse_configs.hpp"
#include "cutlass_sparse_kernels.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::cutlass_sparse {
namespace {

using cutlass_epilogue::ProblemShape;
using configs::Fp8Small;
using configs::Int8Small;
constexpr const char* kGemm = configs::kGemm;

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

constexpr cutlass_epilogue::ConfigNames kNames{kGemm, kConfigs, kInt8ConfigNames, kFp8ConfigNames};

void require_8bit(Precision precision) { cutlass_epilogue::require_8bit(precision, kGemm); }

}  // namespace

int config_count(Precision precision) { return kNames.count_for(precision); }

std::string config_name(Precision precision, int config) { return kNames.name(precision, config); }

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
  return precision == Precision::INT8
             ? configs::make_int8_launch(config, n, k, m, values, metadata, device)
             : configs::make_fp8_launch(config, n, k, m, values, metadata, device);
}

}  // namespace slidesparse::cutlass_sparse
