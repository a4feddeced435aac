// The (2N-2):2N sparsity family (DESIGN.md §2): a pattern is named by its group
// length L = 2N and keeps at most L-2 non-zeros in every group of L weights along K.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slidesparse {

class Pattern {
 public:
  static constexpr int kMinLength = 4;
  static constexpr int kMaxLength = 16;

  // Accepts "6:8" (non-zeros:L), "2_8" (zeros_L), "2_inf", "inf", "dense" (L = ∞).
  // Anything else ("3:8", "2_5", "0_4", "8:8", "2_18") throws InvalidArgument.
  static Pattern parse(const std::string& text);
  static Pattern from_length(int length);  // L in {4, 6, ..., 16}
  static Pattern infinite();               // L = ∞: dense lifted to 2K
  // Every pattern of the family, 2_4 ... 2_16 then 2_inf.
  static std::vector<Pattern> all();

  bool is_infinite() const { return length_ == 0; }
  // L; throws for the infinite pattern (it has no group).
  int length() const;
  // Windows of width 4 at stride 2 inside one group: N-1 = L/2-1.
  int windows_per_group() const;
  // Slid values per group: 4(N-1).
  int slid_group_width() const;
  // K expansion γ = 2(L-2)/L (2 for L = ∞).
  double gamma() const;
  // Theoretical speedup over dense L/(L-2) (1 for L = ∞).
  double speedup_bound() const;

  // K rounded up to a whole number of groups (to an even K for L = ∞).
  std::int64_t k_padded(std::int64_t k) const;
  // Width of the slid row: γ·K_pad.
  std::int64_t k_slide(std::int64_t k) const;

  std::string paper_name() const;  // "6:8", "2:4", "dense" for ∞
  std::string zeros_name() const;  // "2_8", "2_4", "2_inf"
  // Both spellings, for reports: "6:8 (2_8)".
  std::string display_name() const;

  bool operator==(const Pattern& o) const { return length_ == o.length_; }
  bool operator!=(const Pattern& o) const { return length_ != o.length_; }

 private:
  explicit Pattern(int length) : length_(length) {}
  int length_;  // 0 means ∞
};

// Source column of slid column s (DESIGN.md §4), or -1 where s reads padding
// (k(s) >= K). This one map drives both weight sliding and activation lifting.
std::int64_t lift_source_column(std::int64_t s, const Pattern& pattern, std::int64_t k);

}  // namespace slidesparse
