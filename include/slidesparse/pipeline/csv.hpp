// Reading the result CSVs the benchmarks write (RFC 4180 quoting).
#pragma once

#include <string>
#include <vector>

namespace slidesparse::pipeline {

class CsvFile {
 public:
  // Throws IoError when unreadable, FormatError naming path:line for a ragged row or an
  // unterminated quote.
  static CsvFile read(const std::string& path);
  static CsvFile parse(const std::string& text, const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<std::string>& columns() const { return columns_; }
  std::size_t rows() const { return rows_.size(); }
  bool has_column(const std::string& name) const;
  // The cell of row `row` in column `name`; throws FormatError naming the file when the
  // column is missing.
  const std::string& at(std::size_t row, const std::string& name) const;
  // As a number; NaN when the cell is empty or not a number.
  double number(std::size_t row, const std::string& name) const;

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace slidesparse::pipeline
