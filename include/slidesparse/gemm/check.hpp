// Error checks for the GEMM libraries: every failing call becomes a DeviceError that names
// our source line, the expression, and the library's own status name and message.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cusparseLt.h>

#include <string>

#include "slidesparse/error.hpp"

// cusparseLtGetErrorName/String and cusparseLtMatmulAlgSelectionDestroy appeared in 0.8.0.
static_assert(CUSPARSELT_VERSION >= 800, "slidesparse needs cuSPARSELt 0.8.0 or newer");

// The CUDA room owns SLIDESPARSE_CHECK_CUDA; this fallback only exists while it is absent.
#if __has_include("slidesparse/cuda/check.hpp")
#include "slidesparse/cuda/check.hpp"
#endif

namespace slidesparse::detail {

inline std::string cuda_status_text(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")";
}

inline std::string cublas_status_text(cublasStatus_t status) {
  return std::string(cublasLtGetStatusName(status)) + " (" + cublasLtGetStatusString(status) + ")";
}

inline std::string cusparselt_status_text(cusparseStatus_t status) {
  return std::string(cusparseLtGetErrorName(status)) + " (" + cusparseLtGetErrorString(status) +
         ")";
}

}  // namespace slidesparse::detail

#ifndef SLIDESPARSE_CHECK_CUDA
#define SLIDESPARSE_CHECK_CUDA(expr)                                           \
  do {                                                                         \
    const cudaError_t slidesparse_status_ = (expr);                            \
    if (slidesparse_status_ != cudaSuccess)                                    \
      throw ::slidesparse::DeviceError(                                        \
          ::slidesparse::detail::where(__FILE__, __LINE__) + ": " #expr ": " + \
          ::slidesparse::detail::cuda_status_text(slidesparse_status_));       \
  } while (0)
#endif

#define SLIDESPARSE_CHECK_CUBLAS(expr)                                         \
  do {                                                                         \
    const cublasStatus_t slidesparse_status_ = (expr);                         \
    if (slidesparse_status_ != CUBLAS_STATUS_SUCCESS)                          \
      throw ::slidesparse::DeviceError(                                        \
          ::slidesparse::detail::where(__FILE__, __LINE__) + ": " #expr ": " + \
          ::slidesparse::detail::cublas_status_text(slidesparse_status_));     \
  } while (0)

#define SLIDESPARSE_CHECK_CUSPARSELT(expr)                                     \
  do {                                                                         \
    const cusparseStatus_t slidesparse_status_ = (expr);                       \
    if (slidesparse_status_ != CUSPARSE_STATUS_SUCCESS)                        \
      throw ::slidesparse::DeviceError(                                        \
          ::slidesparse::detail::where(__FILE__, __LINE__) + ": " #expr ": " + \
          ::slidesparse::detail::cusparselt_status_text(slidesparse_status_)); \
  } while (0)
