// The 2:4 sparse path: cuSPARSELt with W as the structured operand. Column-major view (gemm.hpp):
// D[N×M] = op(A)·B with A = W as [K×N] (ld K, op T, 2:4 along K), B = X as [K×M] (ld K, op N):
// orders Col/Col with "TN", the combination INT8 and FP8 kernels accept. W is compressed once;
// descriptors and plans bake M in, so they are built and cached per M.
#include <functional>
#include <limits>
#include <unordered_map>

#include "gemm_internal.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/check.hpp"

namespace slidesparse {
namespace {

using gemm_detail::DeviceAllocation;

constexpr std::uint32_t kAlignmentBytes = 16;  // every pointer we pass is 16-byte aligned

// The cuSPARSELt datatype table for sm_80+/sm_90: INT8 → INT32 with int32 compute, E4M3 → FP32
// with FP32 compute (C is FP32 too), BF16/FP16 → their own type only (FP32 compute).
struct SpTypes {
  cudaDataType_t operand;
  cudaDataType_t output;
  cusparseComputeType compute;
};

SpTypes sp_types(Precision precision) {
  switch (precision) {
    case Precision::INT8:
      return {CUDA_R_8I, CUDA_R_32I, CUSPARSE_COMPUTE_32I};
    case Precision::FP8:
      return {CUDA_R_8F_E4M3, CUDA_R_32F, CUSPARSE_COMPUTE_32F};
    case Precision::BF16:
      return {CUDA_R_16BF, CUDA_R_16BF, CUSPARSE_COMPUTE_32F};
    case Precision::FP16:
      return {CUDA_R_16F, CUDA_R_16F, CUSPARSE_COMPUTE_32F};
  }
  throw InvalidArgument("unknown precision");
}

// The cuSPARSELt objects are 512-byte structs the library may refer to by address (a matmul
// descriptor to its matrix descriptors, a plan to its descriptors), so none of these move.
class SpMatDescriptor {
 public:
  SpMatDescriptor() = default;
  ~SpMatDescriptor() {
    if (live_) cusparseLtMatDescriptorDestroy(&desc_);
  }
  SpMatDescriptor(const SpMatDescriptor&) = delete;
  SpMatDescriptor& operator=(const SpMatDescriptor&) = delete;

  // Column-major [rows × cols], ld = rows.
  void init_dense(const cusparseLtHandle_t* handle, std::int64_t rows, std::int64_t cols,
                  cudaDataType_t type) {
    SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtDenseDescriptorInit(
        handle, &desc_, rows, cols, rows, kAlignmentBytes, type, CUSPARSE_ORDER_COL));
    live_ = true;
  }
  void init_structured(const cusparseLtHandle_t* handle, std::int64_t rows, std::int64_t cols,
                       cudaDataType_t type) {
    SLIDESPARSE_CHECK_CUSPARSELT(
        cusparseLtStructuredDescriptorInit(handle, &desc_, rows, cols, rows, kAlignmentBytes, type,
                                           CUSPARSE_ORDER_COL, CUSPARSELT_SPARSITY_50_PERCENT));
    live_ = true;
  }
  const cusparseLtMatDescriptor_t* get() const { return &desc_; }

 private:
  cusparseLtMatDescriptor_t desc_{};
  bool live_ = false;
};

class SpAlgSelection {
 public:
  SpAlgSelection() = default;
  ~SpAlgSelection() {
    if (live_) cusparseLtMatmulAlgSelectionDestroy(&selection_);
  }
  SpAlgSelection(const SpAlgSelection&) = delete;
  SpAlgSelection& operator=(const SpAlgSelection&) = delete;

  void init(const cusparseLtHandle_t* handle, const cusparseLtMatmulDescriptor_t* matmul) {
    SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtMatmulAlgSelectionInit(handle, &selection_, matmul,
                                                                  CUSPARSELT_MATMUL_ALG_DEFAULT));
    live_ = true;
  }
  template <typename T>
  void set(const cusparseLtHandle_t* handle, cusparseLtMatmulAlgAttribute_t attribute, T value) {
    SLIDESPARSE_CHECK_CUSPARSELT(
        cusparseLtMatmulAlgSetAttribute(handle, &selection_, attribute, &value, sizeof value));
  }
  int max_algo_id(const cusparseLtHandle_t* handle) const {
    int max_id = -1;
    SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtMatmulAlgGetAttribute(
        handle, &selection_, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, &max_id, sizeof max_id));
    return max_id;
  }
  const cusparseLtMatmulAlgSelection_t* get() const { return &selection_; }

 private:
  cusparseLtMatmulAlgSelection_t selection_{};
  bool live_ = false;
};

