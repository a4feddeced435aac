// Which of a linear layer's GEMMs runs an M, from the tuning database (DESIGN.md §7): the pure
// decision behind SlideSparseLinear's per-M-bucket dispatch, with no GPU in it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/dtype.hpp"
#include "slidesparse/tuning_db.hpp"

namespace slidesparse {

// A GEMM the layer could run, as its times are keyed in the tuning database.
struct GemmCandidate {
  std::string backend;  // the backend name its times are recorded under ("cusparselt", ...)
  std::string pattern;  // the weights' zeros name ("2_8"), or "dense"
  std::int64_t n = 0;   // the GEMM shape as run: padded, K lifted for a sparse pattern
  std::int64_t k = 0;
  // Where `backend` has no entry at the bucket: the backend name of a second measure of the
  // same GEMM ("" for none). The layer's cuBLASLt fused dense GEMM is weighed by the plain
  // cuBLASLt time where the database has it, else by its own (fused) time.
  std::string fallback_backend;
};

// The index in `candidates` of the GEMM to run for M = m. candidates[0] is the default and runs
// unless the database has evidence against it: the default's entry at the M bucket nearest m
// (TuningDb::lookup), and another candidate's entry at that same bucket with a smaller time
// (under its backend, or its fallback_backend when the backend has none there).
// Then the fastest of those runs; ties go to the earlier candidate. A candidate with no entry at
// that bucket (or a time that is not positive) is not weighed: times at different M are not
// compared. A null or stale database, or no entry for the default: 0. InvalidArgument for an
// empty list or m <= 0.
std::size_t fastest_gemm(const TuningDb* tuning, Precision precision,
                         const std::vector<GemmCandidate>& candidates, std::int64_t m);

}  // namespace slidesparse
