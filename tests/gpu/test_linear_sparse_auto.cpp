// The linear layer with every sparse GEMM (LinearOptions::sparse_backend_auto): cuSPARSELt and
// our CUTLASS GEMM on the same slid weights, the tuning database choosing per M bucket.
//   INT8 output bit for bit equal to each single-backend layer's, and to the CPU reference, at
//   M with and without padding, whichever GEMM the database picks.
//   A hand-made database picks cuSPARSELt at one bucket, CUTLASS at another, dense at a third:
//   the GEMM that runs is the one whose plans the run builds.
//   search_gemms times both; record_search writes the entries a layer then chooses from.
//   Where CUTLASS cannot run, cuSPARSELt alone and the reason.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cutlass_test_util.hpp"
#include "gpu_test_util.hpp"
#include "slidesparse/cuda/check.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/layer/linear.hpp"
#include "slidesparse/pack.hpp"
#include "slidesparse/reference_linear.hpp"
#include "slidesparse/tuning_db.hpp"

namespace slidesparse {
namespace {

using test::expect_matches;
using test::make_problem;
using test::Problem;
using test::run_layer;

constexpr std::int64_t kMaxM = 300;

LinearOptions options_for(const TuningDb* tuning, bool auto_sparse,
                          GemmBackendKind single = GemmBackendKind::CusparseLt) {
  LinearOptions o;
  o.activation = DType::BF16;
  o.max_m = kMaxM;
  o.sparse_backend = single;
  o.sparse_backend_auto = auto_sparse;
  o.tuning = tuning;
  return o;
}

PackedLinear packed_int8(const Problem& p, const char* pattern) {
  return pack_linear(p.w.data(), p.n, p.k, p.bias.data(), Precision::INT8, Pattern::parse(pattern),
                     PruneMode::Magnitude, "test.weight");
}

// The entry the layer looks up for one of its GEMMs at bucket m.
void put_time(TuningDb& db, const SlideSparseLinear& layer, GemmBackendKind backend, std::int64_t m,
              double time_us) {
  const bool dense = backend == GemmBackendKind::CublasLtDense;
  db.put({backend_name(backend), precision_name(layer.precision()),
          dense ? std::string("dense") : layer.pattern().zeros_name(), layer.n_gemm(),
          layer.k_gemm(dense ? LinearPath::Dense : LinearPath::Sparse), m, GemmAlgo{}.to_json(),
          time_us});
}

// ---- rules (host only) -------------------------------------------------------------------------

// Both sparse GEMMs compress the same padded slid weights and read the same lifted input: their N
// and K multiples must agree (else the layer's shapes would not be the tuner's single-backend
// ones); M differs, and m_gemm follows the GEMM that runs.
TEST(SparseAutoRules, CusparseltAndCutlassShareTheirNAndKMultiples) {
  for (Precision p : {Precision::INT8, Precision::FP8}) {
    const GemmRequirements library = gemm_requirements(p, GemmBackendKind::CusparseLt);
    const GemmRequirements ours = gemm_requirements(p, GemmBackendKind::CutlassSparse);
    EXPECT_EQ(library.n_multiple, ours.n_multiple) << precision_name(p);
    EXPECT_EQ(library.k_multiple, ours.k_multiple) << precision_name(p);
    EXPECT_EQ(library.m_multiple, 16) << precision_name(p);
    EXPECT_EQ(ours.m_multiple, 1) << precision_name(p);
  }
}

// ---- the layer -------------------------------------------------------------------------------

TEST(SparseAutoLayer, Int8OutputEqualsEachSingleBackendLayerBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  // N = 96 runs without N padding (the CUTLASS GEMM writes y in place), N = 50 pads to 64.
  for (const std::int64_t n : {96, 50}) {
    const Problem p = make_problem(kMaxM, n, 200, static_cast<std::uint64_t>(n));
    const PackedLinear packed = packed_int8(p, "2_8");
    TuningDb prefers_cutlass(TuningKey{});
    SlideSparseLinear both(ctx, packed, options_for(nullptr, true));
    SlideSparseLinear both_tuned(ctx, packed, options_for(&prefers_cutlass, true));
    SlideSparseLinear cusparselt(ctx, packed, options_for(nullptr, false));
    SlideSparseLinear cutlass(ctx, packed,
                              options_for(nullptr, false, GemmBackendKind::CutlassSparse));
    ASSERT_EQ(both.backends(LinearPath::Sparse),
              (std::vector{GemmBackendKind::CusparseLt, GemmBackendKind::CutlassSparse}));
    EXPECT_EQ(both.sparse_backend_note(), "");
    EXPECT_EQ(both.sparse_weight_bytes(), 2 * cusparselt.sparse_weight_bytes());
    // The shapes the tuner keys its single-backend layers by.
    EXPECT_EQ(both.n_gemm(), cusparselt.n_gemm());
    EXPECT_EQ(both.n_gemm(), cutlass.n_gemm());
    EXPECT_EQ(both.k_gemm(LinearPath::Sparse), cusparselt.k_gemm(LinearPath::Sparse));
    EXPECT_EQ(both.k_gemm(LinearPath::Sparse), cutlass.k_gemm(LinearPath::Sparse));
    for (const std::int64_t m : {1, 16, 37, 300}) {
      put_time(prefers_cutlass, both_tuned, GemmBackendKind::CusparseLt, m, 20.0);
      put_time(prefers_cutlass, both_tuned, GemmBackendKind::CutlassSparse, m, 10.0);
    }
    for (const std::int64_t m : {1, 16, 37, 300}) {
      const std::string what = "N=" + std::to_string(n) + " M=" + std::to_string(m);
      EXPECT_EQ(both.sparse_gemm_for(m), GemmBackendKind::CusparseLt) << what << ": no database";
      EXPECT_EQ(both_tuned.sparse_gemm_for(m), GemmBackendKind::CutlassSparse) << what;
      EXPECT_EQ(both.m_gemm(m, LinearPath::Sparse), (m + 15) / 16 * 16) << what;
      EXPECT_EQ(both_tuned.m_gemm(m, LinearPath::Sparse), m) << what;
      const auto want = run_layer(cusparselt, p, m, LinearPath::Sparse);
      EXPECT_EQ(run_layer(cutlass, p, m, LinearPath::Sparse), want) << what;
      EXPECT_EQ(run_layer(both, p, m, LinearPath::Sparse), want) << what << " cuSPARSELt";
      EXPECT_EQ(run_layer(both_tuned, p, m, LinearPath::Sparse), want) << what << " CUTLASS";
      EXPECT_EQ(run_layer(both_tuned, p, m, LinearPath::Auto), want) << what << " auto";
      EXPECT_EQ(run_layer(both_tuned, p, m, LinearPath::Dense), want) << what << " dense";
      const auto ref = reference_linear_sparse(
          p.x.data(), m, p.k,
          {packed.precision, packed.n, packed.k_slide(), packed.weight, packed.scale},
          packed.pattern, p.bias.data());
      expect_matches(want, ref, Precision::INT8, what);
    }
  }
}

// Which GEMM runs is the database's choice per M bucket: cuSPARSELt at bucket 16, CUTLASS at
// 256, dense at 1 (and the fastest sparse GEMM when the sparse path is asked for by name). The
// GEMM that runs an unprepared M builds its plan on the run: its plan count tells which ran.
TEST(SparseAutoLayer, TheTuningDatabaseChoosesTheGemmPerMBucket) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  const Problem p = make_problem(kMaxM, 96, 200, 5);
  const PackedLinear packed = packed_int8(p, "2_8");
  TuningDb db(TuningKey{});
  SlideSparseLinear layer(ctx, packed, options_for(&db, true));
  SlideSparseLinear reference(ctx, packed, options_for(nullptr, false));
  ASSERT_EQ(layer.dense_gemm()->kind(), GemmBackendKind::CublasLtDense);
  using K = GemmBackendKind;
  put_time(db, layer, K::CusparseLt, 1, 10.0);  // bucket 1: dense, then CUTLASS
  put_time(db, layer, K::CutlassSparse, 1, 8.0);
  put_time(db, layer, K::CublasLtDense, 1, 5.0);
  put_time(db, layer, K::CusparseLt, 16, 10.0);  // bucket 16: cuSPARSELt
  put_time(db, layer, K::CutlassSparse, 16, 12.0);
  put_time(db, layer, K::CublasLtDense, 16, 30.0);
  put_time(db, layer, K::CusparseLt, 256, 40.0);  // bucket 256: CUTLASS
  put_time(db, layer, K::CutlassSparse, 256, 30.0);
  put_time(db, layer, K::CublasLtDense, 256, 45.0);

