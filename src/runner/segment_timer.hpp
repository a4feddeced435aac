// Splits the time of one forward between the linear layers, attention and the rest: an event
// at every boundary, each interval charged to the part that began it. Off, it records nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "slidesparse/cuda/device.hpp"
#include "slidesparse/runner/gpu_model.hpp"

namespace slidesparse::runner {

enum class ForwardPart { Gemm, Attention, Other };

class SegmentTimer {
 public:
  void set_enabled(bool on) { enabled_ = on; }
  bool enabled() const { return enabled_; }

  // The first boundary: what follows is charged to `part`.
  void begin(ForwardPart part, cudaStream_t stream) {
    used_ = 0;
    parts_.clear();
    mark(part, stream);
  }
  void mark(ForwardPart part, cudaStream_t stream) {
    if (!enabled_) return;
    if (used_ == events_.size()) events_.emplace_back();  // grows on the first timed forward
    events_[used_++].record(stream);
    parts_.push_back(part);
  }
  // Records the last boundary, waits for it and sums the intervals.
  GpuTimings finish(cudaStream_t stream) {
    GpuTimings t;
    if (!enabled_ || used_ == 0) return t;
    mark(ForwardPart::Other, stream);
    events_[used_ - 1].synchronize();
    for (std::size_t i = 0; i + 1 < used_; ++i) {
      const double ms = CudaEvent::elapsed_ms(events_[i], events_[i + 1]);
      if (parts_[i] == ForwardPart::Gemm)
        t.gemm_ms += ms;
      else if (parts_[i] == ForwardPart::Attention)
        t.attention_ms += ms;
      else
        t.other_ms += ms;
    }
    return t;
  }

 private:
  bool enabled_ = false;
  std::vector<CudaEvent> events_;
  std::vector<ForwardPart> parts_;
  std::size_t used_ = 0;
};

}  // namespace slidesparse::runner
