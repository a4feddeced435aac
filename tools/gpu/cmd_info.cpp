// `slidesparse info`: what this GPU and these libraries can run, and where results go.
#include <cstdio>

#include "gpu_commands.hpp"
#include "gpu_common.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/runner/attention_cudnn.hpp"

namespace slidesparse::cli {

void add_info_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("info", "Show the GPU, library versions and supported paths");
  cmd->callback([]() {
    std::string why;
    if (!cuda_device_available(&why)) throw DeviceError("no CUDA device: " + why);
    const DeviceInfo d = query_device();
    std::printf("GPU                 %s\n", d.name.c_str());
    std::printf("compute capability  %d.%d (%d SMs, %.0f MHz max)\n", d.cc_major, d.cc_minor,
                d.sm_count, d.clock_khz / 1000.0);
    std::printf("memory              %.1f GiB, L2 %.0f MiB\n",
                static_cast<double>(d.memory_bytes) / (1ull << 30),
                static_cast<double>(d.l2_bytes) / (1ull << 20));
    std::printf("driver              %d (CUDA %d.%d)\n", d.driver_version, d.driver_version / 1000,
                (d.driver_version % 1000) / 10);
    std::printf("CUDA runtime        %d.%d\n", d.runtime_version / 1000,
                (d.runtime_version % 1000) / 10);
    std::printf("cuBLASLt            %d\n", cublaslt_version());
    std::printf("cuSPARSELt          %d\n", cusparselt_version());
    const bool cc90 = d.cc_major == 9 && d.cc_minor == 0;
    std::printf("CUTLASS 2:4 GEMM    %s\n",
                !cutlass_sparse_available() ? "not built (no CUTLASS headers or no sm_90a target)"
                : cc90                      ? "yes (sm_90a, INT8/FP8, fused dequantization)"
                                            : "built for sm_90a, needs cc 9.0");
    std::printf("prefill attention   %s\n", runner::cudnn_attention_description().c_str());
    const bool sparse = d.cc_major >= 8;
    std::printf("2:4 sparse tensor cores  %s\n", sparse ? "yes" : "no (needs cc 8.0+)");
    for (Precision p : {Precision::INT8, Precision::FP8, Precision::BF16, Precision::FP16}) {
      const std::string reason = precision_unsupported_reason(d, p);
      std::printf("%-5s  %-44s  results: %s/\n", precision_name(p),
                  reason.empty() ? "dense + sparse" : ("skipped: " + reason).c_str(),
                  result_folder_name(d, p).c_str());
    }
  });
}

}  // namespace slidesparse::cli
