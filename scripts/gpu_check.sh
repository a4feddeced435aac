#!/usr/bin/env bash
# One full call on a lent GPU machine (no network there): build for its architecture,
# run the GPU tests, once under compute-sanitizer, then the kernel benchmark.
# Run ./scripts/vendor_deps.sh here first and carry .deps and third_party_headers (CUTLASS)
# along. Everything is written
# to out/gpu_check and, when $OUT is set (the device tool), packed into $OUT/gpu_check.tgz
# because only a few files come back from a call.
#   SLIDESPARSE_BENCH_ARGS  overrides the benchmark's flags
#   SLIDESPARSE_E2E_RUNS    `bench e2e` argument sets separated by ';' (stage e2e)
#   GPU_TESTS_FILTER        a gtest filter for the tests stage (default: every GPU test)
#   GPU_TESTS_FIRST         a gtest filter run first, in its own process (then left out)
#   GPU_CHECK_STAGES        which stages run (default "tests sanitizer bench"; also
#                           "transformers": scripts/compare_transformers.py --device cuda,
#                           "e2e": the SLIDESPARSE_E2E_RUNS)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
WORK=out/gpu_check
STAGES=${GPU_CHECK_STAGES:-tests sanitizer bench}
rm -rf "$WORK" && mkdir -p "$WORK"
pack() { [[ -n "${OUT:-}" ]] && tar czf "$OUT/gpu_check.tgz" -C "$WORK" . ; }
trap pack EXIT
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  nvcc --version | tail -n 2
} | tee "$WORK/environment.txt"

