#!/usr/bin/env bash
# One device call that ends within DEADLINE seconds (default 570, under the device tool's
# 600): build, every GPU test, compute-sanitizer on the CUTLASS and fused-epilogue tests, then
# the kernel study (scripts/gpu_kernel_study.sh: bench with nvidia-smi sampling, then ncu) in
# the time left, three fifths to the benchmark (all of it with STUDY_STAGES=bench). For
# sessions that may get a single call.
# Carry .deps and third_party_headers (./scripts/vendor_deps.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
DEADLINE=${DEADLINE:-570}
# Our CUTLASS GEMMs' exact tests first: the first run that reached a GPU (2026-12-06) timed out
# in a slow test before gtest came to them.
GPU_TESTS_FIRST=${GPU_TESTS_FIRST:-'*Exact*:*Cutlass*:*Lift*'} GPU_TESTS_FIRST_TIMEOUT=${GPU_TESTS_FIRST_TIMEOUT:-90} \
  GPU_TESTS_TIMEOUT=${GPU_TESTS_TIMEOUT:-150} SANITIZER_TIMEOUT=${SANITIZER_TIMEOUT:-90} \
  SANITIZER_FILTER=${SANITIZER_FILTER:-'*Cutlass*:*Fused*:*Cudnn*:*Exact*-*Large*'} \
  GPU_CHECK_STAGES="tests sanitizer" bash scripts/gpu_check.sh
left=$((DEADLINE - SECONDS - 15))
echo "after the tests: $SECONDS s, $left s left for the kernel study"
[ "$left" -lt 60 ] && exit 0
patterns=${STUDY_NCU_PATTERNS:-2_4 2_8}
n_patterns=$(wc -w <<< "$patterns")
stages=${STUDY_STAGES:-bench ncu}
bench_share=3
[[ " $stages " == *" ncu "* ]] || { bench_share=5; n_patterns=1; }
# FP8 before INT8 and 2:4 and 6:8 before 4:6 and 8:10, so a cut benchmark keeps those first.
STUDY_STAGES=$stages BENCH_TIMEOUT=$((left * bench_share / 5)) \
  NCU_TIMEOUT=$((left * (5 - bench_share) / 5 / n_patterns - 5)) \
  STUDY_BENCH_ARGS=${STUDY_BENCH_ARGS:-"--preset qwen2.5-7b --dtype fp8,int8 --pattern 2_4,2_8,2_6,2_10 --M 64,512,4096,16384"} \
  STUDY_SPARSE_BACKEND=${STUDY_SPARSE_BACKEND:-all} \
  STUDY_NCU_PATTERNS=$patterns bash scripts/gpu_kernel_study.sh
echo "done at $SECONDS s"
