// The shared half of the GEMM room: names, requirements, algorithm records, the context,
// device memory, candidate timing and library versions.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "gemm_internal.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/check.hpp"
#include "slidesparse/numeric.hpp"

namespace slidesparse {

namespace {
std::atomic<std::int64_t> g_device_allocations{0};

// Per precision and backend: the multiples (M, N, K) and the accumulator type. The rules behind
// the numbers are in gemm.hpp next to GemmRequirements.
struct BackendRule {
  Precision precision;
  GemmBackendKind kind;
  GemmRequirements requirements;
  DType output;
};
constexpr BackendRule kRules[] = {
    {Precision::INT8, GemmBackendKind::CublasLtDense, {1, 4, 4}, DType::I32},
    {Precision::FP8, GemmBackendKind::CublasLtDense, {1, 16, 16}, DType::F32},
    {Precision::BF16, GemmBackendKind::CublasLtDense, {1, 8, 8}, DType::F32},
    {Precision::FP16, GemmBackendKind::CublasLtDense, {1, 8, 8}, DType::F32},
    {Precision::INT8, GemmBackendKind::CusparseLt, {16, 32, 32}, DType::I32},
    {Precision::FP8, GemmBackendKind::CusparseLt, {16, 32, 32}, DType::F32},
    {Precision::BF16, GemmBackendKind::CusparseLt, {8, 16, 16}, DType::BF16},
    {Precision::FP16, GemmBackendKind::CusparseLt, {8, 16, 16}, DType::F16},
    {Precision::INT8, GemmBackendKind::CutlassSparse, {1, 32, 32}, DType::BF16},
    {Precision::FP8, GemmBackendKind::CutlassSparse, {1, 32, 32}, DType::BF16},
    {Precision::INT8, GemmBackendKind::CutlassSparseLift, {1, 32, 32}, DType::BF16},
    {Precision::FP8, GemmBackendKind::CutlassSparseLift, {1, 32, 32}, DType::BF16},
    {Precision::INT8, GemmBackendKind::CutlassDense, {1, 8, 16}, DType::BF16},
    {Precision::FP8, GemmBackendKind::CutlassDense, {1, 8, 16}, DType::BF16},
    {Precision::FP8, GemmBackendKind::CublasLtFused, {1, 16, 16}, DType::BF16},
};

const BackendRule& rule(Precision precision, GemmBackendKind kind) {
  std::string runs;  // the precisions this backend has rules for, for the message
  for (const auto& r : kRules) {
    if (r.kind != kind) continue;
    if (r.precision == precision) return r;
    runs += std::string(runs.empty() ? "" : ", ") + precision_name(r.precision);
  }
  throw InvalidArgument(std::string("the ") + backend_name(kind) + " GEMM backend does not run " +
                        precision_name(precision) + " (it runs " + runs + ")");
}

int json_int(const nlohmann::json& j, const char* field, int fallback) {
  if (!j.contains(field)) return fallback;
  const auto& v = j.at(field);
  if (!v.is_number_integer())
    throw FormatError(std::string("GEMM algorithm field '") + field + "' must be an integer, got " +
                      v.dump());
  return v.get<int>();
}

std::string hex_word(std::uint64_t word) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "0x%016llx", static_cast<unsigned long long>(word));
  return buffer;
}

std::uint64_t parse_hex_word(const nlohmann::json& v) {
  const std::string text = v.is_string() ? v.get<std::string>() : std::string();
  std::size_t used = 0;
  std::uint64_t word = 0;
  try {
    word = std::stoull(text, &used, 16);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size())
    throw FormatError("GEMM algorithm field 'cublaslt_algo' must hold hex strings, got " +
                      v.dump());
  return word;
}
}  // namespace

const char* backend_name(GemmBackendKind kind) {
  switch (kind) {
    case GemmBackendKind::CublasLtDense:
      return "cublaslt";
    case GemmBackendKind::CusparseLt:
      return "cusparselt";
    case GemmBackendKind::CutlassSparse:
      return "cutlass";
    case GemmBackendKind::CutlassSparseLift:
      return "cutlass_lift";
    case GemmBackendKind::CutlassDense:
      return "cutlass_dense";
    case GemmBackendKind::CublasLtFused:
      return "cublaslt_fused";
  }
  return "?";
}