  EXPECT_EQ(layer.resolve(1, LinearPath::Auto), LinearPath::Dense);
  EXPECT_EQ(layer.sparse_gemm_for(1), K::CutlassSparse);
  EXPECT_EQ(layer.resolve(17, LinearPath::Auto), LinearPath::Sparse);  // nearest bucket 16
  EXPECT_EQ(layer.sparse_gemm_for(17), K::CusparseLt);
  EXPECT_EQ(layer.m_gemm(17, LinearPath::Auto), 32);                    // cuSPARSELt's M multiple
  EXPECT_EQ(layer.resolve(200, LinearPath::Auto), LinearPath::Sparse);  // nearest bucket 256
  EXPECT_EQ(layer.sparse_gemm_for(200), K::CutlassSparse);
  EXPECT_EQ(layer.m_gemm(200, LinearPath::Auto), 200);  // CUTLASS pads nothing

  Gemm& library = *layer.gemm(K::CusparseLt);
  Gemm& ours = *layer.gemm(K::CutlassSparse);
  Gemm& dense = *layer.dense_gemm();
  ASSERT_EQ(library.cached_plans() + ours.cached_plans() + dense.cached_plans(), 0u);
  EXPECT_EQ(run_layer(layer, p, 200, LinearPath::Auto),
            run_layer(reference, p, 200, LinearPath::Sparse));
  EXPECT_EQ(ours.cached_plans(), 1u);
  EXPECT_TRUE(ours.prepared_algo(200).has_value());
  EXPECT_EQ(library.cached_plans(), 0u);
  EXPECT_EQ(run_layer(layer, p, 17, LinearPath::Auto),
            run_layer(reference, p, 17, LinearPath::Sparse));
  EXPECT_EQ(library.cached_plans(), 1u);
  EXPECT_TRUE(library.prepared_algo(32).has_value());
  EXPECT_EQ(ours.cached_plans(), 1u);
  EXPECT_EQ(dense.cached_plans(), 0u);
  EXPECT_EQ(run_layer(layer, p, 1, LinearPath::Auto),
            run_layer(reference, p, 1, LinearPath::Sparse));
  EXPECT_EQ(dense.cached_plans(), 1u);
  EXPECT_EQ(ours.cached_plans(), 1u);

