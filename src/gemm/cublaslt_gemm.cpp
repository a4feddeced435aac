// The dense baseline: cuBLASLt on the weights as given. Column-major view (gemm.hpp):
// D[N×M] = op(A)·B with A = W as [K×N] (ld K, op T) and B = X as [K×M] (ld K, op N), the "TN"
// form that IMMA (INT8) and FP8 kernels require on Hopper.
//
// Two backends share this file: `cublaslt` writes the accumulators (the layer dequantizes them
// in a separate kernel), `cublaslt_fused` (FP8 E4M3, cc 9.0) folds the dequantization into
// cuBLASLt's epilogue with cuBLAS's outer-vector scaling
// (CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F on A and B, cuBLAS 12.9+, documented for cc 9.0
// only):
//   D[i,j] = alpha · scale_A[i] · scale_B[j] · Σ_l op(A)[i,l]·B[l,j] + bias[i]   (beta = 0)
// where i runs over D's rows (cuBLAS "M" = our N) and j over its columns (cuBLAS "N" = our M):
//   A = W viewed [K×N], op T: scale_A has one float per output channel  → scale_w [N]
//   B = X viewed [K×M], op N: scale_B has one float per token           → scale_x [M]
//   D = [N×M] column-major, ld N, BF16 = Y [M,N] row-major; C is the same layout (beta = 0)
//   bias: CUBLASLT_EPILOGUE_BIAS, one value per row of D → per output channel, BF16 (the bias
//   type cuBLASLt takes for a BF16 D with FP8 inputs; it has no FP32 bias for that case).
// No D scale or amax: the docs allow neither with outer-vector scaling (D is 16/32-bit).
#include <algorithm>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <unordered_map>
#include <vector>

#include "gemm_internal.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/check.hpp"
#include "slidesparse/numeric.hpp"

namespace slidesparse {
namespace {

using gemm_detail::DeviceAllocation;

// The cublasLtMatmul datatype table: INT8 runs with int32 compute and scale types (alpha and
// beta are int32, so the accumulators come out exact); the float types accumulate in FP32 and
// write FP32. FP8 also needs compute 32F and scale 32F.
struct LtTypes {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cudaDataType_t operand;
  cudaDataType_t output;
};

LtTypes lt_types(Precision precision, GemmBackendKind kind) {
  // The fused epilogue's table row: E4M3 inputs, FP32 compute and scales, BF16 C and D.
  if (kind == GemmBackendKind::CublasLtFused)
    return {CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_8F_E4M3, CUDA_R_16BF};
  switch (precision) {
    case Precision::INT8:
      return {CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I};
    case Precision::FP8:
      return {CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_8F_E4M3, CUDA_R_32F};
    case Precision::BF16:
      return {CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_32F};
    case Precision::FP16:
      return {CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16F, CUDA_R_32F};
  }
  throw InvalidArgument("unknown precision");
}

class LtMatmulDesc {
 public:
  explicit LtMatmulDesc(const LtTypes& types) {
    SLIDESPARSE_CHECK_CUBLAS(cublasLtMatmulDescCreate(&desc_, types.compute, types.scale));
    set(CUBLASLT_MATMUL_DESC_TRANSA, std::int32_t{CUBLAS_OP_T});
    set(CUBLASLT_MATMUL_DESC_TRANSB, std::int32_t{CUBLAS_OP_N});
  }
  ~LtMatmulDesc() { cublasLtMatmulDescDestroy(desc_); }
  LtMatmulDesc(const LtMatmulDesc&) = delete;
  LtMatmulDesc& operator=(const LtMatmulDesc&) = delete;
  cublasLtMatmulDesc_t get() const { return desc_; }

  // A host-side write into the descriptor: no allocation, no device work.
  template <typename T>
  void set(cublasLtMatmulDescAttributes_t attribute, const T& value) {
    SLIDESPARSE_CHECK_CUBLAS(
        cublasLtMatmulDescSetAttribute(desc_, attribute, &value, sizeof value));
  }