GemmBackendKind parse_backend(const std::string& name) {
  if (name == "cublaslt") return GemmBackendKind::CublasLtDense;
  if (name == "cusparselt") return GemmBackendKind::CusparseLt;
  if (name == "cutlass") return GemmBackendKind::CutlassSparse;
  if (name == "cutlass_lift") return GemmBackendKind::CutlassSparseLift;
  if (name == "cutlass_dense") return GemmBackendKind::CutlassDense;
  if (name == "cublaslt_fused") return GemmBackendKind::CublasLtFused;
  throw InvalidArgument("unknown GEMM backend '" + name +
                        "' (expected cublaslt, cublaslt_fused, cusparselt, cutlass, cutlass_lift "
                        "or cutlass_dense)");
}

GemmRequirements gemm_requirements(Precision precision, GemmBackendKind kind) {
  return rule(precision, kind).requirements;
}

DType gemm_output_type(Precision precision, GemmBackendKind kind) {
  return rule(precision, kind).output;
}

// ---- GemmAlgo ----------------------------------------------------------------------------

nlohmann::json GemmAlgo::to_json() const {
  nlohmann::json j = {{"algo_id", algo_id},
                      {"split_k", split_k},
                      {"split_k_mode", split_k_mode},
                      {"heuristic_index", heuristic_index}};
  if (!cublaslt_algo.empty()) {
    nlohmann::json words = nlohmann::json::array();
    for (std::uint64_t w : cublaslt_algo) words.push_back(hex_word(w));
    j["cublaslt_algo"] = words;
  }
  return j;
}

GemmAlgo GemmAlgo::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw FormatError("GEMM algorithm must be a JSON object, got " + j.dump());
  GemmAlgo algo;
  algo.algo_id = json_int(j, "algo_id", algo.algo_id);
  algo.split_k = json_int(j, "split_k", algo.split_k);
  algo.split_k_mode = json_int(j, "split_k_mode", algo.split_k_mode);
  algo.heuristic_index = json_int(j, "heuristic_index", algo.heuristic_index);
  if (j.contains("cublaslt_algo")) {
    const auto& words = j.at("cublaslt_algo");
    if (!words.is_array())
      throw FormatError("GEMM algorithm field 'cublaslt_algo' must be an array, got " +
                        words.dump());
    for (const auto& w : words) algo.cublaslt_algo.push_back(parse_hex_word(w));
  }
  if (algo.split_k < 1)
    throw FormatError("GEMM algorithm split_k must be at least 1, got " +
                      std::to_string(algo.split_k));
  return algo;
}

std::string GemmAlgo::describe() const {
  if (is_default()) return "library default";
  std::ostringstream out;
  out << "algo " << algo_id << ", split-K " << split_k;
  if (split_k_mode != 0) out << " (mode " << split_k_mode << ")";
  if (heuristic_index >= 0) out << ", heuristic #" << heuristic_index;
  return out.str();
}

bool GemmAlgo::operator==(const GemmAlgo& o) const {
  return algo_id == o.algo_id && split_k == o.split_k && split_k_mode == o.split_k_mode &&
         heuristic_index == o.heuristic_index && cublaslt_algo == o.cublaslt_algo;
}

Gemm::~Gemm() = default;

void Gemm::run_dequantized(const void*, const float*, const float*, const float*, void*, DType,
                           std::int64_t, cudaStream_t) {
  throw InvalidArgument(std::string("run_dequantized is not supported by the ") +
                        backend_name(kind()) +
                        " GEMM backend (it writes accumulators: run, then dequantize)");
}

// ---- versions ----------------------------------------------------------------------------

int cublaslt_version() { return static_cast<int>(cublasLtGetVersion()); }

int cusparselt_version() {
  int major = 0, minor = 0, patch = 0;
  SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtGetProperty(MAJOR_VERSION, &major));
  SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtGetProperty(MINOR_VERSION, &minor));
  SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtGetProperty(PATCH_LEVEL, &patch));
  return major * 1000 + minor * 100 + patch;
}

std::string library_versions() {
  return "cuBLASLt " + std::to_string(cublaslt_version()) + ", cuSPARSELt " +
         std::to_string(cusparselt_version());
}

std::int64_t gemm_device_allocations() { return g_device_allocations.load(); }

// ---- GemmContext -------------------------------------------------------------------------

GemmContext::Impl::Impl(std::size_t max_workspace_bytes) : max_workspace(max_workspace_bytes) {
  SLIDESPARSE_CHECK_CUDA(cudaGetDevice(&device));
  SLIDESPARSE_CHECK_CUDA(
      cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, device));
  SLIDESPARSE_CHECK_CUDA(
      cudaDeviceGetAttribute(&cc_minor, cudaDevAttrComputeCapabilityMinor, device));
  int l2 = 0;
  SLIDESPARSE_CHECK_CUDA(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
  l2_bytes = static_cast<std::size_t>(l2);
  SLIDESPARSE_CHECK_CUBLAS(cublasLtCreate(&cublaslt));
}

