#include "slidesparse/tuning_db.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>

#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {

constexpr const char* kFormatName = "slidesparse-tuning";

std::atomic<std::uint64_t> g_revisions{0};  // TuningDb::revision stamps, unique in the process

auto entry_identity(const TuningEntry& e) {
  return std::tie(e.backend, e.precision, e.pattern, e.n, e.k, e.m);
}

// Reads one field of a JSON object with a message that names the file and the place.
class FieldReader {
 public:
  FieldReader(const std::string& path, std::string where) : path_(path), where_(std::move(where)) {}

  const nlohmann::json& field(const nlohmann::json& object, const char* name) const {
    if (!object.is_object()) fail(std::string("is not a JSON object"));
    const auto it = object.find(name);
    if (it == object.end()) fail(std::string("has no field '") + name + "'");
    return *it;
  }
  std::string string(const nlohmann::json& object, const char* name) const {
    const auto& v = field(object, name);
    if (!v.is_string()) fail(std::string("field '") + name + "' must be a string");
    return v.get<std::string>();
  }
  std::int64_t integer(const nlohmann::json& object, const char* name) const {
    const auto& v = field(object, name);
    if (!v.is_number_integer()) fail(std::string("field '") + name + "' must be an integer");
    return v.get<std::int64_t>();
  }
  double number(const nlohmann::json& object, const char* name) const {
    const auto& v = field(object, name);
    if (!v.is_number()) fail(std::string("field '") + name + "' must be a number");
    return v.get<double>();
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError("tuning database " + path_ + ": " + where_ + " " + what);
  }

 private:
  const std::string& path_;
  std::string where_;
};