  // The fused epilogue (see the top of this file): per-output-channel scales on A, per-token
  // scales on B, and the BF16 bias when there is one.
  void use_outer_vector_scales(const void* bias_bf16) {
    const std::int32_t outer = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    set(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, outer);
    set(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, outer);
    if (!bias_bf16) return;
    set(CUBLASLT_MATMUL_DESC_EPILOGUE, std::uint32_t{CUBLASLT_EPILOGUE_BIAS});
    set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, std::int32_t{CUDA_R_16BF});
    set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias_bf16);
  }
  // Only writes when a pointer changed: a layer passes the same vectors on every call, so its
  // hot path is two comparisons.
  void point_scales_at(const float* scale_w, const float* scale_x) {
    if (scale_w == scale_w_ && scale_x == scale_x_) return;
    set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(scale_w));
    set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(scale_x));
    scale_w_ = scale_w;
    scale_x_ = scale_x;
  }

 private:
  cublasLtMatmulDesc_t desc_ = nullptr;
  const float* scale_w_ = nullptr;  // what the scale attributes point at
  const float* scale_x_ = nullptr;
};

// Column-major [rows × cols] with leading dimension ld.
class LtLayout {
 public:
  LtLayout(cudaDataType_t type, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
    SLIDESPARSE_CHECK_CUBLAS(cublasLtMatrixLayoutCreate(
        &layout_, type, static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(cols), ld));
  }
  ~LtLayout() { cublasLtMatrixLayoutDestroy(layout_); }
  LtLayout(const LtLayout&) = delete;
  LtLayout& operator=(const LtLayout&) = delete;
  cublasLtMatrixLayout_t get() const { return layout_; }

 private:
  cublasLtMatrixLayout_t layout_ = nullptr;
};

// Heuristic preferences: the context's workspace cap, and 16-byte pointers (the default
// assumes 256 bytes, which row offsets into a batch do not always have).
class LtPreference {
 public:
  explicit LtPreference(std::size_t max_workspace) {
    SLIDESPARSE_CHECK_CUBLAS(cublasLtMatmulPreferenceCreate(&pref_));
    const std::uint64_t bytes = max_workspace;
    SLIDESPARSE_CHECK_CUBLAS(cublasLtMatmulPreferenceSetAttribute(
        pref_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes, sizeof bytes));
    const std::uint32_t alignment = 16;
    for (auto attribute :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      SLIDESPARSE_CHECK_CUBLAS(
          cublasLtMatmulPreferenceSetAttribute(pref_, attribute, &alignment, sizeof alignment));
  }
  ~LtPreference() { cublasLtMatmulPreferenceDestroy(pref_); }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
  cublasLtMatmulPreference_t get() const { return pref_; }

 private:
  cublasLtMatmulPreference_t pref_ = nullptr;
};

// Everything that depends on M: the X and ACC (or Y) layouts and the chosen algorithm.
struct LtPlan {
  LtPlan(const LtTypes& types, std::int64_t n, std::int64_t k, std::int64_t m)
      : x(types.operand, k, m, k), acc(types.output, n, m, n) {}
  LtLayout x;
  LtLayout acc;
  cublasLtMatmulAlgo_t algo{};
  std::size_t workspace_bytes = 0;
  GemmAlgo choice;
};

template <typename T>
T algo_config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attribute) {
  T value{};
  std::size_t written = 0;
  SLIDESPARSE_CHECK_CUBLAS(
      cublasLtMatmulAlgoConfigGetAttribute(&algo, attribute, &value, sizeof value, &written));
  return value;
}

template <typename T>
void set_algo_config(cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attribute,
                     T value) {
  SLIDESPARSE_CHECK_CUBLAS(
      cublasLtMatmulAlgoConfigSetAttribute(&algo, attribute, &value, sizeof value));
}

// The GemmAlgo record of a cuBLASLt algorithm: its readable knobs plus the whole struct.
GemmAlgo describe_algo(const cublasLtMatmulAlgo_t& algo, int heuristic_index) {
  GemmAlgo record;
  record.algo_id = algo_config<std::int32_t>(algo, CUBLASLT_ALGO_CONFIG_ID);
  // Heuristic results may leave SPLITK_NUM unset (-1 on the H100 for INT8): that means no split.
  record.split_k = std::max(1, algo_config<std::int32_t>(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM));
  record.split_k_mode =
      static_cast<int>(algo_config<std::uint32_t>(algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME));
  record.heuristic_index = heuristic_index;
  record.cublaslt_algo.assign(std::begin(algo.data), std::end(algo.data));
  return record;
}

