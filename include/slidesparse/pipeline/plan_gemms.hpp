// The GEMMs a plan asks the benchmarks to run (plan keys sparse_backends, dense_gemms,
// dense_fallback): the names a plan may use, the dtypes each runs, and how a job's command
// line and the end-to-end CSV's backend column name them. The pipeline has no CUDA: this is
// its own copy of what the commands accept (bench e2e --sparse-backend / --dense-gemm).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/dtype.hpp"

namespace slidesparse::pipeline {

enum class GemmSide : std::uint8_t { Sparse, Dense };

// The names a plan may list, in this order. Sparse: cusparselt (the default), cutlass (our
// sm_90a GEMM with fused dequantization), auto (a choice per M from the tuning database).
// Dense: auto (the default: no --dense-gemm, the layer picks between the cuBLASLt GEMMs from the
// tuning database), cublaslt, cublaslt_fused, cutlass_dense.
const std::vector<std::string>& gemm_names(GemmSide side);
// The one a plan runs when it names none: the commands' own default.
const std::string& default_gemm(GemmSide side);
bool is_gemm_name(GemmSide side, const std::string& name);

// Why `name` cannot run `dtype` ("" when it can): CUTLASS takes INT8 and FP8, cuBLASLt's fused
// dequantization FP8 only. A plan's case of such a pair is not made.
std::string gemm_dtype_conflict(GemmSide side, const std::string& name, Precision dtype);
// Whether `name` on `dtype` runs (or, for auto, chooses among) CUTLASS GEMMs: the kernel and
// tuning jobs then measure them too (--sparse-backend both).
bool gemm_uses_cutlass(GemmSide side, const std::string& name, Precision dtype);

// The CSV backend label of `bench e2e` with these choices: dense, dense-<gemm>, sparse,
// sparse-<backend>, each sparse one with -fallback under --dense-fallback.
std::string e2e_backend_label(GemmSide side, const std::string& name, bool dense_fallback);

// The series an end-to-end backend label's cases and rows are named by after their pattern
// ("2_8+cutlass"): each part of a sparse label after "sparse", after a '+' ("+cutlass",
// "+fallback", "+cutlass+fallback", "+auto"); "" for sparse and for every dense label (the
// dense GEMMs measured are one baseline). The report spells its series the same way.
std::string e2e_series(const std::string& backend_label);

// The GEMM-choosing arguments of a command line (--sparse-backend X, --dense-gemm X,
// --dense-fallback) in their order, joined by spaces; "" for the commands' defaults.
std::string gemm_flags(const std::vector<std::string>& argv);

}  // namespace slidesparse::pipeline
