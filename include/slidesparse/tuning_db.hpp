// The tuning database (DESIGN.md §7): the best GEMM algorithm and its time per backend,
// precision, pattern, shape and M bucket, in a readable JSON file. The file records the GPU and
// library versions it was measured with; a file from another GPU or library version is never
// used silently: it is reported once and its entries are ignored.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace slidesparse {

// Where the timings were taken. Versions are the numbers the libraries report
// (cudaDriverGetVersion, cudaRuntimeGetVersion, cublasLtGetVersion, cuSPARSELt major·1000 +
// minor·100 + patch).
struct TuningKey {
  std::string gpu_name;
  int cc_major = 0;
  int cc_minor = 0;
  int driver = 0;
  int cuda_runtime = 0;
  int cublaslt = 0;
  int cusparselt = 0;

  bool operator==(const TuningKey& o) const;
  bool operator!=(const TuningKey& o) const { return !(*this == o); }
  // "NVIDIA H100 80GB HBM3 (cc 9.0), driver 13000, CUDA runtime 13000, cuBLASLt 130100,
  // cuSPARSELt 800"
  std::string describe() const;
};

struct TuningEntry {
  std::string backend;    // backend_name(): "cublaslt", "cublaslt_fused", "cusparselt", ...
  std::string precision;  // "int8", "fp8", "bf16", "fp16"
  std::string pattern;    // "dense" for the dense baseline, else the zeros name ("2_8", "2_inf")
  std::int64_t n = 0;     // the GEMM's N and K as run (padded, and K lifted for sparse patterns)
  std::int64_t k = 0;
  std::int64_t m = 0;    // the M bucket the time was measured at
  nlohmann::json algo;   // GemmAlgo::to_json()
  double time_us = 0.0;  // median of the chosen algorithm
};

class TuningDb {
 public:
  static constexpr int kFormatVersion = 1;

  // An empty database for this key.
  explicit TuningDb(TuningKey key);

  // Reads `path`. IoError if it cannot be read, FormatError naming the file when it is not a
  // tuning database of this format version. When its key differs from `current` the database
  // is stale: one warning goes to `warnings` and every lookup finds nothing.
  static TuningDb load(const std::string& path, const TuningKey& current, std::ostream& warnings);
  static TuningDb load(const std::string& path, const TuningKey& current);  // warns on stderr
  // For the tuner: loads `path` if it exists and matches `current`; a missing file gives an
  // empty database, a stale one an empty database for `current` (after one warning: its
  // entries are dropped when this one is saved). A corrupt file still throws FormatError.
  static TuningDb open_or_create(const std::string& path, const TuningKey& current,
                                 std::ostream& warnings);
  static TuningDb open_or_create(const std::string& path, const TuningKey& current);

  const TuningKey& key() const { return key_; }
  bool stale() const { return !stale_reason_.empty(); }
  // Which fields differ, old against new: "gpu_name 'A' vs 'B'; cusparselt 602 vs 800".
  const std::string& stale_reason() const { return stale_reason_; }

  // Adds or replaces the entry with the same backend, precision, pattern, n, k and m.
  // InvalidArgument for a malformed entry or a stale database.
  void put(TuningEntry entry);

  // Same backend, precision, pattern, n and k, and the M nearest to m in log2(M) (ties go to
  // the larger M). Nothing when the database is stale.
  std::optional<TuningEntry> lookup(const std::string& backend, const std::string& precision,
                                    const std::string& pattern, std::int64_t n, std::int64_t k,
                                    std::int64_t m) const;
  // Every backend's and pattern's entries for one shape and precision, for the per-M-bucket
  // choice between sparse and dense. Empty when stale.
  std::vector<TuningEntry> entries_for(std::int64_t n, std::int64_t k,
                                       const std::string& precision) const;

  // Writes a temporary file beside `path` and renames it over `path`: readers see the old
  // file or the new one, never a half-written one. IoError naming the file on failure.
  void save(const std::string& path) const;

  std::size_t size() const { return entries_.size(); }
  // Changes with every put() (loading puts every entry): a stamp unique in the process, which a
  // copy shares with the entries it copied. A reader that remembers choices made from the entries
  // (the linear layer's per-M choice) knows from it when they may have changed. 0: never put.
  std::uint64_t revision() const { return revision_; }

 private:
  TuningKey key_;
  std::string stale_reason_;
  std::uint64_t revision_ = 0;
  std::vector<TuningEntry> entries_;  // kept sorted by (backend, precision, pattern, n, k, m)
};

}  // namespace slidesparse
