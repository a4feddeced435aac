#include "slidesparse/pattern.hpp"

#include <cctype>

#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {
bool parse_int(const std::string& s, int& out) {
  if (s.empty() || s.size() > 3) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  out = std::stoi(s);
  return true;
}

bool valid_length(int length) {
  return length >= Pattern::kMinLength && length <= Pattern::kMaxLength && length % 2 == 0;
}

[[noreturn]] void bad_pattern(const std::string& text) {
  throw InvalidArgument("invalid sparsity pattern '" + text +
                        "': expected (L-2):L or 2_L with L in {4,6,...,16}, or 2_inf/dense");
}
}  // namespace

Pattern Pattern::parse(const std::string& text) {
  if (text == "2_inf" || text == "inf" || text == "dense") return infinite();
  const auto colon = text.find(':');
  const auto underscore = text.find('_');
  int a = 0, b = 0;
  if (colon != std::string::npos) {
    if (!parse_int(text.substr(0, colon), a) || !parse_int(text.substr(colon + 1), b))
      bad_pattern(text);
    if (!valid_length(b) || a != b - 2) bad_pattern(text);
    return from_length(b);
  }
  if (underscore != std::string::npos) {
    if (!parse_int(text.substr(0, underscore), a) || !parse_int(text.substr(underscore + 1), b))
      bad_pattern(text);
    if (a != 2 || !valid_length(b)) bad_pattern(text);
    return from_length(b);
  }
  bad_pattern(text);
}

Pattern Pattern::from_length(int length) {
  if (!valid_length(length)) bad_pattern(std::to_string(length - 2) + ":" + std::to_string(length));
  return Pattern(length);
}

Pattern Pattern::infinite() { return Pattern(0); }

std::vector<Pattern> Pattern::all() {
  std::vector<Pattern> out;
  for (int l = kMinLength; l <= kMaxLength; l += 2) out.push_back(from_length(l));
  out.push_back(infinite());
  return out;
}

int Pattern::length() const {
  if (is_infinite()) throw InvalidArgument("pattern 2_inf has no finite group length");
  return length_;
}

int Pattern::windows_per_group() const { return length() / 2 - 1; }
int Pattern::slid_group_width() const { return 4 * windows_per_group(); }

double Pattern::gamma() const {
  return is_infinite() ? 2.0 : 2.0 * (length_ - 2) / static_cast<double>(length_);
}

double Pattern::speedup_bound() const {
  return is_infinite() ? 1.0 : length_ / static_cast<double>(length_ - 2);
}

std::int64_t Pattern::k_padded(std::int64_t k) const {
  const std::int64_t unit = is_infinite() ? 2 : length_;
  return (k + unit - 1) / unit * unit;
}

std::int64_t Pattern::k_slide(std::int64_t k) const {
  if (is_infinite()) return 2 * k_padded(k);
  return k_padded(k) / length_ * slid_group_width();
}

std::string Pattern::paper_name() const {
  if (is_infinite()) return "dense";
  return std::to_string(length_ - 2) + ":" + std::to_string(length_);
}

std::string Pattern::zeros_name() const {
  return is_infinite() ? "2_inf" : "2_" + std::to_string(length_);
}

std::string Pattern::display_name() const { return paper_name() + " (" + zeros_name() + ")"; }

std::int64_t lift_source_column(std::int64_t s, const Pattern& pattern, std::int64_t k) {
  std::int64_t source;
  if (pattern.is_infinite()) {
    source = (s / 4) * 2 + s % 4;
  } else {
    const std::int64_t width = pattern.slid_group_width();
    const std::int64_t group = s / width;
    const std::int64_t window = (s % width) / 4;
    source = group * pattern.length() + 2 * window + s % 4;
  }
  return source < k ? source : -1;
}

}  // namespace slidesparse
