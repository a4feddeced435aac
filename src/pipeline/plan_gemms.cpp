#include "slidesparse/pipeline/plan_gemms.hpp"

#include <algorithm>

#include "slidesparse/error.hpp"

namespace slidesparse::pipeline {

namespace {

struct GemmInfo {
  GemmSide side;
  const char* name;
  bool quantized_only;  // runs INT8 and FP8 only
  bool fp8_only;
  bool cutlass;         // runs a CUTLASS GEMM, or chooses among GEMMs that include one
  const char* why_not;  // for a dtype it cannot run
};

// One table for what a plan may name; the commands check the same names again.
const GemmInfo kGemms[] = {
    {GemmSide::Sparse, "cusparselt", false, false, false, ""},
    {GemmSide::Sparse, "cutlass", true, false, true,
     "the CUTLASS sparse GEMM takes INT8 and FP8 only"},
    {GemmSide::Sparse, "auto", false, false, true, ""},
    {GemmSide::Dense, "auto", false, false, false, ""},
    {GemmSide::Dense, "cublaslt", false, false, false, ""},
    {GemmSide::Dense, "cublaslt_fused", false, true, false,
     "cuBLASLt's fused dequantization (outer-vector scaling) takes FP8 only"},
    {GemmSide::Dense, "cutlass_dense", true, false, true,
     "the CUTLASS dense GEMM takes INT8 and FP8 only"},
};

const GemmInfo* find(GemmSide side, const std::string& name) {
  for (const GemmInfo& g : kGemms)
    if (g.side == side && name == g.name) return &g;
  return nullptr;
}

const GemmInfo& info(GemmSide side, const std::string& name) {
  const GemmInfo* g = find(side, name);
  if (!g)
    throw InvalidArgument("unknown " + std::string(side == GemmSide::Sparse ? "sparse" : "dense") +
                          " GEMM '" + name + "'");
  return *g;
}

}  // namespace

const std::vector<std::string>& gemm_names(GemmSide side) {
  static const std::vector<std::string> sparse = {"cusparselt", "cutlass", "auto"};
  static const std::vector<std::string> dense = {"auto", "cublaslt", "cublaslt_fused",
                                                 "cutlass_dense"};
  return side == GemmSide::Sparse ? sparse : dense;
}

const std::string& default_gemm(GemmSide side) { return gemm_names(side).front(); }

bool is_gemm_name(GemmSide side, const std::string& name) { return find(side, name) != nullptr; }

std::string gemm_dtype_conflict(GemmSide side, const std::string& name, Precision dtype) {
  const GemmInfo& g = info(side, name);
  const bool runs = g.fp8_only         ? dtype == Precision::FP8
                    : g.quantized_only ? precision_is_quantized(dtype)
                                       : true;
  return runs ? "" : g.why_not;
}

bool gemm_uses_cutlass(GemmSide side, const std::string& name, Precision dtype) {
  // CUTLASS runs INT8 and FP8 only: elsewhere auto has no CUTLASS GEMM to choose.
  return info(side, name).cutlass && precision_is_quantized(dtype);
}

std::string e2e_backend_label(GemmSide side, const std::string& name, bool dense_fallback) {
  info(side, name);
  if (side == GemmSide::Dense) return name == default_gemm(side) ? "dense" : "dense-" + name;
  return (name == default_gemm(side) ? std::string("sparse") : "sparse-" + name) +
         (dense_fallback ? "-fallback" : "");
}

std::string e2e_series(const std::string& backend_label) {
  const std::string head = "sparse-";
  if (backend_label.rfind(head, 0) != 0) return "";
  std::string series = "+" + backend_label.substr(head.size());
  std::replace(series.begin(), series.end(), '-', '+');  // GEMM names hold no '-'
  return series;
}

std::string gemm_flags(const std::vector<std::string>& argv) {
  std::string out;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string flag;
    if ((argv[i] == "--sparse-backend" || argv[i] == "--dense-gemm") && i + 1 < argv.size())
      flag = argv[i] + " " + argv[i + 1];
    else if (argv[i] == "--dense-fallback")
      flag = argv[i];
    if (!flag.empty()) out += (out.empty() ? "" : " ") + flag;
  }
  return out;
}

}  // namespace slidesparse::pipeline
