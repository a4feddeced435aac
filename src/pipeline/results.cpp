#include "slidesparse/pipeline/results.hpp"

#include <cstdlib>

#include "slidesparse/error.hpp"
#include "slidesparse/pipeline/plan_gemms.hpp"

namespace slidesparse::pipeline {

std::map<std::pair<std::string, std::int64_t>, CaseResult> case_results(const CsvFile& csv) {
  std::map<std::pair<std::string, std::int64_t>, CaseResult> out;
  for (std::size_t row = 0; row < csv.rows(); ++row) {
    const std::string& m_text = csv.at(row, "M");
    char* end = nullptr;
    const long long m = std::strtoll(m_text.c_str(), &end, 10);
    if (m_text.empty() || *end != '\0')
      throw FormatError(csv.path() + ": row " + std::to_string(row + 2) + ": M '" + m_text +
                        "' is not an integer");
    const std::string& status = csv.at(row, "status");
    const std::string& error = csv.at(row, "error");
    const std::string series = csv.has_column("backend") ? e2e_series(csv.at(row, "backend")) : "";
    auto [it, fresh] =
        out.try_emplace({csv.at(row, "pattern") + series, m}, CaseResult{status, error});
    if (!fresh) merge_case_row(it->second, status, error);
  }
  return out;
}

void merge_case_row(CaseResult& r, const std::string& status, const std::string& error) {
  if (r.status == "failed") return;
  if (status == "failed" || (status == "passed" && r.status == "skipped"))
    r = {status, status == "failed" ? error : ""};
}

}  // namespace slidesparse::pipeline
