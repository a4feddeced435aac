// One prepared launch of any of our CUTLASS GEMMs with the dequantizing epilogue (the 2:4 one,
// its lifting variant, the dense counterpart): the CUTLASS arguments are built by the caller
// for one M; the kernel parameters (TMA descriptors) on the first run and again only when a
// pointer changes. Included only by the .cu files of src/cutlass.
#pragma once

#include <cutlass/util/packed_stride.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "cutlass_dequantize_epilogue.hpp"
#include "cutlass_sparse_kernels.hpp"

namespace slidesparse::cutlass_epilogue {

// G: the kernel's bundle of types (Adapter, Kernel, ElementB, ElementD, kZeroWorkspaceEachRun).
template <class G>
class FusedLaunch final : public cutlass_sparse::Launch {
 public:
  using Arguments = typename G::Adapter::Arguments;

  // `args` describe the shape with null data pointers; `gemm` and `shape` name it in messages.
  FusedLaunch(const Arguments& args, const char* gemm, std::string shape)
      : args_(args), gemm_(gemm), shape_(std::move(shape)) {
    const cutlass::Status status = G::Adapter::can_implement(args_);
    if (status != cutlass::Status::kSuccess)
      throw DeviceError(std::string(gemm_) + " cannot run " + shape_ + ": " +
                        cutlassGetStatusString(status));
    workspace_bytes_ = G::Adapter::get_workspace_size(args_);
  }

  std::size_t workspace_bytes() const override { return workspace_bytes_; }

  void run(const cutlass_sparse::LaunchPointers& pointers, cudaStream_t stream) override {
    if (!initialized_ || pointers != last_) {
      initialized_ = false;
      args_.mainloop.ptr_B = static_cast<const typename G::ElementB*>(pointers.x);
      args_.epilogue.ptr_D = static_cast<typename G::ElementD*>(pointers.y);
      args_.epilogue.thread = dequantize_arguments<decltype(args_.epilogue.thread)>(
          pointers.scale_x, pointers.scale_w, pointers.bias);
      check(adapter_.initialize(args_, pointers.workspace, stream), "initialize");
      last_ = pointers;
      initialized_ = true;
    } else if constexpr (G::kZeroWorkspaceEachRun) {
      check(G::Kernel::initialize_workspace(args_, pointers.workspace, stream), "zero workspace");
    }
    check(adapter_.run(stream), "launch");
  }

 private:
  // The message names the shape; built only on failure (run() is the hot path).
  void check(cutlass::Status status, const char* what) const {
    if (status != cutlass::Status::kSuccess)
      check_status(status, gemm_, std::string(what) + " at " + shape_);
  }

  Arguments args_;
  typename G::Adapter adapter_;
  const char* gemm_;
  std::size_t workspace_bytes_ = 0;
  std::string shape_;  // "N=… K=… M=…" for messages
  cutlass_sparse::LaunchPointers last_;
  bool initialized_ = false;
};

// The epilogue's part of one launch's arguments (no C; D = Y [m, n] row-major, its pointer set
// by FusedLaunch) and the GPU's SM count.
template <class G>
void set_output(typename G::Adapter::Arguments& args, int n, int m, int device) {
  using StrideD = typename G::Kernel::StrideD;
  const StrideD stride_d = cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(n, m, 1));
  args.epilogue.ptr_C = nullptr;
  args.epilogue.dC = stride_d;
  args.epilogue.ptr_D = nullptr;
  args.epilogue.dD = stride_d;
  args.hw_info = hardware_info(device);
}

// The arguments of one launch of a 2:4 GEMM (G: the sparse or the lifting bundle) at M tokens,
// X with rows of x_ld elements, and null data pointers (FusedLaunch sets them).
template <class G>
typename G::Adapter::Arguments sparse_arguments(const char* gemm, std::int64_t n, std::int64_t k,
                                                std::int64_t m, std::int64_t x_ld,
                                                const void* values, const void* metadata,
                                                int device) {
  using StrideB = typename G::Kernel::StrideB;
  const int n_int = to_int(n, gemm, "N"), k_int = to_int(k, gemm, "K");
  const int m_int = to_int(m, gemm, "M"), x_ld_int = to_int(x_ld, gemm, "X's row stride");
  const ProblemShape problem{n_int, m_int, k_int, 1};
  typename G::Adapter::Arguments args{};
  args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
  args.problem_shape = problem;
  args.mainloop.ptr_A = static_cast<const typename G::ElementA*>(values);
  args.mainloop.layout_a = G::SparseConfig::fill_layoutA(problem);
  args.mainloop.ptr_B = nullptr;
  args.mainloop.dB =
      cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(m_int, x_ld_int, 1));
  args.mainloop.ptr_E = static_cast<const typename G::ElementE*>(metadata);
  args.mainloop.layout_e = G::SparseConfig::fill_layoutE(problem);
  set_output<G>(args, n_int, m_int, device);
  return args;
}

inline std::string shape_label(std::int64_t n, std::int64_t k, std::int64_t m) {
  return "N=" + std::to_string(n) + " K=" + std::to_string(k) + " M=" + std::to_string(m);
}

}  // namespace slidesparse::cutlass_epilogue
