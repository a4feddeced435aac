#include "slidesparse/pipeline/csv.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "files.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::pipeline {

CsvFile CsvFile::read(const std::string& path) { return parse(read_file(path), path); }

CsvFile CsvFile::parse(const std::string& text, const std::string& path) {
  CsvFile csv;
  csv.path_ = path;
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string cell;
  bool quoted = false;
  int line = 1, record_line = 1;
  auto end_record = [&] {
    record.push_back(cell);
    cell.clear();
    const bool blank = record.size() == 1 && record[0].empty();
    if (!blank) {
      if (!records.empty() && record.size() != records.front().size())
        throw FormatError(path + ":" + std::to_string(record_line) + ": " +
                          std::to_string(record.size()) + " cells, the header has " +
                          std::to_string(records.front().size()));
      records.push_back(record);
    }
    record.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n') ++line;
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      record.push_back(cell);
      cell.clear();
    } else if (c == '\n') {
      end_record();
      record_line = ++line;
    } else if (c != '\r') {
      cell += c;
    }
  }
  if (quoted) throw FormatError(path + ":" + std::to_string(record_line) + ": unterminated quote");
  if (!cell.empty() || !record.empty()) end_record();
  if (records.empty()) throw FormatError(path + ": empty CSV (no header)");
  csv.columns_ = records.front();
  csv.rows_.assign(records.begin() + 1, records.end());
  return csv;
}

bool CsvFile::has_column(const std::string& name) const {
  return std::find(columns_.begin(), columns_.end(), name) != columns_.end();
}

const std::string& CsvFile::at(std::size_t row, const std::string& name) const {
  const auto it = std::find(columns_.begin(), columns_.end(), name);
  if (it == columns_.end()) throw FormatError(path_ + ": no column '" + name + "'");
  return rows_.at(row)[static_cast<std::size_t>(it - columns_.begin())];
}

double CsvFile::number(std::size_t row, const std::string& name) const {
  const std::string& cell = at(row, name);
  if (cell.empty()) return NAN;
  char* end = nullptr;
  const double v = std::strtod(cell.c_str(), &end);
  return end == cell.c_str() + cell.size() ? v : NAN;
}

}  // namespace slidesparse::pipeline