class SpPlanHandle {
 public:
  SpPlanHandle() = default;
  ~SpPlanHandle() {
    if (live_) cusparseLtMatmulPlanDestroy(&plan_);
  }
  SpPlanHandle(const SpPlanHandle&) = delete;
  SpPlanHandle& operator=(const SpPlanHandle&) = delete;

  void init(const cusparseLtHandle_t* handle, const cusparseLtMatmulDescriptor_t* matmul,
            const cusparseLtMatmulAlgSelection_t* selection) {
    SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtMatmulPlanInit(handle, &plan_, matmul, selection));
    live_ = true;
  }
  const cusparseLtMatmulPlan_t* get() const { return &plan_; }

 private:
  cusparseLtMatmulPlan_t plan_{};
  bool live_ = false;
};

// Everything that depends on M. Members are destroyed in reverse order: plan, selection,
// matmul descriptor (cuSPARSELt has no destroy call for it), then the matrix descriptors.
struct SpPlan {
  std::int64_t m_gemm = 0;  // M rounded up to the library's multiple
  SpMatDescriptor x;        // [K×m_gemm]
  SpMatDescriptor acc;      // [N×m_gemm]
  cusparseLtMatmulDescriptor_t matmul{};
  SpAlgSelection selection;
  SpPlanHandle plan;
  std::size_t workspace_bytes = 0;
  GemmAlgo choice;
};

class CusparseLtGemm final : public Gemm {
 public:
  CusparseLtGemm(GemmContext& ctx, Precision precision, std::int64_t n, std::int64_t k,
                 const void* w_device)
      : ctx_(ctx.impl()),
        handle_(ctx_.cusparselt()),
        precision_(precision),
        n_(n),
        k_(k),
        types_(sp_types(precision)),
        m_multiple_(gemm_requirements(precision, kind()).m_multiple) {
    weight_.init_structured(handle_, k, n, types_.operand);
    check_two_to_four(w_device);
    std::size_t compressed_bytes = 0, buffer_bytes = 0;
    SLIDESPARSE_CHECK_CUSPARSELT(
        cusparseLtSpMMACompressedSize2(handle_, weight_.get(), &compressed_bytes, &buffer_bytes));
    compressed_ = DeviceAllocation(compressed_bytes + kCompressedSlackBytes);
    const DeviceAllocation buffer(buffer_bytes);
    SLIDESPARSE_CHECK_CUSPARSELT(
        cusparseLtSpMMACompress2(handle_, weight_.get(), 1, CUSPARSE_OPERATION_TRANSPOSE, w_device,
                                 compressed_.get(), buffer.get(), nullptr));
    SLIDESPARSE_CHECK_CUDA(
        cudaDeviceSynchronize());  // before the buffer goes, and w_device with it
  }

  GemmBackendKind kind() const override { return GemmBackendKind::CusparseLt; }
  Precision precision() const override { return precision_; }
  std::int64_t n() const override { return n_; }
  std::int64_t k() const override { return k_; }
  DType output_type() const override { return gemm_output_type(precision_, kind()); }

  void prepare(std::int64_t m, const GemmAlgo& algo) override { plans_.prepare(m, algo); }

  void run(const void* x, void* acc, std::int64_t m, cudaStream_t stream) override {
    gemm_detail::check_run_arguments(kind(), x, acc, m);
    auto& plan = plans_.for_run(m);
    launch(plan, x, acc, m, stream);
  }

