// fastest_gemm: the per-M-bucket choice among a linear layer's GEMMs from the tuning database
// (the decision SlideSparseLinear::resolve and sparse_gemm_for make), without a GPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/gemm_choice.hpp"
#include "slidesparse/tuning_db.hpp"
#include "tuning_fixtures.hpp"

namespace slidesparse {
namespace {

constexpr std::int64_t kN = 3584, kKSlide = 5376, kK = 3584;

using test::h100_key;

// The layer's candidates: the default sparse GEMM first, then the other sparse one, then dense.
const std::vector<GemmCandidate> kThree = {{"cusparselt", "2_8", kN, kKSlide, ""},
                                           {"cutlass", "2_8", kN, kKSlide, ""},
                                           {"cublaslt", "dense", kN, kK, ""}};
constexpr std::size_t kCusparselt = 0, kCutlass = 1, kDense = 2;

void put(TuningDb& db, const GemmCandidate& c, std::int64_t m, double time_us,
         const std::string& precision = "int8") {
  db.put({c.backend, precision, c.pattern, c.n, c.k, m, {{"algo_id", 0}}, time_us});
}

// Times per bucket for the three candidates: cuSPARSELt, CUTLASS, dense.
void put_bucket(TuningDb& db, std::int64_t m, double cusparselt, double cutlass, double dense) {
  put(db, kThree[kCusparselt], m, cusparselt);
  put(db, kThree[kCutlass], m, cutlass);
  put(db, kThree[kDense], m, dense);
}

std::size_t choose(const TuningDb* db, std::int64_t m,
                   const std::vector<GemmCandidate>& candidates = kThree) {
  return fastest_gemm(db, Precision::INT8, candidates, m);
}

TEST(FastestGemm, TakesTheFastestAtTheNearestBucket) {
  TuningDb db(h100_key());
  put_bucket(db, 16, 30.0, 25.0, 12.0);       // decode: dense
  put_bucket(db, 256, 40.0, 30.0, 45.0);      // CUTLASS
  put_bucket(db, 4096, 300.0, 320.0, 400.0);  // cuSPARSELt
  EXPECT_EQ(choose(&db, 16), kDense);
  EXPECT_EQ(choose(&db, 1), kDense);     // below every bucket: the smallest
  EXPECT_EQ(choose(&db, 63), kDense);    // log2 distance: 16 is nearer than 256
  EXPECT_EQ(choose(&db, 65), kCutlass);  // 256 is nearer
  EXPECT_EQ(choose(&db, 256), kCutlass);
  EXPECT_EQ(choose(&db, 1023), kCutlass);
  EXPECT_EQ(choose(&db, 1024), kCusparselt);  // halfway in log2: the larger bucket
  EXPECT_EQ(choose(&db, 65536), kCusparselt);
  // Without the dense candidate (a layer without a dense path) the sparse ones compete alone.
  const std::vector<GemmCandidate> sparse_only(kThree.begin(), kThree.begin() + 2);
  EXPECT_EQ(choose(&db, 16, sparse_only), kCutlass);
  EXPECT_EQ(choose(&db, 4096, sparse_only), kCusparselt);
}

TEST(FastestGemm, WithoutAUsableDatabaseTheDefaultRuns) {
  EXPECT_EQ(choose(nullptr, 16), kCusparselt);
  TuningDb empty(h100_key());
  EXPECT_EQ(choose(&empty, 16), kCusparselt);
  // Entries of another shape, precision or pattern are not this layer's.
  TuningDb other(h100_key());
  for (const GemmCandidate& c : kThree) {
    put(other, {c.backend, c.pattern, c.n, c.k + 32, ""}, 16, c.backend == "cusparselt" ? 50.0 : 1.0);
    put(other, c, 16, c.backend == "cusparselt" ? 50.0 : 1.0, "fp8");
  }
  put(other, {"cutlass", "2_6", kN, kKSlide, ""}, 16, 1.0);
  put(other, kThree[kCusparselt], 16, 50.0);
  EXPECT_EQ(choose(&other, 16), kCusparselt);
  // A single candidate needs no database.
  EXPECT_EQ(choose(&other, 16, {kThree[kCutlass]}), 0u);
}

TEST(FastestGemm, AStaleDatabaseIsNotUsed) {
  namespace fs = std::filesystem;
  const fs::path path = fs::temp_directory_path() /
                        ("slidesparse_gemm_choice_" + std::to_string(::getpid()) + ".json");
  TuningKey a100 = h100_key();
  a100.gpu_name = "NVIDIA A100-SXM4-80GB";
  a100.cc_major = 8;
  {
    TuningDb db(a100);
    put_bucket(db, 16, 30.0, 25.0, 12.0);
    db.save(path.string());
  }
  std::ostringstream warnings;
  const TuningDb stale = TuningDb::load(path.string(), h100_key(), warnings);
  fs::remove(path);
  ASSERT_TRUE(stale.stale());
  EXPECT_EQ(choose(&stale, 16), kCusparselt);
}

TEST(FastestGemm, MissingEntriesAreNotWeighed) {
  // No entry for the default: no evidence against it, whatever the others measured.
  TuningDb no_default(h100_key());
  put(no_default, kThree[kCutlass], 64, 1.0);
  put(no_default, kThree[kDense], 64, 2.0);
  EXPECT_EQ(choose(&no_default, 64), kCusparselt);

  // CUTLASS never tuned (a database from `tune --sparse-backend cusparselt`): sparse vs dense.
  TuningDb no_cutlass(h100_key());
  put(no_cutlass, kThree[kCusparselt], 64, 20.0);
  put(no_cutlass, kThree[kDense], 64, 10.0);
  put(no_cutlass, kThree[kCusparselt], 1024, 100.0);
  put(no_cutlass, kThree[kDense], 1024, 150.0);
  EXPECT_EQ(choose(&no_cutlass, 64), kDense);
  EXPECT_EQ(choose(&no_cutlass, 1024), kCusparselt);

  // Times are compared at one bucket only: CUTLASS timed at 64 does not compete at 4096, where
  // the default's nearest bucket is 4096 and CUTLASS has none.
  TuningDb apart(h100_key());
  put(apart, kThree[kCusparselt], 64, 20.0);
  put(apart, kThree[kCusparselt], 4096, 300.0);
  put(apart, kThree[kCutlass], 64, 10.0);
  EXPECT_EQ(choose(&apart, 64), kCutlass);
  EXPECT_EQ(choose(&apart, 4096), kCusparselt);
  EXPECT_EQ(choose(&apart, 3000), kCusparselt);

  // A zero time (no measurement) is not evidence.
  TuningDb zero(h100_key());
  put(zero, kThree[kCusparselt], 64, 20.0);
  put(zero, kThree[kCutlass], 64, 0.0);
  EXPECT_EQ(choose(&zero, 64), kCusparselt);
  TuningDb zero_default(h100_key());
  put(zero_default, kThree[kCusparselt], 64, 0.0);
  put(zero_default, kThree[kCutlass], 64, 5.0);
  EXPECT_EQ(choose(&zero_default, 64), kCusparselt);
}

// The cuBLASLt fused dense GEMM is weighed by the plain cuBLASLt time where the database has
// it at the bucket, else by its own (the runner's search times only the GEMM it built).
TEST(FastestGemm, AFallbackKeyIsWeighedOnlyWhereThePrimaryOneIsMissing) {
  const std::vector<GemmCandidate> fused = {{"cusparselt", "2_8", kN, kKSlide, ""},
                                            {"cublaslt", "dense", kN, kK, "cublaslt_fused"}};
  const GemmCandidate fused_times{"cublaslt_fused", "dense", kN, kK, ""};
  TuningDb only_fused(h100_key());
  put(only_fused, fused[0], 64, 20.0);
  put(only_fused, fused_times, 64, 12.0);
  EXPECT_EQ(choose(&only_fused, 64, fused), 1u);

  TuningDb both(h100_key());  // the plain time (30) wins over the fused one (12) as evidence
  put(both, fused[0], 64, 20.0);
  put(both, fused[1], 64, 30.0);
  put(both, fused_times, 64, 12.0);
  EXPECT_EQ(choose(&both, 64, fused), 0u);

  TuningDb other_bucket(h100_key());  // the fallback too is weighed at the default's bucket only
  put(other_bucket, fused[0], 64, 20.0);
  put(other_bucket, fused_times, 4096, 1.0);
  EXPECT_EQ(choose(&other_bucket, 64, fused), 0u);
}

TEST(FastestGemm, TiesGoToTheEarlierCandidate) {
  TuningDb db(h100_key());
  put_bucket(db, 64, 20.0, 20.0, 20.0);
  EXPECT_EQ(choose(&db, 64), kCusparselt);
  put(db, kThree[kCusparselt], 64, 30.0);
  EXPECT_EQ(choose(&db, 64), kCutlass);  // CUTLASS and dense tie: the sparse one, listed first
  put(db, kThree[kDense], 64, 19.5);
  EXPECT_EQ(choose(&db, 64), kDense);
}

TEST(FastestGemm, RefusesAnEmptyListAndNonPositiveM) {
  TuningDb db(h100_key());
  EXPECT_THROW(fastest_gemm(&db, Precision::INT8, {}, 16), InvalidArgument);
  EXPECT_THROW(choose(&db, 0), InvalidArgument);
  EXPECT_THROW(choose(nullptr, -4), InvalidArgument);
}

TEST(TuningDbRevision, ChangesWithEveryPutAndTravelsWithCopies) {
  TuningDb db(h100_key());
  EXPECT_EQ(db.revision(), 0u);
  put(db, kThree[kCusparselt], 64, 20.0);
  const std::uint64_t first = db.revision();
  EXPECT_NE(first, 0u);
  put(db, kThree[kCusparselt], 64, 19.0);  // a replacement changes the database too
  EXPECT_NE(db.revision(), first);
  const TuningDb copy = db;
  EXPECT_EQ(copy.revision(), db.revision());
  TuningDb other(h100_key());
  put(other, kThree[kCusparselt], 64, 19.0);  // the same content, put apart: another stamp
  EXPECT_NE(other.revision(), db.revision());
}

}  // namespace
}  // namespace slidesparse