GemmContext::Impl::~Impl() {
  if (sparse_live_) cusparseLtDestroy(&sparse_handle_);
  cublasLtDestroy(cublaslt);
}

const cusparseLtHandle_t* GemmContext::Impl::cusparselt() {
  if (!sparse_live_) {
    SLIDESPARSE_CHECK_CUSPARSELT(cusparseLtInit(&sparse_handle_));
    sparse_live_ = true;
  }
  return &sparse_handle_;
}

void GemmContext::Impl::reserve_workspace(std::size_t bytes) {
  if (bytes > max_workspace)
    throw DeviceError("GEMM plan needs " + std::to_string(bytes) +
                      " bytes of workspace, the context allows " + std::to_string(max_workspace));
  gemm_detail::ensure_capacity(workspace, bytes);
}

gemm_detail::DeviceAllocation* GemmContext::Impl::l2_flush() {
  gemm_detail::ensure_capacity(l2_flush_, 2 * l2_bytes);
  return &l2_flush_;
}

GemmContext::GemmContext(std::size_t max_workspace_bytes)
    : impl_(std::make_unique<Impl>(max_workspace_bytes)) {}
GemmContext::~GemmContext() = default;

int GemmContext::device() const { return impl_->device; }
int GemmContext::cc_major() const { return impl_->cc_major; }
int GemmContext::cc_minor() const { return impl_->cc_minor; }
std::size_t GemmContext::max_workspace_bytes() const { return impl_->max_workspace; }
std::size_t GemmContext::workspace_bytes() const { return impl_->workspace.bytes(); }

}  // namespace slidesparse

