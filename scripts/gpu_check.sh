#!/usr/bin/env bash
# One full call on a lent GPU machine (no network there): build for its architecture,
# run the GPU tests, once under compute-sanitizer, then the kernel benchmark.
# Run ./scripts/vendor_deps.sh here first and carry .deps along. Results go to $OUT
# (or out/gpu_check) as files to copy into docs/results/.
#   SLIDESPARSE_BENCH_ARGS overrides the benchmark's flags.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  nvcc --version | tail -n 2
} | tee "$OUT/environment.txt"

CUSPARSELT_ROOT=$(python3 -c 'import nvidia.cusparselt, os; print(os.path.dirname(nvidia.cusparselt.__file__))' 2>/dev/null || true)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="$SLIDESPARSE_CUDA_ARCH" ${CUSPARSELT_ROOT:+-DCUSPARSELT_ROOT=$CUSPARSELT_ROOT} \
  > "$OUT/configure.log" 2>&1 || { tail -n 40 "$OUT/configure.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m 20 -A 5 "error" "$OUT/build.log"; exit 1; }
echo "build ok"

./build-gpu/slidesparse info | tee -a "$OUT/environment.txt"
(cd build-gpu && ctest -L gpu --output-on-failure --timeout 900) > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests: $(tail -n 3 "$OUT/gpu_tests.log" | head -n 1)"
compute-sanitizer --tool memcheck --error-exitcode 9 ./build-gpu/tests/slidesparse_gpu_tests \
  --gtest_filter='-*Large*' > "$OUT/sanitizer.log" 2>&1
echo "compute-sanitizer exit $? ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitizer.log") clean summaries)"

./build-gpu/slidesparse bench kernel ${SLIDESPARSE_BENCH_ARGS:---preset qwen2.5-7b --dtype fp8,int8 \
  --pattern 2_4,2_6,2_8,2_10,2_inf --M 256,4096,16384} --out "$OUT/results" --tuning "$OUT/tuning.json" \
  > "$OUT/bench_kernel.log" 2>&1
echo "bench kernel exit $?"
tail -n 40 "$OUT/bench_kernel.log"