  // prepare() plans every GEMM for its M; the run path then allocates nothing, and the
  // remembered choice follows the database when it changes.
  layer.prepare({1, 17, 200});
  EXPECT_TRUE(layer.prepared_algo(17, K::CutlassSparse).has_value());
  EXPECT_TRUE(layer.prepared_algo(200, K::CusparseLt).has_value());
  const std::int64_t allocations = gemm_device_allocations();
  for (const std::int64_t m : {1, 17, 200}) run_layer(layer, p, m, LinearPath::Auto);
  EXPECT_EQ(gemm_device_allocations(), allocations) << "a prepared M allocated on the run path";
  put_time(db, layer, K::CusparseLt, 256, 20.0);
  EXPECT_EQ(layer.sparse_gemm_for(200), K::CusparseLt);
  EXPECT_EQ(layer.m_gemm(200, LinearPath::Sparse), 208);

  // use_algo by backend reaches a GEMM that is not the one chosen for the M.
  layer.use_algo(64, K::CutlassSparse, GemmAlgo{0, 1, 0, -1, {}});
  EXPECT_EQ(layer.prepared_algo(64, K::CutlassSparse), (GemmAlgo{0, 1, 0, -1, {}}));
  EXPECT_THROW(layer.use_algo(64, K::CutlassDense, GemmAlgo{}), InvalidArgument);
}

// search_gemms times each sparse GEMM and keeps each one's best; record_search writes the entries
// a layer chooses from, so a second layer on that database runs the faster GEMM.
TEST(SparseAutoLayer, SearchTimesEverySparseGemmAndRecordsThem) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  constexpr std::int64_t kM = 64;
  const Problem p = make_problem(kMaxM, 96, 200, 9);
  const PackedLinear packed = packed_int8(p, "2_8");
  SlideSparseLinear layer(ctx, packed, options_for(nullptr, true));
  DeviceBuffer<std::uint16_t> x(static_cast<std::size_t>(kM * p.k));
  x.upload(p.x_bits.data(), x.size());
  layer.quantize_input(x.get(), kM, LinearPath::Sparse, nullptr);
  SearchOptions search;
  search.warmup = 1;
  search.reps = 3;
  const auto results = layer.search_gemms(kM, LinearPath::Sparse, search, nullptr);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].backend, GemmBackendKind::CusparseLt);
  EXPECT_EQ(results[1].backend, GemmBackendKind::CutlassSparse);
  for (const LayerGemmSearch& r : results) {
    ASSERT_FALSE(r.timings.empty()) << backend_name(r.backend);
    ASSERT_TRUE(r.timings.front().ok) << backend_name(r.backend) << ": " << r.timings.front().error;
    EXPECT_EQ(layer.prepared_algo(kM, r.backend), r.timings.front().algo)
        << backend_name(r.backend);
  }
  TuningDb db(TuningKey{});
  layer.record_search(db, kM, results);
  EXPECT_EQ(db.size(), 2u);
  for (const LayerGemmSearch& r : results) {
    const auto entry = db.lookup(backend_name(r.backend), "int8", "2_8", layer.n_gemm(),
                                 layer.k_gemm(LinearPath::Sparse), kM);
    ASSERT_TRUE(entry) << backend_name(r.backend);
    EXPECT_EQ(entry->m, kM);
    EXPECT_EQ(entry->time_us, r.timings.front().median_us);
    EXPECT_EQ(GemmAlgo::from_json(entry->algo), r.timings.front().algo);
  }
  const GemmBackendKind faster =
      results[1].timings.front().median_us < results[0].timings.front().median_us
          ? GemmBackendKind::CutlassSparse
          : GemmBackendKind::CusparseLt;
  SlideSparseLinear chooser(ctx, packed, options_for(&db, true));
  EXPECT_EQ(chooser.sparse_gemm_for(kM), faster);
  chooser.prepare({kM});  // the recorded algorithms
  EXPECT_EQ(chooser.prepared_algo(kM, faster), layer.prepared_algo(kM, faster));
  // search() returns the timings of the GEMM the path runs at M.
  chooser.quantize_input(x.get(), kM, LinearPath::Sparse, nullptr);
  const auto timings = chooser.search(kM, LinearPath::Sparse, search, nullptr);
  ASSERT_FALSE(timings.empty());
  EXPECT_EQ(chooser.prepared_algo(kM, faster), timings.front().algo);
}

