#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/tuning_db.hpp"
#include "tuning_fixtures.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        fs::temp_directory_path() / ("slidesparse_tuning_" + std::string(info->name()) + "_" +
                                     std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

using test::h100_key;

TuningEntry entry(const std::string& backend, const std::string& pattern, std::int64_t m,
                  double time_us, std::int64_t n = 4096, std::int64_t k = 6144) {
  return {backend, "int8", pattern, n, k, m, {{"algo_id", static_cast<int>(m % 7)}, {"split_k", 1}},
          time_us};
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The FormatError message for loading `text` as a database (empty when nothing is thrown).
std::string format_error_for(const TempDir& dir, const std::string& text) {
  const std::string path = dir.file("corrupt.json");
  write_text(path, text);
  try {
    TuningDb::load(path, h100_key());
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

// A valid file's text with one part replaced, to corrupt one thing at a time.
std::string valid_text(const TempDir& dir) {
  TuningDb db(h100_key());
  db.put(entry("cusparselt", "2_8", 64, 10.5));
  const std::string path = dir.file("valid.json");
  db.save(path);
  return read_text(path);
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(TuningKey, EqualityAndDescription) {
  TuningKey a = h100_key(), b = h100_key();
  EXPECT_EQ(a, b);
  b.cusparselt = 801;
  EXPECT_NE(a, b);
  EXPECT_EQ(a.describe(),
            "NVIDIA H100 80GB HBM3 (cc 9.0), driver 13000, CUDA runtime 13000, cuBLASLt 130100, "
            "cuSPARSELt 800");
}

TEST(TuningDb, SaveThenLoadGivesTheSameEntries) {
  TempDir dir;
  TuningDb db(h100_key());
  db.put(entry("cusparselt", "2_8", 64, 12.25));
  db.put(entry("cublaslt", "dense", 64, 15.5));
  db.put(entry("cusparselt", "2_8", 4096, 801.0));
  const std::string path = dir.file("tuning.json");
  db.save(path);

  std::ostringstream warnings;
  const TuningDb loaded = TuningDb::load(path, h100_key(), warnings);
  EXPECT_TRUE(warnings.str().empty());
  EXPECT_FALSE(loaded.stale());
  EXPECT_EQ(loaded.key(), h100_key());
  ASSERT_EQ(loaded.size(), 3u);
  for (std::int64_t m : {64, 4096}) {
    const auto original = db.lookup("cusparselt", "int8", "2_8", 4096, 6144, m);
    const auto again = loaded.lookup("cusparselt", "int8", "2_8", 4096, 6144, m);
    ASSERT_TRUE(original && again);
    EXPECT_EQ(again->m, m);
    EXPECT_EQ(again->time_us, original->time_us);
    EXPECT_EQ(again->algo, original->algo);
  }
  // Readable JSON with the format, version and key at the top.
  const auto json = nlohmann::json::parse(read_text(path));
  EXPECT_EQ(json.at("format"), "slidesparse-tuning");
  EXPECT_EQ(json.at("version"), TuningDb::kFormatVersion);
  EXPECT_EQ(json.at("key").at("gpu_name"), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(json.at("entries").size(), 3u);
}

TEST(TuningDb, PutReplacesTheSameShapeAndBucket) {
  TuningDb db(h100_key());
  db.put(entry("cusparselt", "2_8", 256, 40.0));
  db.put(entry("cusparselt", "2_8", 256, 35.0));
  db.put(entry("cusparselt", "2_6", 256, 30.0));  // another pattern is another entry
  EXPECT_EQ(db.size(), 2u);
  EXPECT_EQ(db.lookup("cusparselt", "int8", "2_8", 4096, 6144, 256)->time_us, 35.0);
}

TEST(TuningDb, PutRejectsMalformedEntries) {
  TuningDb db(h100_key());
  EXPECT_THROW(db.put(entry("cusparselt", "2_8", 0, 1.0)), InvalidArgument);
  EXPECT_THROW(db.put(entry("cusparselt", "2_8", 64, std::nan(""))), InvalidArgument);
  EXPECT_THROW(db.put(entry("", "2_8", 64, 1.0)), InvalidArgument);
  TuningEntry not_object = entry("cusparselt", "2_8", 64, 1.0);
  not_object.algo = 5;
  EXPECT_THROW(db.put(not_object), InvalidArgument);
  EXPECT_EQ(db.size(), 0u);
}

TEST(TuningDb, LookupTakesTheNearestBucketInLog2) {
  TuningDb db(h100_key());
  for (std::int64_t m : {16, 64, 256, 4096}) db.put(entry("cusparselt", "2_8", m, 1.0 * m));
  const auto bucket = [&db](std::int64_t m) {
    const auto e = db.lookup("cusparselt", "int8", "2_8", 4096, 6144, m);
    return e ? e->m : -1;
  };
  EXPECT_EQ(bucket(1), 16);
  EXPECT_EQ(bucket(16), 16);
  EXPECT_EQ(bucket(31), 16);      // log2 4.95: 0.95 from 16, 1.05 from 64
  EXPECT_EQ(bucket(32), 64);      // exactly between 16 and 64: the larger wins
  EXPECT_EQ(bucket(100), 64);     // 0.64 from 64, 1.36 from 256
  EXPECT_EQ(bucket(128), 256);    // exactly between 64 and 256
  EXPECT_EQ(bucket(1000), 256);   // 1.97 from 256, 2.03 from 4096
  EXPECT_EQ(bucket(1024), 4096);  // exactly between 256 and 4096
  EXPECT_EQ(bucket(1 << 20), 4096);
  EXPECT_EQ(bucket(0), -1);
}

TEST(TuningDb, LookupNeedsTheExactShapeBackendPrecisionAndPattern) {
  TuningDb db(h100_key());
  db.put(entry("cusparselt", "2_8", 64, 1.0));
  EXPECT_TRUE(db.lookup("cusparselt", "int8", "2_8", 4096, 6144, 64));
  EXPECT_FALSE(db.lookup("cusparselt", "int8", "2_8", 4096, 6208, 64));
  EXPECT_FALSE(db.lookup("cusparselt", "int8", "2_8", 4128, 6144, 64));
  EXPECT_FALSE(db.lookup("cublaslt", "int8", "2_8", 4096, 6144, 64));
  EXPECT_FALSE(db.lookup("cusparselt", "fp8", "2_8", 4096, 6144, 64));
  EXPECT_FALSE(db.lookup("cusparselt", "int8", "2_6", 4096, 6144, 64));
}

TEST(TuningDb, EntriesForAShapeCoverEveryBackendAndPattern) {
  TuningDb db(h100_key());
  db.put(entry("cusparselt", "2_8", 64, 10.0));
  db.put(entry("cusparselt", "2_4", 64, 8.0));
  db.put(entry("cublaslt", "dense", 64, 11.0));
  db.put(entry("cublaslt", "dense", 64, 11.0, 4096, 4096));  // another K
  const auto all = db.entries_for(4096, 6144, "int8");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].backend, "cublaslt");
  EXPECT_TRUE(db.entries_for(4096, 6144, "fp8").empty());
}

// Both cuBLASLt dense backends (plain, and the dequantization in its epilogue) keep their own
// entries for one shape and bucket: the layer compares their times.
TEST(TuningDb, TheTwoCublasLtDenseBackendsKeepTheirOwnEntries) {
  TempDir dir;
  TuningDb db(h100_key());
  TuningEntry plain = entry("cublaslt", "dense", 64, 20.0), fused = plain;
  plain.precision = fused.precision = "fp8";
  fused.backend = "cublaslt_fused";
  fused.time_us = 18.0;
  db.put(plain);
  db.put(fused);
  const std::string path = dir.file("tuning.json");
  db.save(path);
  const TuningDb loaded = TuningDb::load(path, h100_key());
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded.lookup("cublaslt", "fp8", "dense", 4096, 6144, 64)->time_us, 20.0);
  EXPECT_EQ(loaded.lookup("cublaslt_fused", "fp8", "dense", 4096, 6144, 64)->time_us, 18.0);
  EXPECT_EQ(loaded.entries_for(4096, 6144, "fp8").size(), 2u);
}

TEST(TuningDb, AnotherGpusDatabaseIsReportedOnceAndIgnored) {
  TempDir dir;
  TuningKey a100 = h100_key();
  a100.gpu_name = "NVIDIA A100-SXM4-80GB";
  a100.cc_major = 8;
  a100.cusparselt = 602;
  TuningDb db(a100);
  db.put(entry("cusparselt", "2_8", 64, 10.0));
  const std::string path = dir.file("a100.json");
  db.save(path);

  std::ostringstream warnings;
  TuningDb loaded = TuningDb::load(path, h100_key(), warnings);
  EXPECT_TRUE(loaded.stale());
  EXPECT_NE(
      loaded.stale_reason().find("gpu_name 'NVIDIA A100-SXM4-80GB' vs 'NVIDIA H100 80GB HBM3'"),
      std::string::npos)
      << loaded.stale_reason();
  EXPECT_NE(loaded.stale_reason().find("cc_major 8 vs 9"), std::string::npos);
  EXPECT_NE(loaded.stale_reason().find("cusparselt 602 vs 800"), std::string::npos);
  EXPECT_EQ(loaded.stale_reason().find("driver"), std::string::npos);  // equal fields not listed

  const std::string text = warnings.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("tuning database " + path + " was made on " + a100.describe() + ", this is " +
                      h100_key().describe()),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ignored, re-run `slidesparse tune`"), std::string::npos) << text;

  // Never used: no lookups, no entries, no additions.
  EXPECT_FALSE(loaded.lookup("cusparselt", "int8", "2_8", 4096, 6144, 64));
  EXPECT_TRUE(loaded.entries_for(4096, 6144, "int8").empty());
  EXPECT_THROW(loaded.put(entry("cusparselt", "2_8", 64, 9.0)), InvalidArgument);
  EXPECT_EQ(warnings.str(), text);  // lookups do not warn again
}

TEST(TuningDb, OpenOrCreateStartsFreshForMissingOrStaleFiles) {
  TempDir dir;
  const std::string path = dir.file("tuning.json");
  std::ostringstream warnings;
  TuningDb fresh = TuningDb::open_or_create(path, h100_key(), warnings);
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_FALSE(fresh.stale());
  fresh.put(entry("cublaslt", "dense", 64, 5.0));
  fresh.save(path);
  EXPECT_EQ(TuningDb::open_or_create(path, h100_key(), warnings).size(), 1u);
  EXPECT_TRUE(warnings.str().empty());

  TuningKey newer = h100_key();
  newer.driver = 13010;
  TuningDb replaced_db = TuningDb::open_or_create(path, newer, warnings);
  EXPECT_FALSE(replaced_db.stale());
  EXPECT_EQ(replaced_db.key(), newer);
  EXPECT_EQ(replaced_db.size(), 0u);
  EXPECT_NE(warnings.str().find("driver 13000 vs 13010"), std::string::npos) << warnings.str();
  EXPECT_NE(warnings.str().find("starting a new one"), std::string::npos) << warnings.str();
}

TEST(TuningDb, CorruptFilesAreFormatErrorsNamingTheFile) {
  TempDir dir;
  const std::string path = dir.file("corrupt.json");
  const std::string valid = valid_text(dir);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "is not valid JSON"},
      {"[1, 2]", "top level is not a JSON object"},
      {replaced(valid, "\"slidesparse-tuning\"", "\"something-else\""), "field 'format'"},
      {replaced(valid, "\"version\": 1", "\"version\": 2"),
       "has format version 2, this build reads version 1"},
      {replaced(valid, "\"time_us\"", "\"time\""), "entry 0 has no field 'time_us'"},
      {replaced(valid, "\"m\": 64", "\"m\": \"64\""), "entry 0 field 'm' must be an integer"},
      {replaced(valid, "\"m\": 64", "\"m\": -64"), "n, k and m must be positive"},
      {replaced(valid, "\"cusparselt\": 800", "\"cusparselt\": \"0.8\""),
       "key field 'cusparselt' must be an integer"},
      {replaced(valid, "\"entries\"", "\"rows\""), "has no field 'entries'"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string message = format_error_for(dir, text);
    EXPECT_NE(message.find(path), std::string::npos) << "no file name in: " << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
}

TEST(TuningDb, AMissingFileIsAnIoErrorNamingIt) {
  TempDir dir;
  const std::string path = dir.file("absent.json");
  try {
    TuningDb::load(path, h100_key());
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(TuningDb, SaveReplacesTheFileWholeAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("tuning.json");
  TuningDb db(h100_key());
  db.put(entry("cusparselt", "2_8", 64, 10.0));
  db.save(path);
  db.put(entry("cusparselt", "2_8", 128, 20.0));
  db.save(path);
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"tuning.json"});
  EXPECT_EQ(TuningDb::load(path, h100_key()).size(), 2u);
}

TEST(TuningDb, AFailedSaveLeavesWhatWasThere) {
  TempDir dir;
  // The target is a non-empty directory: the final rename must fail after the write succeeded.
  const std::string target = dir.file("occupied");
  fs::create_directories(target);
  write_text(target + "/keep.txt", "keep");
  TuningDb db(h100_key());
  db.put(entry("cusparselt", "2_8", 64, 10.0));
  try {
    db.save(target);
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
  }
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"occupied"});  // no temporary left behind
  EXPECT_EQ(read_text(target + "/keep.txt"), "keep");

  // A directory that does not exist: nothing is created.
  EXPECT_THROW(db.save(dir.file("missing/tuning.json")), IoError);
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"occupied"});
}

}  // namespace
}  // namespace slidesparse
