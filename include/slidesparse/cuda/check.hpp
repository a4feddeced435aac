// The one way CUDA runtime errors leave the library: a DeviceError that names
// the failing call, where it was made, and what the runtime said.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "slidesparse/error.hpp"

namespace slidesparse::detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* expr, const char* file,
                                          int line) {
  throw DeviceError(where(file, line) + ": " + expr + ": " + cudaGetErrorName(status) + ": " +
                    cudaGetErrorString(status));
}

}  // namespace slidesparse::detail

#define SLIDESPARSE_CHECK_CUDA(expr)                                                     \
  do {                                                                                   \
    const cudaError_t slidesparse_cuda_status_ = (expr);                                 \
    if (slidesparse_cuda_status_ != cudaSuccess)                                         \
      ::slidesparse::detail::throw_cuda_error(slidesparse_cuda_status_, #expr, __FILE__, \
                                              __LINE__);                                 \
  } while (0)

// After a <<<...>>> launch: a bad configuration is only reported here.
#define SLIDESPARSE_CHECK_LAUNCH() SLIDESPARSE_CHECK_CUDA(cudaGetLastError())