void apply_split_k(cublasLtMatmulAlgo_t& algo, int split_k, int reduction_scheme) {
  set_algo_config<std::int32_t>(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, split_k);
  set_algo_config<std::uint32_t>(algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                 static_cast<std::uint32_t>(reduction_scheme));
}

// The BF16 copy of a float bias [n] on the device (cuBLASLt's bias type for a BF16 D), rounded
// to nearest even as float_to_bf16 does.
DeviceAllocation bf16_bias(const float* bias_device, std::int64_t n) {
  if (!bias_device) return DeviceAllocation();
  std::vector<float> host(static_cast<std::size_t>(n));
  SLIDESPARSE_CHECK_CUDA(
      cudaMemcpy(host.data(), bias_device, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
  std::vector<std::uint16_t> bits(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) bits[i] = float_to_bf16(host[i]);
  DeviceAllocation device(bits.size() * sizeof(std::uint16_t));
  SLIDESPARSE_CHECK_CUDA(
      cudaMemcpy(device.get(), bits.data(), device.bytes(), cudaMemcpyHostToDevice));
  return device;
}

// One class for both backends: `cublaslt` (accumulators out, run()) and `cublaslt_fused`
// (the dequantization in the epilogue, run_dequantized()); they differ only in the descriptor's
// types and epilogue, so plans, the heuristic and the search are shared.
class CublasLtGemm final : public Gemm {
 public:
  CublasLtGemm(GemmContext& ctx, GemmBackendKind kind, Precision precision, std::int64_t n,
               std::int64_t k, const void* w_device, const float* bias_device)
      : ctx_(ctx.impl()),
        kind_(kind),
        precision_(precision),
        n_(n),
        k_(k),
        types_(lt_types(precision, kind)),
        weight_(static_cast<std::size_t>(n * k) * dtype_size(precision_storage(precision))),
        desc_(types_),
        w_layout_(types_.operand, k, n, k),
        bias_(bias_device),
        bias_bf16_(bf16_bias(bias_device, n)) {
    SLIDESPARSE_CHECK_CUDA(
        cudaMemcpy(weight_.get(), w_device, weight_.bytes(), cudaMemcpyDeviceToDevice));
    SLIDESPARSE_CHECK_CUDA(cudaDeviceSynchronize());  // the caller may reuse w_device at once
    if (fuses_dequantize()) desc_.use_outer_vector_scales(bias_bf16_.get());
  }

  GemmBackendKind kind() const override { return kind_; }
  Precision precision() const override { return precision_; }
  std::int64_t n() const override { return n_; }
  std::int64_t k() const override { return k_; }
  DType output_type() const override { return gemm_output_type(precision_, kind()); }

  void prepare(std::int64_t m, const GemmAlgo& algo) override { plans_.prepare(m, algo); }

  void run(const void* x, void* acc, std::int64_t m, cudaStream_t stream) override {
    if (fuses_dequantize())
      throw InvalidArgument(label() + ": run at M = " + std::to_string(m) +
                            " asks for accumulators, but this backend dequantizes in its "
                            "epilogue and writes BF16 only: call run_dequantized");
    gemm_detail::check_run_arguments(kind(), x, acc, m);
    auto& plan = plans_.for_run(m);
    launch(plan, x, acc, stream);
  }

  bool fuses_dequantize() const override { return kind_ == GemmBackendKind::CublasLtFused; }

  // The plan first (an unprepared M builds one, which points the scales at units), then this
  // call's scale vectors (host-side descriptor writes, only when the pointers changed).
  void run_dequantized(const void* x, const float* scale_x, const float* scale_w, const float* bias,
                       void* y, DType y_type, std::int64_t m, cudaStream_t stream) override {
    if (!fuses_dequantize()) {
      Gemm::run_dequantized(x, scale_x, scale_w, bias, y, y_type, m, stream);
      return;
    }
    gemm_detail::check_fused_arguments(label(), x, scale_x, scale_w, bias, y, y_type, m);
    if (bias != bias_)
      throw InvalidArgument(
          label() + ": run_dequantized with " + (bias ? "a bias" : "no bias") +
          (bias_ ? ", but this GEMM was built with another bias"
                 : ", but this GEMM was built without one") +
          ": its epilogue adds the BF16 copy of the bias given at construction (pass that same "
          "pointer, or null when none was given)");
    auto& plan = plans_.for_run(m);
    desc_.point_scales_at(scale_w, scale_x);
    launch(plan, x, y, stream);
  }

  std::vector<AlgoTiming> search(std::int64_t m, const void* x, void* acc, cudaStream_t stream,
                                 const SearchOptions& options) override {
    gemm_detail::check_run_arguments(kind(), x, acc, m);
    gemm_detail::check_search_options(options);
    // Fused: unit scales make Y = bf16(acc + bias), comparable across candidates; acc receives
    // Y (BF16 [m, n] fits where an ACC does).
    if (fuses_dequantize()) point_scales_at_units(m);
    std::vector<AlgoTiming> timings;
    const LtPlan shape(types_, n_, k_, m);
    std::vector<cublasLtMatmulHeuristicResult_t> heuristics;
    try {
      heuristics = heuristic(shape, m, options.max_heuristic_results);
    } catch (const Error& e) {
      timings.push_back({GemmAlgo{}, std::numeric_limits<double>::infinity(), false, e.what()});
      return timings;
    }
    std::vector<GemmAlgo> candidates;
    const auto add = [&](const GemmAlgo& candidate) {
      for (const auto& seen : candidates)
        if (seen.cublaslt_algo == candidate.cublaslt_algo) return;
      candidates.push_back(candidate);
    };
    for (std::size_t i = 0; i < heuristics.size(); ++i) {
      const cublasLtMatmulAlgo_t& base = heuristics[i].algo;
      add(describe_algo(base, static_cast<int>(i)));
      for (const GemmAlgo& variant : split_k_variants(base, static_cast<int>(i), options))
        add(variant);
    }
    gemm_detail::DeviceAllocation* flush = options.flush_l2 ? ctx_.l2_flush() : nullptr;
    gemm_detail::OutputSample reference(m, n_, output_type()), sample(m, n_, output_type());
    try {
      launch(*build_plan(m, GemmAlgo{}), x, acc, stream);
      reference.capture(acc, stream);
    } catch (const Error& e) {
      timings.push_back({GemmAlgo{}, std::numeric_limits<double>::infinity(), false, e.what()});
      return timings;
    }
    for (const GemmAlgo& candidate : candidates) {
      AlgoTiming timing{candidate, std::numeric_limits<double>::infinity(), false, ""};
      try {
        const auto plan = build_plan(m, candidate);
        gemm_detail::time_and_check(
            timing, [&] { launch(*plan, x, acc, stream); }, acc, stream, options, flush, sample,
            reference);
      } catch (const Error& e) {
        timing.error = e.what();
      }
      timings.push_back(std::move(timing));
    }
    gemm_detail::sort_timings(timings);
    if (!timings.empty() && timings.front().ok) prepare(m, timings.front().algo);
    return timings;
  }

  std::optional<GemmAlgo> prepared_algo(std::int64_t m) const override { return plans_.algo(m); }

  std::size_t cached_plans() const override { return plans_.size(); }

 private:
  std::string label() const { return gemm_detail::gemm_label(kind(), precision_, n_, k_); }

  std::vector<cublasLtMatmulHeuristicResult_t> heuristic(const LtPlan& shape, std::int64_t m,
                                                         int count) const {
    const LtPreference preference(ctx_.max_workspace);
    std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<std::size_t>(count));
    int returned = 0;
    SLIDESPARSE_CHECK_CUBLAS(cublasLtMatmulAlgoGetHeuristic(
        ctx_.cublaslt, desc_.get(), w_layout_.get(), shape.x.get(), shape.acc.get(),
        shape.acc.get(), preference.get(), count, results.data(), &returned));
    results.resize(static_cast<std::size_t>(returned));
    std::vector<cublasLtMatmulHeuristicResult_t> usable;
    for (const auto& r : results)
      if (r.state == CUBLAS_STATUS_SUCCESS) usable.push_back(r);
    if (usable.empty())
      throw DeviceError(label() +
                        ": cuBLASLt heuristic found no algorithm for M=" + std::to_string(m));
    return usable;
  }

  // The split-K versions of a heuristic result: each factor × each reduction scheme it supports.
  std::vector<GemmAlgo> split_k_variants(const cublasLtMatmulAlgo_t& base, int heuristic_index,
                                         const SearchOptions& options) const {
    std::vector<GemmAlgo> variants;
    std::int32_t split_support = 0;
    std::uint32_t schemes = 0;
    std::size_t written = 0;
    if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &split_support,
                                          sizeof split_support,
                                          &written) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK, &schemes,
                                          sizeof schemes, &written) != CUBLAS_STATUS_SUCCESS ||
        split_support == 0)
      return variants;
    for (int split : gemm_detail::split_k_factors(options, k_)) {
      if (split == 1) continue;
      for (std::uint32_t scheme :
           {CUBLASLT_REDUCTION_SCHEME_INPLACE, CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE,
            CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE}) {
        if ((schemes & scheme) == 0) continue;
        cublasLtMatmulAlgo_t variant = base;
        apply_split_k(variant, split, static_cast<int>(scheme));
        variants.push_back(describe_algo(variant, heuristic_index));
      }
    }
    return variants;
  }

  // Rebuilds the algorithm a GemmAlgo names: the saved struct when there is one, else the
  // heuristic's choice at that rank (rank 0 = library default), else the algorithm id; then
  // checks that it runs this M and reserves its workspace.
  std::unique_ptr<LtPlan> build_plan(std::int64_t m, const GemmAlgo& algo) {
    // The heuristic and the check see valid scale vectors (their values do not matter there);
    // run_dequantized points the descriptor at the caller's before each launch.
    if (fuses_dequantize()) point_scales_at_units(m);
    auto plan = std::make_unique<LtPlan>(types_, n_, k_, m);
    if (algo.cublaslt_algo.size() == std::size(plan->algo.data)) {
      std::memcpy(plan->algo.data, algo.cublaslt_algo.data(), sizeof plan->algo.data);
    } else if (!algo.cublaslt_algo.empty()) {
      throw FormatError(label() + ": a cuBLASLt algorithm record holds " +
                        std::to_string(std::size(plan->algo.data)) + " words, this one " +
                        std::to_string(algo.cublaslt_algo.size()));
    } else if (algo.heuristic_index >= 0 || algo.algo_id < 0) {
      const int rank = std::max(algo.heuristic_index, 0);
      const auto results = heuristic(*plan, m, rank + 1);
      if (static_cast<std::size_t>(rank) >= results.size())
        throw DeviceError(label() + ": cuBLASLt heuristic has no result #" + std::to_string(rank) +
                          " for M=" + std::to_string(m));
      plan->algo = results[static_cast<std::size_t>(rank)].algo;
      if (algo.algo_id >= 0 && algo.split_k > 1)
        apply_split_k(plan->algo, algo.split_k, algo.split_k_mode);
    } else {
      SLIDESPARSE_CHECK_CUBLAS(cublasLtMatmulAlgoInit(ctx_.cublaslt, types_.compute, types_.scale,
                                                      types_.operand, types_.operand, types_.output,
                                                      types_.output, algo.algo_id, &plan->algo));
      if (algo.split_k > 1) apply_split_k(plan->algo, algo.split_k, algo.split_k_mode);
    }
    cublasLtMatmulHeuristicResult_t check{};
    const cublasStatus_t status =
        cublasLtMatmulAlgoCheck(ctx_.cublaslt, desc_.get(), w_layout_.get(), plan->x.get(),
                                plan->acc.get(), plan->acc.get(), &plan->algo, &check);
    if (status != CUBLAS_STATUS_SUCCESS)
      throw DeviceError(label() + ": cuBLASLt algorithm (" + algo.describe() + ") cannot run M=" +
                        std::to_string(m) + ": " + detail::cublas_status_text(status));
    plan->workspace_bytes = check.workspaceSize;
    ctx_.reserve_workspace(plan->workspace_bytes);
    plan->choice = algo;
    return plan;
  }

  // Grows the unit scale vector to max(m, n) ones (off the hot path) and points both scale
  // attributes at it.
  void point_scales_at_units(std::int64_t m) {
    const std::size_t count = static_cast<std::size_t>(std::max(m, n_));
    if (unit_scales_.bytes() < count * sizeof(float)) {
      const std::vector<float> ones(count, 1.0f);
      DeviceAllocation grown(count * sizeof(float));
      SLIDESPARSE_CHECK_CUDA(
          cudaMemcpy(grown.get(), ones.data(), grown.bytes(), cudaMemcpyHostToDevice));
      unit_scales_ = std::move(grown);
    }
    const auto* units = static_cast<const float*>(unit_scales_.get());
    desc_.point_scales_at(units, units);
  }

  void launch(const LtPlan& plan, const void* x, void* acc, cudaStream_t stream) const {
    const std::int32_t alpha_i = 1, beta_i = 0;
    const float alpha_f = 1.0f, beta_f = 0.0f;
    const bool integer_scale = types_.scale == CUDA_R_32I;
    const void* alpha = integer_scale ? static_cast<const void*>(&alpha_i) : &alpha_f;
    const void* beta = integer_scale ? static_cast<const void*>(&beta_i) : &beta_f;
    SLIDESPARSE_CHECK_CUBLAS(cublasLtMatmul(
        ctx_.cublaslt, desc_.get(), alpha, weight_.get(), w_layout_.get(), x, plan.x.get(), beta,
        acc, plan.acc.get(), acc, plan.acc.get(), &plan.algo,
        plan.workspace_bytes ? ctx_.workspace.get() : nullptr, plan.workspace_bytes, stream));
  }

  GemmContext::Impl& ctx_;
  GemmBackendKind kind_;
  Precision precision_;
  std::int64_t n_, k_;
  LtTypes types_;
  DeviceAllocation weight_;
  LtMatmulDesc desc_;
  LtLayout w_layout_;             // W as [K×N], ld K
  const float* bias_;             // fused: the caller's float bias, or null ...
  DeviceAllocation bias_bf16_;    // ... and the BF16 copy the epilogue adds
  DeviceAllocation unit_scales_;  // fused: ones for planning and search
  gemm_detail::PlanCache<LtPlan> plans_{
      [this] { return label(); },
      [this](std::int64_t m, const GemmAlgo& algo) { return build_plan(m, algo); }};
};

}  // namespace