  std::vector<AlgoTiming> search(std::int64_t m, const void* x, void* acc, cudaStream_t stream,
                                 const SearchOptions& options) override {
    gemm_detail::check_run_arguments(kind(), x, acc, m);
    gemm_detail::check_search_options(options);
    gemm_detail::DeviceAllocation* flush = options.flush_l2 ? ctx_.l2_flush() : nullptr;
    std::vector<AlgoTiming> timings;
    gemm_detail::OutputSample reference(m, n_, output_type()), sample(m, n_, output_type());
    int max_id = -1;
    try {
      const auto probe = build_plan(m, GemmAlgo{});
      max_id = probe->selection.max_algo_id(handle_);
      launch(*probe, x, acc, m, stream);
      reference.capture(acc, stream);
    } catch (const Error& e) {
      timings.push_back({GemmAlgo{}, std::numeric_limits<double>::infinity(), false, e.what()});
      return timings;
    }
    // Returns whether the candidate's plan could be built (it may still fail to run).
    const auto time_candidate = [&](const GemmAlgo& candidate) {
      AlgoTiming timing{candidate, std::numeric_limits<double>::infinity(), false, ""};
      bool built = false;
      try {
        const auto plan = build_plan(m, candidate);
        built = true;
        gemm_detail::time_and_check(
            timing, [&] { launch(*plan, x, acc, m, stream); }, acc, stream, options, flush, sample,
            reference);
      } catch (const Error& e) {
        timing.error = e.what();
      }
      timings.push_back(std::move(timing));
      return built;
    };

    time_candidate(GemmAlgo{});  // the library's own choice, as a reference point
    // The documented id range is [0, CONFIG_MAX_ID]; an id the library rejects is recorded.
    for (int id = 0; id <= max_id; ++id) {
      for (int split : gemm_detail::split_k_factors(options, k_)) {
        if (split == 1) {
          if (!time_candidate(GemmAlgo{id, 1, 0, -1, {}})) break;  // no plan for this id at all
          continue;
        }
        for (int mode : {CUSPARSELT_SPLIT_K_MODE_ONE_KERNEL, CUSPARSELT_SPLIT_K_MODE_TWO_KERNELS})
          time_candidate(GemmAlgo{id, split, mode, -1, {}});
      }
    }
    // Every candidate read the one compressed copy of W: it must still give the first answer.
    launch(*build_plan(m, GemmAlgo{}), x, acc, m, stream);
    sample.capture(acc, stream);
    const std::string changed = sample.mismatch(reference);
    if (!changed.empty())
      throw DeviceError(label() + ": the compressed weights changed during the search (" + changed +
                        ")");
    gemm_detail::sort_timings(timings);
    if (!timings.empty() && timings.front().ok) prepare(m, timings.front().algo);
    return timings;
  }

  std::optional<GemmAlgo> prepared_algo(std::int64_t m) const override { return plans_.algo(m); }

  std::size_t cached_plans() const override { return plans_.size(); }

 private:
  std::string label() const { return gemm_detail::gemm_label(kind(), precision_, n_, k_); }

  // A window of 4 along K with 3 or 4 non-zeros would be compressed silently into wrong values.
  void check_two_to_four(const void* w_device) const {
    const DeviceAllocation valid(sizeof(int));
    // The check only writes when it finds a bad group: start from 0, not from whatever the
    // recycled allocation held (seen on the H100 as false alarms on the second layer built).
    SLIDESPARSE_CHECK_CUDA(cudaMemset(valid.get(), 0, sizeof(int)));
    SLIDESPARSE_CHECK_CUSPARSELT(
        cusparseLtSpMMAPruneCheck2(handle_, weight_.get(), 1, CUSPARSE_OPERATION_TRANSPOSE,
                                   w_device, static_cast<int*>(valid.get()), nullptr));
    int invalid = 1;
    SLIDESPARSE_CHECK_CUDA(
        cudaMemcpy(&invalid, valid.get(), sizeof invalid, cudaMemcpyDeviceToHost));
    if (invalid != 0)
      throw InvalidArgument(label() +
                            ": the weights are not 2:4 along K (a group of 4 holds more than 2 "
                            "non-zeros); prune or slide them first");
  }

  // compute-sanitizer on the H100 (cuSPARSELt 0.8.0, INT8, N = K = 64) caught the sm90 kernel
  // reading a whole K tile of metadata, 512 bytes past the size cusparseLtSpMMACompressedSize2
  // reports. The slack keeps such reads inside our allocation.
  static constexpr std::size_t kCompressedSlackBytes = std::size_t{64} << 10;

