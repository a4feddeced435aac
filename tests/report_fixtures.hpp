// Shared by the report tests: where the result-file fixtures live, and reading a written file.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace slidesparse::pipeline::test {

inline const std::string kData = std::string(SLIDESPARSE_TEST_DATA_DIR) + "/pipeline";
// The repository root (scripts/plot_results.py, docs/results).
inline const std::string kRepo =
    std::filesystem::path(SLIDESPARSE_TEST_DATA_DIR).parent_path().parent_path().string();

inline std::string read(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace slidesparse::pipeline::test