std::unique_ptr<Gemm> make_cublaslt_gemm(GemmContext& ctx, Precision precision, std::int64_t n,
                                         std::int64_t k, const void* w_device) {
  gemm_detail::check_construction(ctx, GemmBackendKind::CublasLtDense, precision, n, k, w_device);
  return std::make_unique<CublasLtGemm>(ctx, GemmBackendKind::CublasLtDense, precision, n, k,
                                        w_device, nullptr);
}

// Outer-vector scaling appeared in cuBLAS 12.9 and is documented for cc 9.0 only (Blackwell
// takes block scales instead).
constexpr int kOuterVectorScalingVersion = 120900;

std::unique_ptr<Gemm> make_cublaslt_fused_gemm(GemmContext& ctx, Precision precision,
                                               std::int64_t n, std::int64_t k, const void* w_device,
                                               const float* bias_device) {
  const GemmBackendKind kind = GemmBackendKind::CublasLtFused;
  const std::string label = gemm_detail::gemm_label(kind, precision, n, k);
  gemm_requirements(precision, kind);  // FP8 only: InvalidArgument otherwise
  if (ctx.cc_major() != 9 || ctx.cc_minor() != 0)
    throw DeviceError(label +
                      ": cuBLASLt's outer-vector (per-token × per-channel) FP8 scaling runs on "
                      "cc 9.0 (H100/H200) only; this GPU is cc " +
                      std::to_string(ctx.cc_major()) + "." + std::to_string(ctx.cc_minor()));
  if (cublaslt_version() < kOuterVectorScalingVersion)
    throw DeviceError(label + ": cuBLASLt " + std::to_string(cublaslt_version()) +
                      " has no outer-vector scaling (needs " +
                      std::to_string(kOuterVectorScalingVersion) + " or newer)");
  gemm_detail::check_construction(ctx, kind, precision, n, k, w_device);
  return std::make_unique<CublasLtGemm>(ctx, kind, precision, n, k, w_device, bias_device);
}

}  // namespace slidesparse