  std::unique_ptr<SpPlan> build_plan(std::int64_t m, const GemmAlgo& algo) {
    auto plan = std::make_unique<SpPlan>();
    plan->m_gemm = gemm_detail::round_up(m, m_multiple_);
    plan->x.init_dense(handle_, k_, plan->m_gemm, types_.operand);
    plan->acc.init_dense(handle_, n_, plan->m_gemm, types_.output);
    SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtMatmulDescriptorInit(
        handle_, &plan->matmul, CUSPARSE_OPERATION_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE,
        weight_.get(), plan->x.get(), plan->acc.get(), plan->acc.get(), types_.compute));
    plan->selection.init(handle_, &plan->matmul);
    if (algo.algo_id >= 0) {
      plan->selection.set<int>(handle_, CUSPARSELT_MATMUL_ALG_CONFIG_ID, algo.algo_id);
      plan->selection.set<int>(handle_, CUSPARSELT_MATMUL_SPLIT_K, algo.split_k);
      if (algo.split_k > 1 && algo.split_k_mode != 0)
        plan->selection.set<cusparseLtSplitKMode_t>(
            handle_, CUSPARSELT_MATMUL_SPLIT_K_MODE,
            static_cast<cusparseLtSplitKMode_t>(algo.split_k_mode));
    }
    plan->plan.init(handle_, &plan->matmul, plan->selection.get());
    SLIDESPARSE_CHECK_CUSPARSELT(
        cusparseLtMatmulGetWorkspace(handle_, plan->plan.get(), &plan->workspace_bytes));
    ctx_.reserve_workspace(plan->workspace_bytes);
    if (plan->m_gemm != m) {
      gemm_detail::ensure_capacity(x_stage_, static_cast<std::size_t>(plan->m_gemm * k_) *
                                                 dtype_size(precision_storage(precision_)));
      gemm_detail::ensure_capacity(
          acc_stage_, static_cast<std::size_t>(plan->m_gemm * n_) * dtype_size(output_type()));
    }
    plan->choice = algo;
    return plan;
  }

  // Row-major [M, K] and [M, N] are column-major [K×M] and [N×M]: the first M rows of a staging
  // buffer are its first M·K (M·N) elements, so staging is one copy each way; the rows beyond M
  // only feed output rows that are dropped.
  void launch(const SpPlan& plan, const void* x, void* acc, std::int64_t m,
              cudaStream_t stream) const {
    const bool staged = plan.m_gemm != m;
    const std::size_t x_bytes =
        static_cast<std::size_t>(m * k_) * dtype_size(precision_storage(precision_));
    const std::size_t acc_bytes = static_cast<std::size_t>(m * n_) * dtype_size(output_type());
    if (staged)
      SLIDESPARSE_CHECK_CUDA(
          cudaMemcpyAsync(x_stage_.get(), x, x_bytes, cudaMemcpyDeviceToDevice, stream));
    const void* b = staged ? x_stage_.get() : x;
    void* d = staged ? acc_stage_.get() : acc;
    const float alpha = 1.0f, beta = 0.0f;
    cudaStream_t streams[] = {stream};
    SLIDESPARSE_CHECK_CUSPARSELT(
        cusparseLtMatmul(handle_, plan.plan.get(), &alpha, compressed_.get(), b, &beta, d, d,
                         plan.workspace_bytes ? ctx_.workspace.get() : nullptr, streams, 1));
    if (staged)
      SLIDESPARSE_CHECK_CUDA(
          cudaMemcpyAsync(acc, acc_stage_.get(), acc_bytes, cudaMemcpyDeviceToDevice, stream));
  }

  GemmContext::Impl& ctx_;
  const cusparseLtHandle_t* handle_;
  Precision precision_;
  std::int64_t n_, k_;
  SpTypes types_;
  std::int64_t m_multiple_;
  SpMatDescriptor weight_;  // W as [K×N], ld K, structured
  DeviceAllocation compressed_;
  DeviceAllocation x_stage_, acc_stage_;  // for an M that is not a multiple of m_multiple_
  gemm_detail::PlanCache<SpPlan> plans_{
      [this] { return label(); },
      [this](std::int64_t m, const GemmAlgo& algo) { return build_plan(m, algo); }};
};

}  // namespace

std::unique_ptr<Gemm> make_cusparselt_gemm(GemmContext& ctx, Precision precision, std::int64_t n,
                                           std::int64_t k, const void* w_device) {
  gemm_detail::check_construction(ctx, GemmBackendKind::CusparseLt, precision, n, k, w_device);
  return std::make_unique<CusparseLtGemm>(ctx, precision, n, k, w_device);
}

}  // namespace slidesparse