namespace slidesparse::gemm_detail {

// ---- device memory and events ------------------------------------------------------------

DeviceAllocation::DeviceAllocation(std::size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  SLIDESPARSE_CHECK_CUDA(cudaMalloc(&ptr_, bytes));
  ++g_device_allocations;
}

DeviceAllocation::~DeviceAllocation() { reset(); }

DeviceAllocation::DeviceAllocation(DeviceAllocation&& other) noexcept
    : ptr_(other.ptr_), bytes_(other.bytes_) {
  other.ptr_ = nullptr;
  other.bytes_ = 0;
}

DeviceAllocation& DeviceAllocation::operator=(DeviceAllocation&& other) noexcept {
  if (this != &other) {
    reset();
    ptr_ = other.ptr_;
    bytes_ = other.bytes_;
    other.ptr_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void DeviceAllocation::reset() noexcept {
  if (ptr_) cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

void ensure_capacity(DeviceAllocation& buffer, std::size_t bytes) {
  if (buffer.bytes() >= bytes) return;
  buffer = DeviceAllocation();  // free first: the old block may be large
  DeviceAllocation grown(bytes);
  SLIDESPARSE_CHECK_CUDA(cudaMemset(grown.get(), 0, bytes));
  buffer = std::move(grown);
}

CudaEvent::CudaEvent() { SLIDESPARSE_CHECK_CUDA(cudaEventCreate(&event_)); }
CudaEvent::~CudaEvent() { cudaEventDestroy(event_); }

double time_median_us(const std::function<void()>& launch, cudaStream_t stream,
                      const SearchOptions& options, DeviceAllocation* l2_flush) {
  for (int i = 0; i < options.warmup; ++i) launch();
  std::vector<CudaEvent> starts(static_cast<std::size_t>(options.reps));
  std::vector<CudaEvent> stops(static_cast<std::size_t>(options.reps));
  for (std::size_t i = 0; i < starts.size(); ++i) {
    if (l2_flush && l2_flush->bytes() > 0)
      SLIDESPARSE_CHECK_CUDA(
          cudaMemsetAsync(l2_flush->get(), static_cast<int>(i & 0xff), l2_flush->bytes(), stream));
    SLIDESPARSE_CHECK_CUDA(cudaEventRecord(starts[i].get(), stream));
    launch();
    SLIDESPARSE_CHECK_CUDA(cudaEventRecord(stops[i].get(), stream));
  }
  SLIDESPARSE_CHECK_CUDA(cudaStreamSynchronize(stream));
  std::vector<double> us;
  us.reserve(starts.size());
  for (std::size_t i = 0; i < starts.size(); ++i) {
    float ms = 0.0f;
    SLIDESPARSE_CHECK_CUDA(cudaEventElapsedTime(&ms, starts[i].get(), stops[i].get()));
    us.push_back(1000.0 * static_cast<double>(ms));
  }
  std::sort(us.begin(), us.end());
  const std::size_t mid = us.size() / 2;
  return us.size() % 2 ? us[mid] : 0.5 * (us[mid - 1] + us[mid]);
}

// ---- comparing candidates ------------------------------------------------------------------

OutputSample::OutputSample(std::int64_t m, std::int64_t n, DType type)
    : n_(n),
      row_stride_(std::max<std::int64_t>(1, m / 256)),
      rows_((m + row_stride_ - 1) / row_stride_),
      type_(type),
      bytes_(static_cast<std::size_t>(rows_ * n) * dtype_size(type)) {}

void OutputSample::capture(const void* acc, cudaStream_t stream) {
  const std::size_t row_bytes = static_cast<std::size_t>(n_) * dtype_size(type_);
  SLIDESPARSE_CHECK_CUDA(cudaMemcpy2DAsync(
      bytes_.data(), row_bytes, acc, row_bytes * static_cast<std::size_t>(row_stride_), row_bytes,
      static_cast<std::size_t>(rows_), cudaMemcpyDeviceToHost, stream));
  SLIDESPARSE_CHECK_CUDA(cudaStreamSynchronize(stream));
}

namespace {
double sample_value(const std::vector<unsigned char>& bytes, DType type, std::size_t i) {
  switch (type) {
    case DType::I32: {
      std::int32_t v;
      std::memcpy(&v, &bytes[4 * i], 4);
      return v;
    }
    case DType::F32: {
      float v;
      std::memcpy(&v, &bytes[4 * i], 4);
      return v;
    }
    case DType::BF16: {
      std::uint16_t v;
      std::memcpy(&v, &bytes[2 * i], 2);
      return bf16_to_float(v);
    }
    case DType::F16: {
      std::uint16_t v;
      std::memcpy(&v, &bytes[2 * i], 2);
      return fp16_to_float(v);
    }
    default:
      throw InvalidArgument(std::string("no GEMM output of type ") + dtype_name(type));
  }
}
}  // namespace

std::string OutputSample::mismatch(const OutputSample& reference) const {
  const std::size_t count = bytes_.size() / dtype_size(type_);
  if (type_ == DType::I32) {
    for (std::size_t i = 0; i < count; ++i)
      if (sample_value(bytes_, type_, i) != sample_value(reference.bytes_, type_, i))
        return "wrong result: row " +
               std::to_string(static_cast<std::int64_t>(i) / n_ * row_stride_) + " col " +
               std::to_string(static_cast<std::int64_t>(i) % n_) +
               " differs from the library default's";
    return "";
  }
  double diff2 = 0.0, ref2 = 0.0;
  for (std::size_t i = 0; i < count; ++i) {
    const double got = sample_value(bytes_, type_, i),
                 want = sample_value(reference.bytes_, type_, i);
    diff2 += (got - want) * (got - want);
    ref2 += want * want;
  }
  const double relative = std::sqrt(diff2 / std::max(ref2, 1e-300));
  if (std::isfinite(relative) && relative <= 1e-2) return "";
  return "wrong result: relative difference " + std::to_string(relative) +
         " from the library default's output";
}

void time_and_check(AlgoTiming& timing, const std::function<void()>& launch, const void* acc,
                    cudaStream_t stream, const SearchOptions& options, DeviceAllocation* l2_flush,
                    OutputSample& sample, const OutputSample& reference) {
  timing.median_us = time_median_us(launch, stream, options, l2_flush);
  sample.capture(acc, stream);
  timing.error = sample.mismatch(reference);
  timing.ok = timing.error.empty();
}

// ---- checks shared by the backends -------------------------------------------------------

std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

std::string gemm_label(GemmBackendKind kind, Precision precision, std::int64_t n, std::int64_t k) {
  return std::string(backend_name(kind)) + " " + precision_name(precision) +
         " N=" + std::to_string(n) + " K=" + std::to_string(k);
}

void check_cutlass_construction(const GemmContext& ctx, GemmBackendKind kind, Precision precision,
                                std::int64_t n, std::int64_t k, const void* w_device) {
  const std::string label = gemm_label(kind, precision, n, k);
  if (!cutlass_sparse_available())
    throw DeviceError(label +
                      ": this build has no CUTLASS backend (configure with the CUTLASS headers "
                      "and sm_90a among CMAKE_CUDA_ARCHITECTURES)");
  gemm_requirements(precision, kind);  // INT8 / FP8 only
  if (ctx.cc_major() != 9 || ctx.cc_minor() != 0)
    throw DeviceError(label + ": the " +
                      (kind == GemmBackendKind::CutlassDense ? "CUTLASS dense" : "CUTLASS sparse") +
                      " GEMM is built for sm_90a and runs on cc 9.0 (H100/H200) only; this GPU "
                      "is cc " +
                      std::to_string(ctx.cc_major()) + "." + std::to_string(ctx.cc_minor()));
  check_construction(ctx, kind, precision, n, k, w_device);
}

void check_construction(const GemmContext& ctx, GemmBackendKind kind, Precision precision,
                        std::int64_t n, std::int64_t k, const void* w_device) {
  const GemmRequirements req = gemm_requirements(precision, kind);
  const std::string label = gemm_label(kind, precision, n, k);
  const int cc = ctx.cc_major() * 10 + ctx.cc_minor();
  const std::string gpu =
      "this GPU is cc " + std::to_string(ctx.cc_major()) + "." + std::to_string(ctx.cc_minor());
  // cuSPARSELt runs on cc 8.0 and newer; FP8 kernels (both libraries) need 8.9 or newer.
  if (kind == GemmBackendKind::CusparseLt && cc < 80)
    throw InvalidArgument(label + ": cuSPARSELt needs compute capability 8.0 or newer, " + gpu);
  if (precision == Precision::FP8 && cc < 89)
    throw InvalidArgument(label + ": FP8 needs compute capability 8.9 or newer, " + gpu);
  if (!w_device) throw InvalidArgument(label + ": null weight pointer");
  if (n <= 0 || k <= 0) throw InvalidArgument(label + ": N and K must be positive");
  if (n % req.n_multiple != 0)
    throw InvalidArgument(label + ": N must be a multiple of " + std::to_string(req.n_multiple) +
                          " (pad the weights with zero rows)");
  if (k % req.k_multiple != 0)
    throw InvalidArgument(label + ": K must be a multiple of " + std::to_string(req.k_multiple) +
                          " (pad the weights and activations with zero columns)");
}

void check_run_arguments(GemmBackendKind kind, const void* x, const void* acc, std::int64_t m) {
  if (m <= 0)
    throw InvalidArgument(std::string(backend_name(kind)) +
                          " GEMM called with M = " + std::to_string(m));
  const auto misaligned = [](const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % 16 != 0;
  };
  if (!x || !acc || misaligned(x) || misaligned(acc))
    throw InvalidArgument(std::string(backend_name(kind)) +
                          " GEMM needs non-null, 16-byte aligned X and ACC device pointers");
}

void check_fused_arguments(const std::string& label, const void* x, const float* scale_x,
                           const float* scale_w, const float* bias, const void* y, DType y_type,
                           std::int64_t m) {
  if (m <= 0) throw InvalidArgument(label + ": run_dequantized with M = " + std::to_string(m));
  if (y_type != DType::BF16)
    throw InvalidArgument(label + ": the fused epilogue writes BF16, not " + dtype_name(y_type));
  const auto misaligned = [](const void* p, std::uintptr_t bytes) {
    return reinterpret_cast<std::uintptr_t>(p) % bytes != 0;
  };
  if (!x || !y || misaligned(x, 16) || misaligned(y, 16))
    throw InvalidArgument(label + ": run_dequantized needs non-null, 16-byte aligned X and Y");
  if (!scale_x || !scale_w || misaligned(scale_x, 16) || misaligned(scale_w, 16) ||
      misaligned(bias, 16))
    throw InvalidArgument(label +
                          ": run_dequantized needs non-null, 16-byte aligned scale_x [M] and "
                          "scale_w [N] (and bias [N] when given)");
}

void check_search_options(const SearchOptions& options) {
  if (options.warmup < 0 || options.reps < 1 || options.max_split_k < 1 ||
      options.max_heuristic_results < 1)
    throw InvalidArgument(
        "GEMM search options need warmup >= 0, reps >= 1, max_split_k >= 1, "
        "max_heuristic_results >= 1");
}

std::vector<int> split_k_factors(const SearchOptions& options, std::int64_t k) {
  std::vector<int> factors{1};
  for (int s = 2; s <= options.max_split_k && k / s >= 64; s *= 2) factors.push_back(s);
  return factors;
}

void warn_unprepared_once(bool& warned, const std::string& label, std::int64_t m) {
  if (warned) return;
  warned = true;
  std::fprintf(stderr,
               "slidesparse: %s: no plan prepared for M=%lld, using the library default "
               "(prepare or search during warm-up; said once)\n",
               label.c_str(), static_cast<long long>(m));
}

void sort_timings(std::vector<AlgoTiming>& timings) {
  std::stable_sort(timings.begin(), timings.end(), [](const AlgoTiming& a, const AlgoTiming& b) {
    if (a.ok != b.ok) return a.ok;
    return a.ok && a.median_us < b.median_us;
  });
}

}  // namespace slidesparse::gemm_detail