start=$SECONDS
CUSPARSELT_ROOT=$(python3 -c 'import nvidia.cusparselt; print(list(nvidia.cusparselt.__path__)[0])' 2>/dev/null || true)
# cuDNN lives only in the Python environment there (nvidia.cudnn is a namespace package).
CUDNN_ROOT=$(python3 -c 'import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="$SLIDESPARSE_CUDA_ARCH" -DSLIDESPARSE_WERROR=OFF ${CUSPARSELT_ROOT:+-DCUSPARSELT_ROOT=$CUSPARSELT_ROOT} \
  ${CUDNN_ROOT:+-DCUDNN_ROOT=$CUDNN_ROOT} \
  > "$WORK/configure.log" 2>&1 || { tail -n 40 "$WORK/configure.log"; exit 1; }
grep "slidesparse:" "$WORK/configure.log"
cmake --build build-gpu -j "$(nproc)" > "$WORK/build.log" 2>&1 || { grep -m 20 -A 5 "error" "$WORK/build.log"; exit 1; }
echo "build ok in $((SECONDS - start)) s, $(grep -c "warning:" "$WORK/build.log") warnings"
grep -m 10 "warning:" "$WORK/build.log"
./build-gpu/slidesparse info | tee -a "$WORK/environment.txt"

if has_stage tests && [ -n "${GPU_TESTS_FIRST:-}" ]; then
  # The tests that matter most run first, in their own process and log, so a later timeout or
  # crash cannot hide them; the main run below then leaves them out.
  start=$SECONDS
  timeout "${GPU_TESTS_FIRST_TIMEOUT:-120}" ./build-gpu/tests/slidesparse_gpu_tests \
    --gtest_filter="$GPU_TESTS_FIRST" > "$WORK/gpu_tests_first.log" 2>&1
  echo "gpu tests '$GPU_TESTS_FIRST' exit $? in $((SECONDS - start)) s: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]+ tests?' "$WORK/gpu_tests_first.log" | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' "$WORK/gpu_tests_first.log" | sort -u | head -n 20
  GPU_TESTS_FILTER=${GPU_TESTS_FILTER:-"-$GPU_TESTS_FIRST"}
fi
if has_stage tests; then
  start=$SECONDS
  # One process for every GPU test: ctest would start ~330 processes, each paying CUDA's
  # start-up (about 1 s each on the H100, more than the tests themselves).
  timeout "${GPU_TESTS_TIMEOUT:-420}" ./build-gpu/tests/slidesparse_gpu_tests \
    ${GPU_TESTS_FILTER:+--gtest_filter=$GPU_TESTS_FILTER} > "$WORK/gpu_tests.log" 2>&1
  rc=$?
  echo "gpu tests exit $rc in $((SECONDS - start)) s: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]+ tests?' "$WORK/gpu_tests.log" | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' "$WORK/gpu_tests.log" | sort -u | head -n 40
  if [ "$rc" -eq 124 ]; then
    # Timed out: ctest would only run the same tests again, one process each, and slower.
    echo "gpu tests timed out in: $(grep '^\[ RUN      \]' "$WORK/gpu_tests.log" | tail -n 1)"
  elif [ "$rc" -gt 1 ]; then
    # Crashed: a sticky CUDA error (illegal address) ends the process and every test after
    # it. ctest runs each test in its own process, so the others still report.
    tail -n 5 "$WORK/gpu_tests.log"
    start=$SECONDS
    (cd build-gpu && timeout "${GPU_TESTS_CTEST_TIMEOUT:-300}" ctest -L gpu --output-on-failure \
      --timeout 120) > "$WORK/gpu_tests_ctest.log" 2>&1
    echo "ctest -L gpu ($((SECONDS - start)) s): $(grep -E 'tests passed|tests failed' "$WORK/gpu_tests_ctest.log")"
    grep -E '^\s+[0-9]+ - .*(Failed|Timeout|Exception)' "$WORK/gpu_tests_ctest.log" | head -n 40
  fi
fi
if has_stage sanitizer; then
  start=$SECONDS
  timeout "${SANITIZER_TIMEOUT:-240}" compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 \
    ./build-gpu/tests/slidesparse_gpu_tests --gtest_filter="${SANITIZER_FILTER:--*Large*}" > "$WORK/sanitizer.log" 2>&1
  echo "compute-sanitizer exit $? in $((SECONDS - start)) s: $(grep 'ERROR SUMMARY' "$WORK/sanitizer.log" | tail -n 1)"
  grep -E '^\[  (PASSED|FAILED) ' "$WORK/sanitizer.log" | head -n 2
  grep -m 3 -A 4 'Invalid\|Program hit' "$WORK/sanitizer.log"
fi
if has_stage bench; then
  start=$SECONDS
  timeout "${BENCH_TIMEOUT:-300}" ./build-gpu/slidesparse bench kernel ${SLIDESPARSE_BENCH_ARGS:---preset qwen2.5-7b --dtype fp8,int8 \
    --pattern 2_4,2_6,2_8,2_10,2_inf --M 64,512,4096,16384 --sparse-backend both} --out "$WORK/results" --tuning "$WORK/tuning.json" \
    > "$WORK/bench_kernel.log" 2>&1
  echo "bench kernel exit $? in $((SECONDS - start)) s"
  tail -n 40 "$WORK/bench_kernel.log"
fi
if has_stage transformers; then
  start=$SECONDS
  PYTHONUNBUFFERED=1 timeout "${TRANSFORMERS_TIMEOUT:-240}" python3 scripts/compare_transformers.py \
    --device cuda --binary build-gpu/slidesparse > "$WORK/compare_transformers.log" 2>&1
  echo "compare_transformers exit $? in $((SECONDS - start)) s"
  grep -E "OK|MISMATCH|Error|error" "$WORK/compare_transformers.log" | grep -v "^ " | head -n 40
fi
if has_stage e2e; then
  E2E_RUNS=${SLIDESPARSE_E2E_RUNS:-"qwen2.5-7b --stage prefill --M 8192,16384 --backend dense --dtype fp8;\
qwen2.5-7b --stage prefill --M 8192,16384 --backend dense --dense-gemm cublaslt_fused --dtype fp8;\
qwen2.5-7b --stage prefill --M 8192,16384 --backend sparse --pattern 2_8 --dtype fp8;\
qwen2.5-7b --stage prefill --M 8192,16384 --backend sparse --pattern 2_8 --sparse-backend cutlass --dtype fp8;\
qwen2.5-7b --stage prefill --M 8192,16384 --backend sparse --pattern 2_8 --sparse-backend auto --dtype fp8;\
qwen2.5-7b --stage decode --M 64,256 --backend dense --dtype fp8;\
qwen2.5-7b --stage decode --M 64,256 --backend sparse --pattern 2_8 --dtype fp8;\
qwen2.5-7b --stage decode --M 64,256 --backend sparse --pattern 2_8 --dense-fallback --dtype fp8"}
  IFS=';' read -ra runs <<< "$E2E_RUNS"
  for args in "${runs[@]}"; do
    start=$SECONDS
    # shellcheck disable=SC2086
    timeout "${E2E_TIMEOUT:-240}" ./build-gpu/slidesparse bench e2e $args --out "$WORK/e2e" \
      >> "$WORK/bench_e2e.log" 2>&1
    echo "bench e2e $args: exit $? in $((SECONDS - start)) s"
  done
  tail -n 30 "$WORK/bench_e2e.log"
fi
