// Replays a corpus directory through LLVMFuzzerTestOneInput without libFuzzer,
// so CI checks the kept inputs with any compiler. A crash or an escaping
// exception fails the run; a normal return counts as passed.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::size_t passed = 0, failed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1], ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    try {
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++passed;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "FAILED %s: %s\n", entry.path().c_str(), e.what());
      ++failed;
    }
  }
  if (ec) {
    std::fprintf(stderr, "cannot read %s: %s\n", argv[1], ec.message().c_str());
    return 2;
  }
  std::printf("%zu passed, %zu failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