int small_integer(const FieldReader& r, const nlohmann::json& object, const char* name) {
  const std::int64_t v = r.integer(object, name);
  if (v < 0 || v > 1'000'000'000) r.fail(std::string("field '") + name + "' is out of range");
  return static_cast<int>(v);
}

nlohmann::json key_to_json(const TuningKey& key) {
  return {{"gpu_name", key.gpu_name},         {"cc_major", key.cc_major},
          {"cc_minor", key.cc_minor},         {"driver", key.driver},
          {"cuda_runtime", key.cuda_runtime}, {"cublaslt", key.cublaslt},
          {"cusparselt", key.cusparselt}};
}

TuningKey key_from_json(const std::string& path, const nlohmann::json& j) {
  const FieldReader r(path, "key");
  TuningKey key;
  key.gpu_name = r.string(j, "gpu_name");
  key.cc_major = small_integer(r, j, "cc_major");
  key.cc_minor = small_integer(r, j, "cc_minor");
  key.driver = small_integer(r, j, "driver");
  key.cuda_runtime = small_integer(r, j, "cuda_runtime");
  key.cublaslt = small_integer(r, j, "cublaslt");
  key.cusparselt = small_integer(r, j, "cusparselt");
  return key;
}

nlohmann::json entry_to_json(const TuningEntry& e) {
  return {{"backend", e.backend},
          {"precision", e.precision},
          {"pattern", e.pattern},
          {"n", e.n},
          {"k", e.k},
          {"m", e.m},
          {"algo", e.algo},
          {"time_us", e.time_us}};
}

TuningEntry entry_from_json(const std::string& path, const nlohmann::json& j, std::size_t index) {
  const FieldReader r(path, "entry " + std::to_string(index));
  TuningEntry e;
  e.backend = r.string(j, "backend");
  e.precision = r.string(j, "precision");
  e.pattern = r.string(j, "pattern");
  e.n = r.integer(j, "n");
  e.k = r.integer(j, "k");
  e.m = r.integer(j, "m");
  e.algo = r.field(j, "algo");
  e.time_us = r.number(j, "time_us");
  return e;
}

// Why an entry cannot go into a database, or "" when it can.
std::string entry_problem(const TuningEntry& e) {
  if (e.backend.empty() || e.precision.empty() || e.pattern.empty())
    return "backend, precision and pattern must be named";
  if (e.n <= 0 || e.k <= 0 || e.m <= 0) return "n, k and m must be positive";
  if (!e.algo.is_object()) return "algo must be a JSON object";
  if (!std::isfinite(e.time_us) || e.time_us < 0) return "time_us must be a finite time";
  return "";
}

std::string describe_entry(const TuningEntry& e) {
  return e.backend + " " + e.precision + " " + e.pattern + " n=" + std::to_string(e.n) +
         " k=" + std::to_string(e.k) + " m=" + std::to_string(e.m);
}

// "gpu_name 'A' vs 'B'; driver 12040 vs 13000": the fields that differ, old vs new.
std::string key_differences(const TuningKey& old_key, const TuningKey& new_key) {
  std::string out;
  const auto add = [&out](const std::string& item) { out += (out.empty() ? "" : "; ") + item; };
  if (old_key.gpu_name != new_key.gpu_name)
    add("gpu_name '" + old_key.gpu_name + "' vs '" + new_key.gpu_name + "'");
  const std::tuple<const char*, int, int> numbers[] = {
      {"cc_major", old_key.cc_major, new_key.cc_major},
      {"cc_minor", old_key.cc_minor, new_key.cc_minor},
      {"driver", old_key.driver, new_key.driver},
      {"cuda_runtime", old_key.cuda_runtime, new_key.cuda_runtime},
      {"cublaslt", old_key.cublaslt, new_key.cublaslt},
      {"cusparselt", old_key.cusparselt, new_key.cusparselt}};
  for (const auto& [name, was, is] : numbers)
    if (was != is) add(std::string(name) + " " + std::to_string(was) + " vs " + std::to_string(is));
  return out;
}

// log2 distance between bucket sizes, compared without floating point: |log2(a) - log2(m)| <
// |log2(b) - log2(m)| ⇔ max(a,m)/min(a,m) < max(b,m)/min(b,m), cross-multiplied in long double.
bool nearer(std::int64_t a, std::int64_t b, std::int64_t m) {
  const auto ratio = [m](std::int64_t x) {
    return x >= m ? static_cast<long double>(x) / m : static_cast<long double>(m) / x;
  };
  const long double ra = ratio(a), rb = ratio(b);
  if (ra != rb) return ra < rb;
  return a > b;  // a tie goes to the larger M
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open tuning database " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError("cannot read tuning database " + path);
  return text.str();
}

}  // namespace

bool TuningKey::operator==(const TuningKey& o) const {
  return gpu_name == o.gpu_name && cc_major == o.cc_major && cc_minor == o.cc_minor &&
         driver == o.driver && cuda_runtime == o.cuda_runtime && cublaslt == o.cublaslt &&
         cusparselt == o.cusparselt;
}

std::string TuningKey::describe() const {
  return gpu_name + " (cc " + std::to_string(cc_major) + "." + std::to_string(cc_minor) +
         "), driver " + std::to_string(driver) + ", CUDA runtime " + std::to_string(cuda_runtime) +
         ", cuBLASLt " + std::to_string(cublaslt) + ", cuSPARSELt " + std::to_string(cusparselt);
}

TuningDb::TuningDb(TuningKey key) : key_(std::move(key)) {}

TuningDb TuningDb::load(const std::string& path, const TuningKey& current, std::ostream& warnings) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError("tuning database " + path + " is not valid JSON: " + e.what());
  }
  const FieldReader r(path, "top level");
  if (r.string(root, "format") != kFormatName)
    r.fail("field 'format' must be \"" + std::string(kFormatName) + "\"");
  const std::int64_t version = r.integer(root, "version");
  if (version != kFormatVersion)
    throw FormatError("tuning database " + path + " has format version " + std::to_string(version) +
                      ", this build reads version " + std::to_string(kFormatVersion));
  TuningDb db(key_from_json(path, r.field(root, "key")));
  const auto& entries = r.field(root, "entries");
  if (!entries.is_array()) r.fail("field 'entries' must be an array");
  for (std::size_t i = 0; i < entries.size(); ++i) {
    TuningEntry e = entry_from_json(path, entries[i], i);
    const std::string problem = entry_problem(e);
    if (!problem.empty())
      throw FormatError("tuning database " + path + ": entry " + std::to_string(i) + " (" +
                        describe_entry(e) + "): " + problem);
    db.put(std::move(e));
  }
  if (db.key_ != current) {
    db.stale_reason_ = key_differences(db.key_, current);
    warnings << "slidesparse: tuning database " << path << " was made on " << db.key_.describe()
             << ", this is " << current.describe() << " (" << db.stale_reason_
             << "): ignored, re-run `slidesparse tune`\n";
  }
  return db;
}

