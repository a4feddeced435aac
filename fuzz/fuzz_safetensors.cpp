// libFuzzer entry: any byte string is either a valid safetensors file or a
// slidesparse::Error. Any other exception, a crash or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "slidesparse/error.hpp"
#include "slidesparse/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto file = slidesparse::SafetensorsFile::parse(data, size, "fuzz-input");
    // Touch what a reader would: every tensor's bytes and its lookup.
    std::uint64_t checksum = 0;
    for (const auto& t : file.tensors()) {
      if (file.find(t.name) != &t) __builtin_trap();
      if (t.nbytes() > 0) checksum += file.data(t)[0] + file.data(t)[t.nbytes() - 1];
    }
    volatile std::uint64_t sink = checksum;
    (void)sink;
  } catch (const slidesparse::Error&) {
  }
  return 0;
}
