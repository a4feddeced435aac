// Shared by the GPU tests: skip cleanly where no GPU is visible.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "slidesparse/cuda/device.hpp"

// GTEST_SKIP()s the current test with the runtime's reason when no CUDA device can be used.
#define SLIDESPARSE_REQUIRE_GPU()                                        \
  do {                                                                   \
    std::string slidesparse_why_no_gpu_;                                 \
    if (!::slidesparse::cuda_device_available(&slidesparse_why_no_gpu_)) \
      GTEST_SKIP() << "no CUDA device: " << slidesparse_why_no_gpu_;     \
  } while (0)
