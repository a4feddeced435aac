// The compiled CUTLASS sm_90a structured-sparse kernels behind a plain C++ surface, so that no
// CUTLASS header reaches the rest of the library (the kernels live in their own target, built
// only for sm_90a and only when the CUTLASS headers are found).
//
// GEMM view (CUTLASS names): D[Mg×Ng] = A[Mg×K] · B[K×Ng] with A = W [N,K] row-major (the 2:4
// operand, K-major), B = X [M,K] row-major (K-major), D = Y [M,N] row-major seen column-major:
// Mg = N (weights' rows), Ng = M (tokens). The epilogue dequantizes:
//   y[m,n] = bf16(fma(float(acc[n,m]), scale_x[m] * scale_w[n], bias[n]))
// with the float operations of src/cuda/dequantize.cu (and the CPU reference).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "slidesparse/dtype.hpp"

namespace slidesparse::cutlass_sparse {

// Compiled tile configurations for one precision (INT8 or FP8); 0 for the others.
int config_count(Precision precision);
// "128x128x128 cluster 2x1 cooperative": for logs and the tuning database's readers.
std::string config_name(Precision precision, int config);

// The compressed weights: the kept values ([N, K/2] padded as CUTLASS lays them out) and the
// metadata in the sparse wgmma's layout. Sizes depend on N and K only.
struct CompressedSizes {
  std::size_t values_bytes = 0;
  std::size_t metadata_bytes = 0;
};
CompressedSizes compressed_sizes(Precision precision, std::int64_t n, std::int64_t k);

// Checks W [n, k] (row-major, k % 4 == 0) for 2:4 along K and writes a copy to `canonical` with
// FP8 negative zeros made positive, so the compressor sees exactly the zeros the check
// counted (CUTLASS 4.2's compressor masks -0 itself; older ones keep any non-zero byte).
// Returns the number of groups of 4 with more than 2 non-zeros. Synchronizes the stream.
std::int64_t check_and_canonicalize(Precision precision, std::int64_t n, std::int64_t k,
                                    const void* w, void* canonical, cudaStream_t stream);

// Compresses the canonical W with CUTLASS's sm90 structured-sparse compressor. `values` and
// `metadata` are device buffers of compressed_sizes(); `scratch` holds scratch_bytes().
std::size_t compressor_scratch_bytes(Precision precision, std::int64_t n, std::int64_t k);
void compress(Precision precision, std::int64_t n, std::int64_t k, const void* w, void* values,
              void* metadata, void* scratch, cudaStream_t stream);

// What one launch reads and writes. x: [m, k]; scale_x: [m]; scale_w, bias: [n] (bias may be
// null); y: [m, n] BF16; workspace: workspace_bytes() of the launch (may be null when 0).
struct LaunchPointers {
  const void* x = nullptr;
  const float* scale_x = nullptr;
  const float* scale_w = nullptr;
  const float* bias = nullptr;
  void* y = nullptr;
  void* workspace = nullptr;

  bool operator==(const LaunchPointers& o) const {
    return x == o.x && scale_x == o.scale_x && scale_w == o.scale_w && bias == o.bias && y == o.y &&
           workspace == o.workspace;
  }
  bool operator!=(const LaunchPointers& o) const { return !(*this == o); }
};

// One tile configuration prepared for one M: the CUTLASS arguments are built here, the kernel
// parameters (TMA descriptors) on the first run and again only when a pointer changes.
class Launch {
 public:
  virtual ~Launch() = default;
  virtual std::size_t workspace_bytes() const = 0;
  // Host work only unless the pointers changed since the last run; then the parameters are
  // rebuilt (host-side descriptor encoding, no allocation).
  virtual void run(const LaunchPointers& pointers, cudaStream_t stream) = 0;
};

// Throws DeviceError when the configuration cannot run this shape (CUTLASS's can_implement).
std::unique_ptr<Launch> make_launch(Precision precision, int config, std::int64_t n, std::int64_t k,
                                    std::int64_t m, const void* values, const void* metadata,
                                    int device);

}  // namespace slidesparse::cutlass_sparse
