// The gated activation (optionally followed by BitNet's ffn_sub_norm) fused with the
// quantization of the down projection's input (runner/fused_quantize.hpp).
#include <cstdint>
#include <string>

#include "fused_quantize_kernel.cuh"
#include "slidesparse/runner/fused_quantize.hpp"

namespace slidesparse::runner {
namespace {

using detail::aligned16;
using detail::gated;
using detail::load_floats;
using detail::round_to_bf16;

// act(gate)·up of gate_up [rows, 2·intermediate] rounded to BF16, as gated_activation_kernel
// stores it.
template <Activation A>
struct GatedSource {
  const bf16* gate_up;
  std::int64_t intermediate;

  template <int V>
  __device__ __forceinline__ void load(std::int64_t row, std::int64_t col, float (&f)[V]) const {
    const bf16* gate = gate_up + row * 2 * intermediate + col;
    float u[V];
    load_floats<V>(gate, f);
    load_floats<V>(gate + intermediate, u);
#pragma unroll
    for (int k = 0; k < V; ++k) f[k] = round_to_bf16(gated<A>(f[k], u[k]));
  }
  template <int V>
  __device__ __forceinline__ void reload(std::int64_t row, std::int64_t col, float (&f)[V]) const {
    load<V>(row, col, f);
  }
  __device__ __forceinline__ float at(std::int64_t row, std::int64_t col) const {
    const bf16* gate = gate_up + row * 2 * intermediate + col;
    return round_to_bf16(gated<A>(__bfloat162float(gate[0]), __bfloat162float(gate[intermediate])));
  }
};

void launch_gated(const char* caller, const bf16* gate_up, std::int64_t rows,
                  std::int64_t intermediate, Activation act, const bf16* norm_weight, float eps,
                  const QuantizeTarget& target, cudaStream_t stream) {
  switch (act) {
    case Activation::Silu:
      detail::launch_produce_quantize(caller, GatedSource<Activation::Silu>{gate_up, intermediate},
                                      rows, intermediate, aligned16(gate_up), norm_weight, eps,
                                      target, stream);
      return;
    case Activation::Relu2:
      detail::launch_produce_quantize(caller, GatedSource<Activation::Relu2>{gate_up, intermediate},
                                      rows, intermediate, aligned16(gate_up), norm_weight, eps,
                                      target, stream);
      return;
  }
  throw InvalidArgument(std::string(caller) + ": unknown activation " +
                        std::to_string(static_cast<int>(act)));
}

}  // namespace

void gated_activation_quantize_lift(const bf16* gate_up, std::int64_t rows,
                                    std::int64_t intermediate, Activation act,
                                    const QuantizeTarget& target, cudaStream_t stream) {
  launch_gated("gated_activation_quantize_lift", gate_up, rows, intermediate, act, nullptr, 0.0f,
               target, stream);
}

void gated_activation_rms_norm_quantize_lift(const bf16* gate_up, std::int64_t rows,
                                             std::int64_t intermediate, Activation act,
                                             const bf16* weight, float eps,
                                             const QuantizeTarget& target, cudaStream_t stream) {
  SLIDESPARSE_REQUIRE(weight != nullptr, InvalidArgument,
                      "gated_activation_rms_norm_quantize_lift: null norm weight");
  launch_gated("gated_activation_rms_norm_quantize_lift", gate_up, rows, intermediate, act, weight,
               eps, target, stream);
}

}  // namespace slidesparse::runner
