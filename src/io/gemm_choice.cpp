#include "slidesparse/gemm_choice.hpp"

#include <optional>
#include <string>

#include "slidesparse/error.hpp"

namespace slidesparse {

std::size_t fastest_gemm(const TuningDb* tuning, Precision precision,
                         const std::vector<GemmCandidate>& candidates, std::int64_t m) {
  if (candidates.empty()) throw InvalidArgument("fastest_gemm: no candidate GEMMs");
  if (m <= 0) throw InvalidArgument("fastest_gemm: M = " + std::to_string(m) + " is not positive");
  if (!tuning || tuning->stale() || candidates.size() == 1) return 0;
  const std::string precision_key = precision_name(precision);
  const GemmCandidate& first = candidates.front();
  const auto reference =
      tuning->lookup(first.backend, precision_key, first.pattern, first.n, first.k, m);
  if (!reference || !(reference->time_us > 0)) return 0;
  const std::int64_t bucket = reference->m;
  std::size_t best = 0;
  double best_us = reference->time_us;
  for (std::size_t i = 1; i < candidates.size(); ++i) {
    const GemmCandidate& c = candidates[i];
    const auto at_bucket = [&](const std::string& backend) -> std::optional<TuningEntry> {
      if (backend.empty()) return std::nullopt;
      auto entry = tuning->lookup(backend, precision_key, c.pattern, c.n, c.k, bucket);
      if (!entry || entry->m != bucket || !(entry->time_us > 0)) return std::nullopt;
      return entry;
    };
    auto entry = at_bucket(c.backend);
    if (!entry) entry = at_bucket(c.fallback_backend);
    if (!entry) continue;
    if (entry->time_us < best_us) {
      best = i;
      best_us = entry->time_us;
    }
  }
  return best;
}

}  // namespace slidesparse
