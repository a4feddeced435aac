#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/cuda/device.hpp"

namespace slidesparse {
namespace {

TEST(CudaDevice, AvailabilityAnswersWithoutThrowing) {
  std::string why;
  const bool available = cuda_device_available(&why);
  if (available) {
    EXPECT_NO_THROW(query_device(0));
  } else {
    EXPECT_FALSE(why.empty()) << "a missing device must come with a reason";
  }
  EXPECT_EQ(cuda_device_available(nullptr), available);
}

TEST(CudaDevice, ShortNameTakesTheModelToken) {
  const auto short_name = [](const std::string& name) {
    DeviceInfo info;
    info.name = name;
    return gpu_short_name(info);
  };
  EXPECT_EQ(short_name("NVIDIA H100 80GB HBM3"), "H100");
  EXPECT_EQ(short_name("NVIDIA H100 PCIe"), "H100");
  EXPECT_EQ(short_name("NVIDIA H200"), "H200");
  EXPECT_EQ(short_name("NVIDIA B200"), "B200");
  EXPECT_EQ(short_name("NVIDIA A100-SXM4-80GB"), "A100");
  EXPECT_EQ(short_name("NVIDIA A100 80GB PCIe"), "A100");
  EXPECT_EQ(short_name("NVIDIA GeForce RTX 4090"), "RTX4090");
  EXPECT_EQ(short_name("NVIDIA GeForce RTX 5090"), "RTX5090");
  EXPECT_EQ(short_name("NVIDIA RTX A6000"), "RTXA6000");
  EXPECT_EQ(short_name("NVIDIA RTX 6000 Ada Generation"), "RTX6000");
  EXPECT_EQ(short_name("NVIDIA L40S"), "L40S");
  EXPECT_EQ(short_name("NVIDIA GH200 480GB"), "GH200");
  EXPECT_EQ(short_name("Tesla V100-SXM2-16GB"), "V100");
  EXPECT_EQ(short_name("NVIDIA TITAN V"), "TITANV");
  EXPECT_EQ(short_name(""), "GPU");
}

TEST(CudaDevice, Fp8NeedsComputeCapability89) {
  DeviceInfo info;
  info.cc_major = 8;
  info.cc_minor = 0;
  EXPECT_FALSE(supports_fp8(info));
  info.cc_minor = 6;
  EXPECT_FALSE(supports_fp8(info));
  info.cc_minor = 9;
  EXPECT_TRUE(supports_fp8(info));
  info.cc_major = 9;
  info.cc_minor = 0;
  EXPECT_TRUE(supports_fp8(info));
  info.cc_major = 12;
  EXPECT_TRUE(supports_fp8(info));
}

TEST(CudaDevice, CheckMacroThrowsDeviceErrorNamingTheCall) {
  try {
    SLIDESPARSE_CHECK_CUDA(cudaErrorInvalidValue);
    FAIL() << "no exception";
  } catch (const DeviceError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("test_device.cpp:"), std::string::npos) << what;
    EXPECT_NE(what.find("cudaErrorInvalidValue"), std::string::npos) << what;
  }
}

TEST(CudaDevice, QueryDescribesTheGpu) {
  SLIDESPARSE_REQUIRE_GPU();
  const DeviceInfo info = query_device(0);
  EXPECT_FALSE(info.name.empty());
  EXPECT_GE(info.cc_major, 7);
  EXPECT_GT(info.sm_count, 0);
  EXPECT_GT(info.memory_bytes, std::uint64_t{1} << 30);
  EXPECT_GT(info.l2_bytes, 0u);
  EXPECT_GT(info.clock_khz, 0);
  EXPECT_GT(info.driver_version, 0);
  EXPECT_GT(info.runtime_version, 0);
  EXPECT_FALSE(gpu_short_name(info).empty());
  EXPECT_THROW(query_device(1 << 20), DeviceError);
}

TEST(DeviceBuffer, RoundTripsAndMoves) {
  SLIDESPARSE_REQUIRE_GPU();
  std::vector<std::int32_t> host(1000);
  std::iota(host.begin(), host.end(), -500);
  DeviceBuffer<std::int32_t> buffer(host.size());
  EXPECT_EQ(buffer.size(), host.size());
  EXPECT_EQ(buffer.bytes(), host.size() * sizeof(std::int32_t));
  buffer.upload(host.data(), host.size());
  std::vector<std::int32_t> back(host.size(), 0);
  buffer.download(back.data(), back.size());
  EXPECT_EQ(back, host);

  std::vector<std::int32_t> middle(10, 0);
  buffer.download(middle.data(), middle.size(), 495);
  EXPECT_EQ(middle[0], -5);
  EXPECT_EQ(middle[9], 4);
  EXPECT_THROW(buffer.download(middle.data(), middle.size(), 995), InvalidArgument);

  DeviceBuffer<std::int32_t> moved = std::move(buffer);
  EXPECT_EQ(buffer.get(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(buffer.size(), 0u);
  moved.fill_bytes(0xCD);
  moved.download(back.data(), back.size());
  EXPECT_EQ(static_cast<std::uint32_t>(back[0]), 0xCDCDCDCDu);
  moved.fill_zero();
  moved.download(back.data(), back.size());
  EXPECT_EQ(back[999], 0);

  moved = DeviceBuffer<std::int32_t>(7);  // resize by reassignment
  EXPECT_EQ(moved.size(), 7u);
  EXPECT_TRUE(DeviceBuffer<float>().empty());
}

TEST(DeviceBuffer, ImpossibleAllocationThrowsDeviceError) {
  SLIDESPARSE_REQUIRE_GPU();
  EXPECT_THROW(DeviceBuffer<char>(std::size_t{1} << 62), DeviceError);
  DeviceBuffer<char> still_works(16);  // the failed cudaMalloc left no sticky error
  EXPECT_EQ(still_works.size(), 16u);
}

TEST(CudaEvent, TimesAStream) {
  SLIDESPARSE_REQUIRE_GPU();
  CudaStream stream;
  CudaEvent start;
  CudaEvent stop;
  DeviceBuffer<char> buffer(std::size_t{64} << 20);
  start.record(stream.get());
  buffer.fill_zero(stream.get());
  stop.record(stream.get());
  EXPECT_GE(CudaEvent::elapsed_ms(start, stop), 0.0f);
  stream.synchronize();
}

TEST(CopyBandwidth, IsPlausible) {
  SLIDESPARSE_REQUIRE_GPU();
  CudaStream stream;
  const double gbs = measure_copy_bandwidth_gbs(stream.get());
  const DeviceInfo info = query_device(0);
  std::cout << info.name << ": device-to-device copy " << gbs << " GB/s (read + write)\n";
  EXPECT_GT(gbs, 100.0);    // any GPU we target copies faster than this
  EXPECT_LT(gbs, 20000.0);  // and none is this fast: a timing bug
}

}  // namespace
}  // namespace slidesparse