// Where CUTLASS cannot run (BF16 weights, FP16 activations; or another GPU or build), the layer
// keeps cuSPARSELt alone, says why, and runs as a cuSPARSELt layer.
TEST(SparseAutoLayer, WithoutCutlassKeepsCusparseltAndSaysWhy) {
  SLIDESPARSE_REQUIRE_GPU();
  GemmContext ctx;
  const Problem p = make_problem(37, 64, 96, 3);
  const auto check = [&](Precision precision, DType activation, const std::string& reason) {
    const PackedLinear packed =
        pack_linear(p.w.data(), p.n, p.k, p.bias.data(), precision, Pattern::parse("2_8"),
                    PruneMode::Magnitude, "test.weight");
    LinearOptions o = options_for(nullptr, true);
    o.activation = activation;
    SlideSparseLinear layer(ctx, packed, o);
    const std::string what = std::string(precision_name(precision)) + " " + dtype_name(activation);
    EXPECT_EQ(layer.backends(LinearPath::Sparse), std::vector{GemmBackendKind::CusparseLt}) << what;
    const std::string& note = layer.sparse_backend_note();
    EXPECT_EQ(note.rfind("the CUTLASS sparse GEMM was not built: ", 0), 0u) << what << ": " << note;
    const bool has_cutlass =
        cutlass_sparse_available() && ctx.cc_major() == 9 && ctx.cc_minor() == 0;
    if (has_cutlass) {
      EXPECT_NE(note.find(reason), std::string::npos) << what << ": " << note;
    }
    EXPECT_EQ(layer.sparse_gemm_for(1), GemmBackendKind::CusparseLt);
    LinearOptions single = options_for(nullptr, false);
    single.activation = activation;
    SlideSparseLinear cusparselt(ctx, packed, single);
    EXPECT_EQ(layer.sparse_weight_bytes(), cusparselt.sparse_weight_bytes()) << what;
  };
  check(Precision::BF16, DType::BF16, "INT8 and FP8, not bf16");
  check(Precision::INT8, DType::F16, "writes BF16 outputs");
}

}  // namespace
}  // namespace slidesparse