TuningDb TuningDb::load(const std::string& path, const TuningKey& current) {
  return load(path, current, std::cerr);
}

TuningDb TuningDb::open_or_create(const std::string& path, const TuningKey& current,
                                  std::ostream& warnings) {
  if (!std::filesystem::exists(path)) return TuningDb(current);
  std::ostringstream ignored;  // the tuner words its own warning below
  TuningDb db = load(path, current, ignored);
  if (!db.stale()) return db;
  warnings << "slidesparse: tuning database " << path << " was made on " << db.key_.describe()
           << ", this is " << current.describe() << " (" << db.stale_reason_
           << "): starting a new one, its " << db.size() << " entries are replaced on save\n";
  return TuningDb(current);
}

TuningDb TuningDb::open_or_create(const std::string& path, const TuningKey& current) {
  return open_or_create(path, current, std::cerr);
}

void TuningDb::put(TuningEntry entry) {
  if (stale())
    throw InvalidArgument("tuning database made on " + key_.describe() +
                          " is stale; start a new one for this GPU");
  const std::string problem = entry_problem(entry);
  if (!problem.empty())
    throw InvalidArgument("tuning entry " + describe_entry(entry) + ": " + problem);
  const auto it = std::lower_bound(entries_.begin(), entries_.end(), entry,
                                   [](const TuningEntry& a, const TuningEntry& b) {
                                     return entry_identity(a) < entry_identity(b);
                                   });
  if (it != entries_.end() && entry_identity(*it) == entry_identity(entry))
    *it = std::move(entry);
  else
    entries_.insert(it, std::move(entry));
  revision_ = ++g_revisions;
}

std::optional<TuningEntry> TuningDb::lookup(const std::string& backend,
                                            const std::string& precision,
                                            const std::string& pattern, std::int64_t n,
                                            std::int64_t k, std::int64_t m) const {
  if (stale() || m <= 0) return std::nullopt;
  const TuningEntry* best = nullptr;
  for (const auto& e : entries_) {
    if (e.backend != backend || e.precision != precision || e.pattern != pattern || e.n != n ||
        e.k != k)
      continue;
    if (!best || nearer(e.m, best->m, m)) best = &e;
  }
  if (!best) return std::nullopt;
  return *best;
}

std::vector<TuningEntry> TuningDb::entries_for(std::int64_t n, std::int64_t k,
                                               const std::string& precision) const {
  std::vector<TuningEntry> out;
  if (stale()) return out;
  for (const auto& e : entries_)
    if (e.n == n && e.k == k && e.precision == precision) out.push_back(e);
  return out;
}

void TuningDb::save(const std::string& path) const {
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& e : entries_) entries.push_back(entry_to_json(e));
  const nlohmann::json root = {{"format", kFormatName},
                               {"version", kFormatVersion},
                               {"key", key_to_json(key_)},
                               {"entries", entries}};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw IoError("cannot write tuning database " + path + " (temporary file " + tmp + ")");
    out << root.dump(2) << "\n";
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw IoError("cannot write tuning database " + path + " (disk full?)");
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) {
    std::remove(tmp.c_str());
    throw IoError("cannot replace tuning database " + path + ": " + error.message());
  }
}

}  // namespace slidesparse
