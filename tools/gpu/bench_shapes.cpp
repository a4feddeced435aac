#include "bench_shapes.hpp"

#include "slidesparse/presets.hpp"

namespace slidesparse::cli {

std::vector<BenchShape> bench_shapes(const std::vector<std::string>& names) {
  std::vector<BenchShape> shapes;
  for (const auto& name : names) {
    if (name == "square") {
      for (std::int64_t size : {4096, 8192, 16384})
        shapes.push_back({"square", std::to_string(size) + "x" + std::to_string(size), size, size});
      continue;
    }
    const ModelPreset& p = find_preset(name);
    const std::int64_t q = p.heads * p.head_dim;
    const std::int64_t kv = p.kv_heads * p.head_dim;
    shapes.push_back({p.name, "qkv", q + 2 * kv, p.hidden});
    shapes.push_back({p.name, "o", p.hidden, q});
    shapes.push_back({p.name, "gate_up", 2 * p.intermediate, p.hidden});
    shapes.push_back({p.name, "down", p.hidden, p.intermediate});
  }
  return shapes;
}

}  // namespace slidesparse::cli
